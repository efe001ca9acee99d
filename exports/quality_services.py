"""Data quality around an export run: the configuration a run uses, and what it records.

The rules themselves are in ``exports.quality`` (pure, pandas). This module reads the settings and the admin's
overrides (before the export forks its writing child, which must not use the database) and stores a run's counts.
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.utils import timezone

from exports.models import ExportRun, QualityAllowedValues, QualityRuleCount, QualityRuleSetting
from exports.quality import QualityConfig, QualitySummary, RuleResult, RuleSetting, quality_config_build


def quality_config_current(*, today: date | None = None) -> QualityConfig:
    """The rules as configured now: the settings as defaults, the admin's rows overriding them."""
    thresholds = {"warranty_expiring": settings.QUALITY_WARRANTY_DAYS}
    enabled: list[str] = []
    if settings.QUALITY_HARDWARE_MAX_AGE_YEARS > 0:
        thresholds["hardware_old"] = settings.QUALITY_HARDWARE_MAX_AGE_YEARS
        enabled.append("hardware_old")
    overrides = {
        row.rule: RuleSetting(enabled=row.enabled, threshold=row.threshold) for row in QualityRuleSetting.objects.all()
    }
    for rule_id in enabled:  # switched on by a setting, unless the admin says otherwise
        overrides.setdefault(rule_id, RuleSetting(enabled=True))
    allowed: dict[str, list[str]] = {
        str(column): [str(value) for value in values]
        for column, values in dict(settings.QUALITY_ALLOWED_VALUES or {}).items()
    }
    for row in QualityAllowedValues.objects.all():
        if row.enabled:
            allowed[row.column] = row.allowed
        else:
            allowed.pop(row.column, None)
    return quality_config_build(
        today=today or timezone.localdate(),
        overrides=overrides,
        disabled=settings.QUALITY_DISABLED_RULES,
        thresholds=thresholds,
        allowed=allowed,
    )


def quality_counts_save(*, run: ExportRun, summary: QualitySummary) -> None:
    """Record a run's count (or error) per rule: the trend the panel and the API show."""
    QualityRuleCount.objects.bulk_create(
        QualityRuleCount(
            run=run,
            rule=result.rule,
            label=result.label,
            severity=result.severity,
            columns=list(result.columns),
            threshold=result.threshold,
            count=result.count,
            error=result.error,
        )
        for result in summary.results
    )


def quality_summary_of(run: ExportRun) -> QualitySummary | None:
    """A stored run's results, for a run that reuses its files (same rows, so the same findings file)."""
    counts = list(run.quality_counts.all())
    if not counts:
        return None
    results = [RuleResult(c.rule, c.label, c.severity, tuple(c.columns), c.count, c.error, c.threshold) for c in counts]
    return QualitySummary(results=results, findings=sum(c.count for c in counts))
