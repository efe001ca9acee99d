"""Reads of the data-quality report: counts per rule with their trend, and the findings of a run."""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from exports.models import ExportArtifact, ExportRun
from exports.selectors import artifact_path
from integrations.netbox.factory import netbox_object_url, netbox_url
from quality.models import QualityRuleCount
from quality.report import QUALITY_CSV
from quality.rules import FINDING_COLUMNS, SEVERITIES

TREND_RUNS = 10
SPARK_WIDTH, SPARK_HEIGHT = 100, 24
SEVERITY_ORDER = {severity: rank for rank, severity in enumerate(SEVERITIES)}


@dataclass
class RuleTrend:
    """One rule in the panel: its count in a run, the change since the run before, and its recent counts."""

    rule: str
    label: str
    severity: str
    columns: list[str]
    count: int
    error: str
    previous: int | None
    trend: list[int] = field(default_factory=list)  # oldest first, this run last

    @property
    def change(self) -> int | None:
        return None if self.previous is None else self.count - self.previous

    @property
    def points(self) -> str:
        """The trend as SVG polyline points in a ``SPARK_WIDTH`` x ``SPARK_HEIGHT`` box (for a CSS-free chart)."""
        values = self.trend
        if not values:
            return ""
        top = max(values) or 1
        step = SPARK_WIDTH / max(1, len(values) - 1)
        return " ".join(
            f"{round(i * step, 1)},{round(SPARK_HEIGHT - 2 - (v / top) * (SPARK_HEIGHT - 4), 1)}"
            for i, v in enumerate(values)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "label": self.label,
            "severity": self.severity,
            "columns": self.columns,
            "count": self.count,
            "previous": self.previous,
            "change": self.change,
            "error": self.error,
            "trend": self.trend,
        }


def quality_runs() -> QuerySet[ExportRun]:
    """Successful runs that recorded a data-quality report, newest first."""
    return (
        ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED, quality_counts__isnull=False)
        .distinct()
        .order_by("-finished", "-id")
    )


def quality_run_latest() -> ExportRun | None:
    """The newest successful run with a data-quality report."""
    return quality_runs().first()


def quality_rules_of(*, run: ExportRun, history: int = TREND_RUNS) -> list[RuleTrend]:
    """A run's count per rule, with the previous report's count and the last ``history`` counts (one query)."""
    runs = list(
        quality_runs().filter(finished__lte=run.finished).values_list("pk", flat=True)[:history]
        if run.finished
        else [run.pk]
    )
    if run.pk not in runs:
        runs = [run.pk, *runs[: history - 1]]
    order = {pk: position for position, pk in enumerate(reversed(runs))}  # oldest first
    by_rule: dict[str, dict[int, int]] = {}
    for rule, run_id, count in QualityRuleCount.objects.filter(run_id__in=runs).values_list("rule", "run_id", "count"):
        by_rule.setdefault(rule, {})[run_id] = count
    previous_run = runs[1] if len(runs) > 1 else None
    rules = []
    for row in QualityRuleCount.objects.filter(run=run).order_by("id"):
        counts = by_rule.get(row.rule, {})
        trend = [counts[pk] for pk in sorted(counts, key=order.__getitem__)]
        rules.append(
            RuleTrend(
                rule=row.rule,
                label=row.label,
                severity=row.severity,
                columns=list(row.columns),
                count=row.count,
                error=row.error,
                previous=counts.get(previous_run) if previous_run is not None else None,
                trend=trend,
            )
        )
    rules.sort(key=lambda r: (SEVERITY_ORDER.get(r.severity, 9), -r.count))
    return rules


def quality_panel() -> dict[str, Any]:
    """The data-quality panel's context (``quality/_panel.html``): the newest report's rules."""
    run = quality_run_latest()
    if run is None:
        return {"quality_run": None, "quality_rules": [], "quality_totals": {}}
    rules = quality_rules_of(run=run)
    totals = {severity: sum(r.count for r in rules if r.severity == severity) for severity in SEVERITIES}
    return {
        "quality_run": run,
        "quality_rules": rules,
        "quality_totals": totals,
        "quality_errors": [r for r in rules if r.error],
        "spark_width": SPARK_WIDTH,
        "spark_height": SPARK_HEIGHT,
    }


def quality_home_panel(request: HttpRequest) -> dict[str, Any] | None:
    """The panel on the home page, for users who may download exports."""
    user: Any = request.user
    return quality_panel() if user.has_capability("export.download") else None


# --- findings --------------------------------------------------------------------------------------------------

# sha256 of a findings file -> its rows. A few entries: the latest run and the one a page is looking at.
_findings_cache: dict[str, list[dict[str, str]]] = {}
_findings_lock = threading.Lock()
_FINDINGS_CACHED = 4


def quality_artifact(*, run: ExportRun) -> ExportArtifact | None:
    return run.artifacts.filter(name=QUALITY_CSV).first()


def _findings_all(artifact: ExportArtifact) -> list[dict[str, str]]:
    with _findings_lock:
        cached = _findings_cache.get(artifact.sha256)
        if cached is not None:
            return cached
    try:
        with artifact_path(artifact).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return []
    with _findings_lock:
        while len(_findings_cache) >= _FINDINGS_CACHED:
            _findings_cache.pop(next(iter(_findings_cache)))
        _findings_cache[artifact.sha256] = rows
    return rows


@dataclass
class Findings:
    """A filtered page of a run's findings, with the total and the values the filters can take."""

    total: int
    rows: list[dict[str, str]]
    available: bool  # False: the run has no findings file (report off, failed, or the file was pruned)
    sites: list[str]
    rules: list[str]


# How the findings can be ordered (``-`` first: descending). By severity, errors come first, then warnings, then
# info; ties keep the report's order (by rule, then by row).
FINDING_ORDERINGS = ("severity", "name", "rule", "kind", "site", "value")
_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(("error", "warning", "info"))}


def _order_key(column: str) -> Any:
    if column == "severity":
        return lambda row: _SEVERITY_RANK.get(row["severity"], len(_SEVERITY_RANK))
    return lambda row: ((row.get(column) or "") == "", (row.get(column) or "").casefold())


def finding_ordering(value: str) -> str:
    """A valid ``ordering`` (a column of ``FINDING_ORDERINGS``, ``-`` first for descending), else ``severity``."""
    return value if value.lstrip("-") in FINDING_ORDERINGS else "severity"


def quality_findings(
    *,
    run: ExportRun,
    rule: str = "",
    severity: str = "",
    site: str = "",
    kind: str = "",
    ordering: str = "severity",
    offset: int = 0,
    limit: int | None = 100,
) -> Findings:
    """The run's findings matching every filter given (exact values; ``site`` case-insensitive), in ``ordering``
    (errors first by default); ``limit=None`` gives every match (the filtered CSV)."""
    artifact = quality_artifact(run=run)
    rows = _findings_all(artifact) if artifact is not None else []
    sites = sorted({row["site"] for row in rows if row.get("site")}, key=str.casefold)
    rules = list(dict.fromkeys(row["rule"] for row in rows))
    site_key = site.casefold()
    matches = [
        row
        for row in rows
        if (not rule or row["rule"] == rule)
        and (not severity or row["severity"] == severity)
        and (not kind or row["kind"] == kind)
        and (not site or row["site"].casefold() == site_key)
    ]
    ordering = finding_ordering(ordering)
    matches.sort(key=_order_key(ordering.lstrip("-")), reverse=ordering.startswith("-"))
    base = netbox_url()
    window = matches[offset:] if limit is None else matches[offset : offset + limit]
    page = [dict(row, url=netbox_object_url(kind=row["kind"], object_id=row["id"], base=base)) for row in window]
    return Findings(total=len(matches), rows=page, available=artifact is not None, sites=sites, rules=rules)


__all__ = ["FINDING_COLUMNS", "Findings", "RuleTrend", "quality_findings", "quality_panel", "quality_rules_of"]
