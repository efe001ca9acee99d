"""The data-quality rules as main computed them with pandas over one frame of every row (until December 2026): the
oracle the chunked rules (quality.rules) are compared with in the tests. A copy, not imported by the app.

Pure functions: no Django, no database. The configuration (which rules are on, their thresholds, the allowed values
of custom fields) arrives as a ``QualityConfig`` built by ``quality.services`` from the settings and the admin. The
export evaluates the devices' and the VMs' rows (``RowSet``s, each in its own columns, as lists or as batches) while
its forked child writes the workbook (``quality.report``: the export's companion).

A rule reads a few columns of ``QualityRows`` (a ``pandas.DataFrame`` built once from the rows, plus what several
rules derive from it) and returns, vectorised, a boolean mask of the rows it flags and the value to show for each.
A rule that raises is recorded with its error and flags nothing: a rule never fails the export.

Findings are the flagged rows, one per (rule, object): ``FINDING_COLUMNS``. Kinds are ``device`` and ``vm``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a report is computed, not when Django loads the models
    import numpy as np
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

Check = Callable[["QualityRows", "RuleSetting"], tuple[Any, Any]]


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


# --- the rows the rules read --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowSet:
    """Rows of an export with their columns: one kind's (``kind`` given), or merged rows whose ``netbox_type``
    column names each row's kind (``kind`` empty). The rows are ``rows``, or, when ``batches`` is given, the batches
    it yields (read once, in order: they need not all be in memory at once)."""

    rows: Sequence[Sequence[Any]]
    columns: Sequence[str]
    kind: str = ""
    batches: Callable[[], Iterable[Sequence[Sequence[Any]]]] | None = None

    def each_batch(self) -> Iterable[Sequence[Sequence[Any]]]:
        return self.batches() if self.batches is not None else (self.rows,)


class QualityRows:
    """What the rules read: the columns they need as a ``pandas.DataFrame`` of stripped text (object dtype; ``ID``
    as it is), each row's kind, the day dates are compared against, and what several rules derive from a column
    (parsed dates, case-folded keys), derived once per report."""

    def __init__(self, frame: pd.DataFrame, kinds: pd.Series, today: date) -> None:
        self.frame = frame
        self.index = frame.index
        self.today = today
        self._kinds = kinds
        self._derived: dict[tuple[str, str], Any] = {}

    def text(self, column: str) -> pd.Series:
        if column not in self.frame.columns:
            raise KeyError(f"column {column!r} is not in the CMDB rows")
        return self.frame[column]

    def kind(self) -> pd.Series:
        return self._kinds

    def of_kind(self, kind: str) -> np.ndarray:
        """The rows of ``kind``, as a mask: masks are numpy arrays, which compare object cells several times faster
        than a Series does."""
        return self._derive("kind", kind, lambda: self._kinds.to_numpy() == kind)

    def blank(self, column: str) -> np.ndarray:
        return self._derive("blank", column, lambda: self.text(column).to_numpy() == "")

    def key(self, column: str) -> pd.Series:
        """Values compared case-insensitively (``Ö`` and ``ö`` alike: casefold). A list comprehension: the cells
        are str already, and pandas' ``.str`` machinery costs several times more per cell for object columns."""

        def fold() -> pd.Series:
            import pandas as pd

            text = self.text(column)
            return pd.Series([value.casefold() for value in text.tolist()], index=self.index, dtype=object)

        return self._derive("key", column, fold)

    def dates(self, column: str) -> pd.Series:
        return self._derive("dates", column, lambda: parse_dates(self.text(column)))

    def day(self) -> pd.Timestamp:
        import pandas as pd

        return pd.Timestamp(self.today.year, self.today.month, self.today.day)

    def _derive(self, what: str, column: str, make: Callable[[], Any]) -> Any:
        if (what, column) not in self._derived:
            self._derived[what, column] = make()
        return self._derived[what, column]


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


# --- the checks: each returns the mask of the rows it flags and the value to show, for all rows or the flagged ---


def _missing(kind: str, column: str) -> Check:
    def check(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
        return rows.of_kind(kind) & rows.blank(column), ""

    return check


def _duplicate_names(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
    import pandas as pd

    names = rows.key(NAME)
    keys = pd.Series([f"{kind}\x00{name}" for kind, name in zip(rows.kind().tolist(), names.tolist(), strict=True)])
    mask = keys.duplicated(keep=False).to_numpy() & (names.to_numpy() != "")
    flagged = keys[mask]
    sizes = Counter(flagged.tolist())  # over the duplicates only: counting every name costs several times more
    return mask, pd.Series([f"same name as {sizes[key] - 1} other(s)" for key in flagged], index=flagged.index)


def _duplicate_serials(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
    key = rows.key("Serial number")
    return key.duplicated(keep=False).to_numpy() & (key.to_numpy() != ""), rows.text("Serial number")


def _warranty_expired(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
    dates = rows.dates(WARRANTY_COLUMN)
    return dates < rows.day(), dates


def _warranty_expiring(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
    import pandas as pd

    dates = rows.dates(WARRANTY_COLUMN)
    today = rows.day()
    days = setting.threshold if setting.threshold is not None else 90
    return (dates >= today) & (dates <= today + pd.Timedelta(days=days)), dates


def _hardware_old(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
    import pandas as pd

    dates = rows.dates(BUY_DATE_COLUMN)
    years = setting.threshold if setting.threshold is not None else 5
    return dates < rows.day() - pd.DateOffset(years=years), dates


def _unreadable_dates(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    mask = np.zeros(len(rows.index), dtype=bool)
    values = []
    for column in (WARRANTY_COLUMN, BUY_DATE_COLUMN):
        text = rows.text(column)
        bad = ~rows.blank(column) & rows.dates(column).isna().to_numpy() & ~mask
        values.append(column + ": " + text[bad])
        mask |= bad
    return mask, pd.concat(values)


def _outside_allowed(column: str) -> Check:
    def check(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
        allowed = {value.strip().casefold() for value in setting.allowed}
        key = rows.key(column)
        return ~key.isin(allowed).to_numpy() & (key.to_numpy() != ""), rows.text(column)

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
DATED_RULE_IDS = frozenset(("warranty_expired", "warranty_expiring", "hardware_old"))  # they compare with today


def allowed_values_rule(column: str, severity: str = SEVERITY_WARNING) -> Rule:
    """The rule flagging values of ``column`` (a custom field) outside its allowed set (compared case-insensitively;
    empty cells are not flagged)."""
    slug = re.sub(r"\W+", "_", column.casefold()).strip("_") or "column"
    return Rule(f"allowed_{slug}", f"{column}: value outside the allowed set", severity, (column,),
                _outside_allowed(column), column=column)  # fmt: skip


def _missing_in(kinds: tuple[str, ...], column: str) -> Check:
    def check(rows: QualityRows, setting: RuleSetting) -> tuple[Any, Any]:
        mask = rows.blank(column)
        if set(kinds) != set(KINDS):
            mask = rows.of_kind(kinds[0]) & mask
        return mask, ""

    return check


def required_column_rule(column: str, kinds: tuple[str, ...] = KINDS, severity: str = SEVERITY_WARNING) -> Rule:
    """The rule flagging objects of ``kinds`` whose ``column`` (any column, the operator's own included) is empty."""
    slug = re.sub(r"\W+", "_", column.casefold()).strip("_") or "column"
    who = "Devices" if kinds == (KIND_DEVICE,) else "VMs" if kinds == (KIND_VM,) else "Objects"
    return Rule(f"missing_{slug}", f"{who} without {column}", severity, (column,), _missing_in(kinds, column),
                column=column)  # fmt: skip


# --- running the rules ----------------------------------------------------------------------------------------


def quality_rows(row_sets: Sequence[RowSet], wanted: Sequence[str], today: date) -> QualityRows:
    """The ``wanted`` columns of the row sets, one after the other, as stripped text (object dtype), with ``Name``,
    ``ID`` (as it is) and ``Site`` for the findings. A column some sets lack is empty in their rows (as in the merged
    rows); a column no set has is left out, and the rules reading it record an error. Each set's batches are read
    once: only the wanted columns are kept."""
    import pandas as pd

    positions = [{name: position for position, name in enumerate(row_set.columns)} for row_set in row_sets]
    names = [name for name in dict.fromkeys((NAME, ID, SITE, *wanted)) if any(name in index for index in positions)]
    data: dict[str, list[Any]] = {name: [] for name in names}
    # Each column's values shared among its rows where they repeat (a status, a site, a platform): every batch read
    # back from a spool brings its own copy of each string, and the frame would keep one per row (hundreds of MB at
    # 500,000 objects). A column whose values hardly repeat (names, serials) stops being shared once that shows.
    shared: dict[str, dict[Any, Any] | None] = {name: {} for name in names if name not in (ID, NAME)}
    kinds: list[str] = []
    for row_set, index in zip(row_sets, positions, strict=True):
        for rows in row_set.each_batch():
            for name in names:
                if name in index:
                    values = _column(rows, index[name], strip=name != ID)
                    if (memo := shared.get(name)) is not None:
                        values = list(map(memo.setdefault, values, values))
                        if len(memo) > _SHARED_DISTINCT_MAX and len(memo) * 2 > len(data[name]) + len(values):
                            shared[name] = None
                    data[name] += values
                else:
                    data[name] += [""] * len(rows)
            if row_set.kind or TYPE not in index:
                kinds += [row_set.kind] * len(rows)
            else:
                kinds += map(_KIND_OF_TYPE.get, map(itemgetter(index[TYPE]), rows), repeat(""))
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in data.items()}, index=pd.RangeIndex(len(kinds))
    )
    return QualityRows(frame, pd.Series(kinds, index=frame.index, dtype=object), today)


_SHARED_DISTINCT_MAX = 4096  # distinct values a column's sharing keeps before it asks whether they repeat


def _column(rows: Sequence[Sequence[Any]], position: int, *, strip: bool) -> list[Any]:
    """One column of ``rows`` through C-level map() calls: measured several times faster than comprehensions (and
    than transposing with zip(*rows))."""
    values = list(map(itemgetter(position), rows))
    if strip:  # cells are str, int or float (transform's contract); text is compared stripped
        try:
            values = list(map(str.strip, values))
        except TypeError:  # a number in a text column (a numeric custom field)
            values = [value.strip() if value.__class__ is str else str(value) for value in values]
    return values


def quality_evaluate(row_sets: Sequence[RowSet], config: QualityConfig) -> QualityReport:
    """Run every enabled rule of ``config`` over the rows; a rule that raises is recorded, never propagated.
    Findings come rule by rule, and within a rule in the order of the rows."""
    import numpy as np
    import pandas as pd

    enabled = [(rule, setting) for rule, setting in config.rules if setting.enabled]
    rows = quality_rows(row_sets, [c for rule, _ in enabled for c in rule.columns], config.today)
    picked = [rows.kind().to_numpy()]
    picked += [rows.frame[c].to_numpy() if c in rows.frame.columns else None for c in (ID, NAME, SITE)]
    results: list[RuleResult] = []
    findings: list[tuple[Any, ...]] = []
    for rule, setting in enabled:
        try:
            mask, value = rule.check(rows, setting)
            if isinstance(mask, pd.Series):
                mask = mask.fillna(False).to_numpy(dtype=bool)
            flagged = np.flatnonzero(mask)
            count = len(flagged)
            if count:
                if isinstance(value, pd.Series):
                    values = value.reindex(rows.index[flagged])
                    if pd.api.types.is_datetime64_any_dtype(values):
                        values = values.dt.strftime("%Y-%m-%d")
                    shown: Any = values.fillna("").astype(str).tolist()
                else:
                    shown = repeat(str(value), count)
                findings += zip(
                    repeat(rule.id, count),
                    repeat(rule.severity, count),
                    *(column[flagged].tolist() if column is not None else repeat("", count) for column in picked),
                    shown,
                    strict=False,
                )
            results.append(RuleResult(rule.id, rule.label, rule.severity, rule.columns, count, "", setting.threshold))
        except Exception as exc:  # a broken rule is reported, and the others still run
            results.append(
                RuleResult(rule.id, rule.label, rule.severity, rule.columns, 0, describe(exc), setting.threshold)
            )
    return QualityReport(results=results, findings=findings)


def describe(exc: BaseException) -> str:
    """An exception in one line (a ``KeyError``'s key without its quotes), at most 500 characters."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"{type(exc).__name__}: {text}"[:500]


def quality_config_build(
    *,
    today: date,
    overrides: Mapping[str, RuleSetting] | None = None,
    disabled: Sequence[str] = (),
    thresholds: Mapping[str, int] | None = None,
    allowed: Mapping[str, Sequence[str]] | None = None,
    required: Sequence[tuple[str, tuple[str, ...], str]] = (),
) -> QualityConfig:
    """Rules with settings: built-in defaults, then the settings (``disabled``, ``thresholds``), then the admin's
    ``overrides`` (by rule id, for built-in and allowed-set rules). ``allowed`` maps custom-field columns to their
    allowed values; each becomes a rule. ``required``: (column, kinds, severity) of the columns that must not be
    empty, a rule each."""
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
    for column, kinds, severity in required:
        rule = required_column_rule(column, kinds, severity)
        configured.append((rule, overrides.get(rule.id, RuleSetting(enabled=rule.id not in disabled))))
    return QualityConfig(rules=tuple(configured), today=today)
