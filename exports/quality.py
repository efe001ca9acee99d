"""CMDB data quality: rules over the merged rows of an export, computed with pandas.

Pure functions: no Django, no database. The configuration (which rules are on, their thresholds, the allowed values
of custom fields) arrives as a ``QualityConfig`` built by ``exports.quality_services`` from the settings and the
admin, so this module also runs in the forked child that writes the workbook, which must not touch the database.

A rule reads a few columns of a ``pandas.DataFrame`` built once from the rows and returns, vectorised, a boolean
mask of the rows it flags and the value to show for each. A rule that raises is recorded with its error and
flags nothing: a rule never fails the export.

Findings are the flagged rows, one per (rule, object): ``FINDING_COLUMNS``. Kinds are ``device`` and ``vm``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exports.writers import ExtraSheet, FileInfo, write_csv

if TYPE_CHECKING:  # pandas is imported where a report is computed, not when Django loads the models
    import pandas as pd

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"
SEVERITY_INFO = "info"
SEVERITIES: tuple[str, ...] = (SEVERITY_ERROR, SEVERITY_WARNING, SEVERITY_INFO)
KIND_DEVICE = "device"
KIND_VM = "vm"
KINDS: tuple[str, ...] = (KIND_DEVICE, KIND_VM)
FINDING_COLUMNS: tuple[str, ...] = ("rule", "severity", "kind", "id", "name", "site", "value")

# Columns of the merged rows every finding carries.
NAME, ID, SITE, TYPE = "Name", "ID", "Site", "netbox_type"
_KIND_OF_TYPE = {"devices": KIND_DEVICE, "vms": KIND_VM}

WARRANTY_COLUMN = "HW warranty expiration"
BUY_DATE_COLUMN = "HW buy date"

Check = Callable[["pd.DataFrame", "RuleSetting"], tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class RuleSetting:
    """How one rule is configured for a run: on or off, its threshold, the allowed values (allowed-set rules)."""

    enabled: bool = True
    threshold: int | None = None
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A data-quality rule: what it is called, how bad a finding is, what it reads, and its check."""

    id: str
    label: str
    severity: str
    columns: tuple[str, ...]
    check: Check = field(repr=False, compare=False)
    default_enabled: bool = True
    default_threshold: int | None = None
    threshold_unit: str = ""  # "days", "years"; empty: the rule has no threshold
    column: str = ""  # the custom-field column of an allowed-set rule


@dataclass(frozen=True, slots=True)
class QualityConfig:
    """The rules of a run with their settings, and the day the run compares dates against."""

    rules: tuple[tuple[Rule, RuleSetting], ...]
    today: date


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome in a run: how many objects it flagged, or why it could not run."""

    rule: str
    label: str
    severity: str
    columns: tuple[str, ...]
    count: int
    error: str = ""
    threshold: int | None = None


@dataclass(slots=True)
class QualityReport:
    """Every enabled rule's result, and the findings as rows in ``FINDING_COLUMNS`` order."""

    results: list[RuleResult]
    findings: list[tuple[Any, ...]]  # in FINDING_COLUMNS order, by rule then by row
    seconds: float = 0.0

    @property
    def summary(self) -> QualitySummary:
        return QualitySummary(results=self.results, findings=len(self.findings), seconds=self.seconds)


@dataclass(slots=True)
class QualitySummary:
    """What travels back from the writing child: the results without the findings (they are in the CSV)."""

    results: list[RuleResult]
    findings: int
    seconds: float = 0.0
    error: str = ""  # the whole report failed (the rows could not be read); the export still succeeds


# --- column helpers, all vectorised -----------------------------------------------------------------------------


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        raise KeyError(f"column {column!r} is not in the CMDB rows")
    return frame[column]


def _blank(frame: pd.DataFrame, column: str) -> pd.Series:
    return _text(frame, column) == ""  # the frame's text is stripped already


def _key(frame: pd.DataFrame, column: str) -> pd.Series:
    """Values compared case-insensitively (``Ö`` and ``ö`` alike: casefold). A list comprehension: the cells are
    str already, and pandas' ``.str`` machinery costs several times more per cell for object columns."""
    import pandas as pd

    text = _text(frame, column)
    return pd.Series([value.casefold() for value in text.tolist()], index=text.index, dtype=object)


def parse_dates(values: pd.Series) -> pd.Series:
    """Dates as NetBox returns them (date fields ``YYYY-MM-DD``; datetime fields ``…THH:MM:SS[.ffffff]Z`` or with
    an offset) as UTC calendar days (naive midnight); anything else, and empty cells, are ``NaT``. Only the
    non-empty cells are parsed: most objects have no date at all."""
    import pandas as pd

    text = values.astype(object)
    filled = text[text != ""].str.strip()
    parsed = pd.to_datetime(filled, errors="coerce", format="ISO8601", utc=True)
    days = parsed.dt.tz_convert(None).dt.normalize()
    return days.reindex(values.index)


def _dates(frame: pd.DataFrame, column: str) -> pd.Series:
    """``parse_dates`` of a column, once per report (three rules read the warranty date)."""
    cache = frame.attrs.setdefault("dates", {})
    if column not in cache:
        cache[column] = parse_dates(_text(frame, column))
    return cache[column]  # type: ignore[no-any-return]


def _day(value: date) -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp(value.year, value.month, value.day)


# --- the checks ------------------------------------------------------------------------------------------------


def _missing(kind: str, column: str) -> Check:
    def check(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
        return (frame["kind"] == kind) & _blank(frame, column), ""

    return check


def _duplicate_names(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
    import pandas as pd

    keys = pd.DataFrame({"kind": frame["kind"], "key": _key(frame, NAME)})
    mask = (keys["key"] != "") & keys.duplicated(keep=False)
    sizes = keys.groupby(["kind", "key"], sort=False)["key"].transform("size")
    return mask, "same name as " + (sizes - 1).astype(str) + " other(s)"


def _duplicate_serials(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
    key = _key(frame, "Serial number")
    mask = (key != "") & key.duplicated(keep=False)
    return mask, _text(frame, "Serial number")


def _warranty_expired(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
    dates = _dates(frame, WARRANTY_COLUMN)
    return dates < _day(frame.attrs["today"]), dates


def _warranty_expiring(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
    import pandas as pd

    dates = _dates(frame, WARRANTY_COLUMN)
    today = _day(frame.attrs["today"])
    days = setting.threshold if setting.threshold is not None else 90
    return (dates >= today) & (dates <= today + pd.Timedelta(days=days)), dates


def _hardware_old(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
    import pandas as pd

    dates = _dates(frame, BUY_DATE_COLUMN)
    years = setting.threshold if setting.threshold is not None else 5
    limit = _day(frame.attrs["today"]) - pd.DateOffset(years=years)
    return dates < limit, dates


def _unreadable_dates(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
    import pandas as pd

    mask = pd.Series(False, index=frame.index)
    value = pd.Series("", index=frame.index, dtype=object)
    for column in (WARRANTY_COLUMN, BUY_DATE_COLUMN):
        text = _text(frame, column)
        bad = (text != "") & _dates(frame, column).isna() & ~mask
        value = value.mask(bad, column + ": " + text)
        mask |= bad
    return mask, value


def _outside_allowed(column: str) -> Check:
    def check(frame: pd.DataFrame, setting: RuleSetting) -> tuple[Any, Any]:
        allowed = {value.strip().casefold() for value in setting.allowed}
        key = _key(frame, column)
        return (key != "") & ~key.isin(allowed), _text(frame, column)

    return check


BUILTIN_RULES: tuple[Rule, ...] = (
    Rule("device_no_serial", "Devices without serial number", SEVERITY_WARNING, ("Serial number",),
         _missing(KIND_DEVICE, "Serial number")),
    Rule("device_no_primary_ip", "Devices without primary IP", SEVERITY_WARNING, ("IP Address",),
         _missing(KIND_DEVICE, "IP Address")),
    Rule("device_no_contacts", "Devices without contacts", SEVERITY_WARNING, ("Contacts",),
         _missing(KIND_DEVICE, "Contacts")),
    Rule("device_no_tenant", "Devices without tenant", SEVERITY_INFO, ("Tenant",), _missing(KIND_DEVICE, "Tenant")),
    Rule("device_no_rack", "Physical devices without rack", SEVERITY_WARNING, ("Rack",),
         _missing(KIND_DEVICE, "Rack")),
    Rule("vm_no_cluster", "VMs without cluster", SEVERITY_WARNING, ("Cluster",), _missing(KIND_VM, "Cluster")),
    Rule("vm_no_primary_ip", "VMs without primary IP", SEVERITY_WARNING, ("IP Address",),
         _missing(KIND_VM, "IP Address")),
    Rule("duplicate_name", "Duplicate names within a kind", SEVERITY_ERROR, (NAME,), _duplicate_names),
    Rule("duplicate_serial", "Duplicate serial numbers", SEVERITY_ERROR, ("Serial number",), _duplicate_serials),
    Rule("warranty_expired", "Warranty expired", SEVERITY_ERROR, (WARRANTY_COLUMN,), _warranty_expired),
    Rule("warranty_expiring", "Warranty expiring soon", SEVERITY_WARNING, (WARRANTY_COLUMN,), _warranty_expiring,
         default_threshold=90, threshold_unit="days"),
    Rule("hardware_old", "Hardware older than the limit", SEVERITY_INFO, (BUY_DATE_COLUMN,), _hardware_old,
         default_enabled=False, default_threshold=5, threshold_unit="years"),
    Rule("date_unreadable", "Unreadable warranty or buy dates", SEVERITY_WARNING, (WARRANTY_COLUMN, BUY_DATE_COLUMN),
         _unreadable_dates),
)  # fmt: skip
BUILTIN_RULE_IDS: tuple[str, ...] = tuple(rule.id for rule in BUILTIN_RULES)


def allowed_values_rule(column: str, severity: str = SEVERITY_WARNING) -> Rule:
    """The rule flagging values of ``column`` (a custom field) outside its allowed set (compared case-insensitively;
    empty cells are not flagged)."""
    slug = re.sub(r"\W+", "_", column.casefold()).strip("_") or "column"
    return Rule(f"allowed_{slug}", f"{column}: value outside the allowed set", severity, (column,),
                _outside_allowed(column), column=column)  # fmt: skip


# --- running the rules ----------------------------------------------------------------------------------------


def quality_frame(rows: Sequence[Sequence[Any]], columns: Sequence[str], wanted: Sequence[str]) -> pd.DataFrame:
    """The ``wanted`` columns of ``rows`` (tuples in ``columns`` order) as stripped text (object dtype), plus
    ``kind``; ``ID`` stays as it is. Columns the rows do not have are left out (rules reading them record an
    error)."""
    import pandas as pd

    index = {name: position for position, name in enumerate(columns)}
    data: dict[str, Any] = {}
    # One column at a time through C-level map() calls: measured several times faster than comprehensions (and than
    # transposing with zip(*rows)).
    for name in dict.fromkeys((NAME, ID, SITE, TYPE, *wanted)):
        if name in index:
            values = list(map(itemgetter(index[name]), rows))
            if name != ID:  # cells are str, int or float (transform's contract); text is compared stripped
                try:
                    values = list(map(str.strip, values))
                except TypeError:  # a number in a text column (a numeric custom field)
                    values = [value.strip() if value.__class__ is str else str(value) for value in values]
            data[name] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
    frame["kind"] = frame[TYPE].map(_KIND_OF_TYPE).fillna("") if TYPE in frame.columns else ""
    return frame


def quality_evaluate(rows: Sequence[Sequence[Any]], columns: Sequence[str], config: QualityConfig) -> QualityReport:
    """Run every enabled rule of ``config`` over ``rows``; a rule that raises is recorded, never propagated."""
    import pandas as pd

    enabled = [(rule, setting) for rule, setting in config.rules if setting.enabled]
    frame = quality_frame(rows, columns, [c for rule, _ in enabled for c in rule.columns])
    frame.attrs["today"] = config.today
    results: list[RuleResult] = []
    findings: list[tuple[Any, ...]] = []
    for rule, setting in enabled:
        try:
            mask, value = rule.check(frame, setting)
            mask = pd.Series(mask, index=frame.index).fillna(False).astype(bool)
            count = int(mask.sum())
            if count:
                if isinstance(value, pd.Series):
                    values = value[mask]
                    if pd.api.types.is_datetime64_any_dtype(values):
                        values = values.dt.strftime("%Y-%m-%d")
                    shown = values.fillna("").astype(str).tolist()
                else:
                    shown = [str(value)] * count
                findings += zip(
                    repeat(rule.id, count),
                    repeat(rule.severity, count),
                    _picked(frame, "kind", mask, count),
                    _picked(frame, ID, mask, count),
                    _picked(frame, NAME, mask, count),
                    _picked(frame, SITE, mask, count),
                    shown,
                    strict=False,
                )
            results.append(RuleResult(rule.id, rule.label, rule.severity, rule.columns, count, "", setting.threshold))
        except Exception as exc:  # a broken rule is reported, and the others still run
            results.append(
                RuleResult(rule.id, rule.label, rule.severity, rule.columns, 0, _describe(exc), setting.threshold)
            )
    return QualityReport(results=results, findings=findings)


def _picked(frame: pd.DataFrame, column: str, mask: pd.Series, count: int) -> Any:
    """A column's flagged cells, column by column: ``frame.loc[mask]`` would deep-copy the frame's attrs."""
    return frame[column][mask].tolist() if column in frame.columns else repeat("", count)


def _describe(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"{type(exc).__name__}: {text}"[:500]


def quality_config_build(
    *,
    today: date,
    overrides: Mapping[str, RuleSetting] | None = None,
    disabled: Sequence[str] = (),
    thresholds: Mapping[str, int] | None = None,
    allowed: Mapping[str, Sequence[str]] | None = None,
) -> QualityConfig:
    """Rules with settings: built-in defaults, then the settings (``disabled``, ``thresholds``), then the admin's
    ``overrides`` (by rule id, for built-in and allowed-set rules). ``allowed`` maps custom-field columns to their
    allowed values; each becomes a rule."""
    overrides = overrides or {}
    thresholds = thresholds or {}
    configured: list[tuple[Rule, RuleSetting]] = []
    for rule in BUILTIN_RULES:
        setting = RuleSetting(
            enabled=rule.default_enabled if rule.id not in disabled else False,
            threshold=thresholds.get(rule.id, rule.default_threshold),
        )
        if rule.id in overrides:
            override = overrides[rule.id]
            setting = replace(
                setting,
                enabled=override.enabled,
                threshold=override.threshold if override.threshold is not None else setting.threshold,
            )
        configured.append((rule, setting))
    for column, values in (allowed or {}).items():
        rule = allowed_values_rule(column)
        setting = overrides.get(rule.id, RuleSetting(enabled=rule.id not in disabled))
        configured.append((rule, replace(setting, allowed=tuple(str(v) for v in values))))
    return QualityConfig(rules=tuple(configured), today=today)


def pandas_preload() -> Callable[[], None]:
    """Import pandas in a thread (about a second of CPU) while the export waits on NetBox; returns the function
    that waits for it. Wait before forking: a child forked while another thread holds the import lock could hang.
    """
    import importlib
    import threading

    thread = threading.Thread(target=importlib.import_module, args=("pandas",), name="pandas-import", daemon=True)
    thread.start()
    return thread.join


QUALITY_SHEET = "Data quality"
SUMMARY_HEADER: tuple[str, ...] = ("Rule", "Label", "Severity", "Objects", "Error")


def quality_sheet_rows(report: QualityReport) -> list[tuple[Any, ...]]:
    """The workbook's "Data quality" sheet: one row per rule, an empty row, then every finding."""
    rows: list[tuple[Any, ...]] = [SUMMARY_HEADER]
    rows += [(r.rule, r.label, r.severity, r.count, r.error) for r in report.results]
    rows.append(())
    rows.append(FINDING_COLUMNS)
    rows += report.findings
    return rows


def quality_files_write(
    rows: Sequence[Sequence[Any]], columns: Sequence[str], config: QualityConfig, path: Path, *, sheet: bool
) -> tuple[FileInfo | None, list[ExtraSheet], QualitySummary]:
    """Evaluate the rules and write the findings CSV at ``path``; the workbook's extra sheet when ``sheet``.

    Never raises (a report must not fail the export): a failure is the summary's ``error``, with no file."""
    started = time.perf_counter()
    try:
        report = quality_evaluate(rows, columns, config)
        info = write_csv(path, FINDING_COLUMNS, report.findings)
        sheets = [ExtraSheet(QUALITY_SHEET, quality_sheet_rows(report))] if sheet else []
    except Exception as exc:
        enabled = [rule for rule, setting in config.rules if setting.enabled]
        error = f"The data-quality report failed: {_describe(exc)}"
        results = [RuleResult(r.id, r.label, r.severity, r.columns, 0, error) for r in enabled]
        return None, [], QualitySummary(results, 0, time.perf_counter() - started, error)
    report.seconds = time.perf_counter() - started
    return info, sheets, report.summary
