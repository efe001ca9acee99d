"""Data quality around an export run: the configuration a run uses, the report's part in the run (the export's
companion, ``exports.companions``), and what it records.

The rules themselves are in ``quality.rules`` (pure; a chunk of rows at a time), the findings file and the sheet
in ``quality.report``. This module reads the settings and the admin's overrides (before the export forks its writing
child, which must not use the database) and stores a run's counts.
"""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

from django.conf import settings
from django.utils import timezone

from exports.column_sets import column_set_current
from exports.columns import ColumnSet
from exports.companions import Companion, CompanionPlan
from exports.models import ExportArtifact, ExportRun
from quality.kept import KEPT
from quality.models import QualityAllowedValues, QualityRequiredColumn, QualityRuleCount, QualityRuleSetting
from quality.report import QUALITY_CSV, report_sheets, report_write
from quality.rules import (
    DATED_RULE_IDS,
    KIND_DEVICE,
    KIND_VM,
    QualityConfig,
    QualitySummary,
    RuleResult,
    RuleSetting,
    quality_config_build,
)


def quality_renames(column_set: ColumnSet) -> dict[str, str]:
    """Header -> contract name of the contract columns the column set renamed: the built-in rules read the contract's
    columns by their own names, whatever the files call them (a name another column took keeps that column)."""
    headers = set(column_set.device_columns) | set(column_set.vm_columns)
    return {
        header: name for header, name in column_set.contract_sources().items() if header != name and name not in headers
    }


def quality_config_current(*, today: date | None = None, renames: dict[str, str] | None = None) -> QualityConfig:
    """The rules as configured now: the settings as defaults, the admin's rows overriding them. Columns named by
    a renamed contract column's header read it under its contract name (``renames``)."""
    renames = renames or {}
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
    kinds = {"device": (KIND_DEVICE,), "vm": (KIND_VM,), "both": (KIND_DEVICE, KIND_VM)}
    required = [
        (renames.get(row.column, row.column), kinds[row.kinds], row.severity)
        for row in QualityRequiredColumn.objects.filter(enabled=True)
    ]
    return quality_config_build(
        today=today or timezone.localdate(),
        overrides=overrides,
        disabled=settings.QUALITY_DISABLED_RULES,
        thresholds=thresholds,
        allowed={renames.get(column, column): values for column, values in allowed.items()},
        required=required,
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


def quality_digest(config: QualityConfig, *, sheet: bool) -> dict[str, Any]:
    """What of the report shapes a run's files (its part of the files digest): the enabled rules with their
    settings, the sheet, and the day when a rule compares dates with it."""
    enabled = [(rule, setting) for rule, setting in config.rules if setting.enabled]
    return {
        "rules": [[r.id, r.label, r.severity, s.threshold, list(s.allowed)] for r, s in enabled],
        "today": str(config.today) if {r.id for r, _ in enabled} & DATED_RULE_IDS else "",
        "sheet": sheet,
    }


def quality_companion_prepare() -> CompanionPlan | None:
    """The report's part in the coming run (``EXPORT_QUALITY``), with the rules as configured now."""
    if not settings.EXPORT_QUALITY:
        return None
    renames = quality_renames(column_set_current())
    config = quality_config_current(renames=renames)
    sheet = settings.EXPORT_QUALITY_SHEET
    return CompanionPlan(
        digest=quality_digest(config, sheet=sheet),
        write=partial(report_write, config, renames=renames),
        artifacts={QUALITY_CSV: ExportArtifact.Kind.QUALITY},
        sheets=report_sheets if sheet else None,
    )


def quality_companion_record(run: ExportRun, summary: Any) -> None:
    """The companion's record: the run's counts per rule (in the transaction that stores the run's files)."""
    if isinstance(summary, QualitySummary):
        quality_counts_save(run=run, summary=summary)


QUALITY_COMPANION = Companion(
    name="quality",
    order=100,
    prepare=quality_companion_prepare,
    record=quality_companion_record,
    reuse=quality_summary_of,
    artifacts={QUALITY_CSV: ExportArtifact.Kind.QUALITY},
    kept=(KEPT,),
)
