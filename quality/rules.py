"""CMDB data quality: rules over the rows of an export, a chunk of rows at a time.

Pure functions: no Django, no database. The configuration (which rules are on, their thresholds, the allowed values
of custom fields) arrives as a ``QualityConfig`` built by ``quality.services`` from the settings and the admin. The
export evaluates the devices' and the VMs' rows (``RowSet``s, each in its own columns, as lists or as batches) while
its forked child writes the workbook (``quality.report``: the export's companion).

The rows are read once, batch by batch, into chunks of ``CHUNK_ROWS`` rows (``QualityRows``: the columns the rules
need, as stripped text, plus ``Name``, ``ID`` and ``Site`` for the findings); a chunk is dropped once every rule has
seen it, so memory does not grow with the inventory. A rule looks at one row at a time (``Check``: the positions of
the chunk's rows it flags and the value to show), or compares rows with each other (``SameKey``: rows sharing a
non-empty key). A ``SameKey`` rule keeps 9 bytes a row while the chunks pass (each key's hash, ``key_hashes``: the
same in every process, so that ``quality.kept`` can keep it for the next run; and whether it is empty) and the few
columns its findings need, spilled to an anonymous file; once every row has passed, the rows
whose hash another row shares are read back from the spill and their exact keys counted, then flagged: exact, with
memory for the duplicated keys only. Findings go to a ``FindingSink`` as they come, per rule (``quality.report``
spills them to disk), and come out rule by rule, and within a rule in the order of the rows. A rule that raises is
recorded with its error and flags nothing: a rule never fails the export.

Findings are the flagged rows, one per (rule, object): ``FINDING_COLUMNS``. Kinds are ``device`` and ``vm``.

Dates are read in the forms NetBox writes (``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)``) by the
standard library; any other text is handed to pandas' ISO 8601 parser (``parse_dates``), as the whole report was
until December 2026, so the answers are pandas' (pandas is then imported; most runs never need it).
"""

from __future__ import annotations

import marshal
import re
import struct
import tempfile
from calendar import monthrange
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import compress, repeat
from operator import itemgetter, not_
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # numpy and pandas are imported where a report is computed, not when Django loads the models
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

# Rows a chunk holds: measured over 50,000 and 250,000 objects, larger chunks were no faster, and a chunk of the
# columns the rules read is a few MB.
CHUNK_ROWS = 8192

Positions = list[int]
Shown = Sequence[str] | str  # the value shown for each flagged row, or one for all of them
Check = Callable[["QualityRows", "RuleSetting"], tuple[Positions, Shown]]


@dataclass(frozen=True, slots=True)
class SameKey:
    """A check comparing rows: a row is flagged when another row has its key. ``key`` gives each row's key (``""``:
    not compared); ``shown`` the value to show for each flagged row, given how many rows share its key."""

    key: Callable[[QualityRows], list[str]]
    shown: Callable[[QualityRows, list[int]], Shown]


@dataclass(frozen=True, slots=True)
class RuleSetting:
    """How one rule is configured for a run: on or off, its threshold, the allowed values (allowed-set rules)."""

    enabled: bool = True
    threshold: int | None = None
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A data-quality rule: what it is called, how bad a finding is, what it reads, and its check (one row at a time,
    or a ``SameKey`` comparing rows)."""

    id: str
    label: str
    severity: str
    columns: tuple[str, ...]
    check: Check | SameKey = field(repr=False, compare=False)
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
    """Every enabled rule's result, and the findings as rows in ``FINDING_COLUMNS`` order (rule by rule, and within
    a rule in the order of the rows): a list, or the sink they were given to."""

    results: list[RuleResult]
    findings: Iterable[tuple[Any, ...]]
    seconds: float = 0.0
    checked: int = -1  # the rows the one-row rules read (``quality.kept``: an incremental run's new rows); -1: all

    @property
    def summary(self) -> QualitySummary:
        return QualitySummary(
            results=self.results,
            findings=sum(r.count for r in self.results),
            seconds=self.seconds,
            checked=self.checked,
        )


@dataclass(slots=True)
class QualitySummary:
    """What travels back from the writing child: the results without the findings (they are in the CSV)."""

    results: list[RuleResult]
    findings: int
    seconds: float = 0.0
    error: str = ""  # the whole report failed (the rows could not be read); the export still succeeds
    checked: int = -1  # the rows the one-row rules read (an incremental run's new rows); -1: all


# --- where findings go ----------------------------------------------------------------------------------------


class FindingSink(Protocol):
    """Where a report's findings go as the chunks pass: ``add`` a rule's findings (the rule's index among the
    enabled rules; in the order of the rows), ``drop`` all of a rule that failed; iterated, the findings rule by
    rule."""

    def add(self, rule: int, findings: list[tuple[Any, ...]]) -> None: ...

    def drop(self, rule: int) -> None: ...

    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...


class FindingList:
    """Findings kept in memory, per rule; iterated rule by rule (tests, small sets)."""

    def __init__(self) -> None:
        self._rules: dict[int, list[tuple[Any, ...]]] = {}

    def add(self, rule: int, findings: list[tuple[Any, ...]]) -> None:
        self._rules.setdefault(rule, []).extend(findings)

    def drop(self, rule: int) -> None:
        self._rules.pop(rule, None)

    def findings(self) -> list[tuple[Any, ...]]:
        return [finding for rule in sorted(self._rules) for finding in self._rules[rule]]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.findings())


_LENGTH = struct.Struct("<Q")


class _Spill:
    """Records (``marshal``led values) appended to an anonymous file (in ``folder``, or the system's temporary
    folder) and read back in order, or one at a time by the offset ``add`` returned; gone when closed."""

    def __init__(self, folder: Path | None) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115  # closed by close()
        self._end = 0

    def add(self, value: Any) -> int:
        data = marshal.dumps(value)
        offset = self._end
        self._file.seek(offset)
        self._file.write(_LENGTH.pack(len(data)))
        self._file.write(data)
        self._end += _LENGTH.size + len(data)
        return offset

    def read(self, offset: int) -> Any:
        self._file.seek(offset)
        (size,) = _LENGTH.unpack(self._file.read(_LENGTH.size))
        return marshal.loads(self._file.read(size))  # noqa: S302  # our own file

    def __iter__(self) -> Iterator[Any]:
        offset = 0
        while offset < self._end:
            self._file.seek(offset)
            (size,) = _LENGTH.unpack(self._file.read(_LENGTH.size))
            yield marshal.loads(self._file.read(size))  # noqa: S302  # our own file
            offset += _LENGTH.size + size

    def close(self) -> None:
        self._file.close()


class FindingSpools:
    """Each rule's findings spilled to an anonymous file in ``folder`` as they come (a batch a chunk), iterated rule
    by rule: the findings are never all in memory. A context manager: the files go when it closes."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._spills: dict[int, _Spill] = {}

    def add(self, rule: int, findings: list[tuple[Any, ...]]) -> None:
        if rule not in self._spills:
            self._spills[rule] = _Spill(self._folder)
        self._spills[rule].add(findings)

    def drop(self, rule: int) -> None:
        if (spill := self._spills.pop(rule, None)) is not None:
            spill.close()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for rule in sorted(self._spills):
            yield from self.of_rule(rule)

    def of_rule(self, rule: int) -> Iterator[tuple[Any, ...]]:
        """One rule's findings, in the order they came."""
        if rule in self._spills:
            for batch in self._spills[rule]:
                yield from batch

    def close(self) -> None:
        for spill in self._spills.values():
            spill.close()
        self._spills.clear()

    def __enter__(self) -> FindingSpools:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
    # An incremental run's: beside each batch, each row's pick (``exports.companions.KindRows.picks``).
    picks: Callable[[], Iterable[Sequence[int]]] | None = None
    # The rows' spool (``exports.companions.KindRows.spool``): with its index, an incremental run reads only the rows
    # made anew, and the ids of the others, from it (``quality.kept``).
    spool: Path | None = None

    def each_batch(self) -> Iterable[Sequence[Sequence[Any]]]:
        return self.batches() if self.batches is not None else (self.rows,)


Day = tuple[date, str]  # a parsed date and how it is shown (YYYY-MM-DD)


class QualityRows:
    """What the rules read of a chunk of rows: the columns they need as lists of stripped text (``ID`` as it is),
    each row's kind, the day dates are compared against, and what several rules derive from a column (blank cells,
    parsed dates, case-folded keys), derived once per chunk."""

    def __init__(self, columns: dict[str, list[Any]], kinds: list[str], today: date, dates: DateReader) -> None:
        self.columns = columns
        self.kinds = kinds
        self.size = len(kinds)
        self.today = today
        self._dates = dates
        self._derived: dict[tuple[str, str], Any] = {}

    def text(self, column: str) -> list[Any]:
        if column not in self.columns:
            raise KeyError(f"column {column!r} is not in the CMDB rows")
        return self.columns[column]

    def blank(self, column: str) -> Positions:
        """The positions of the rows whose ``column`` is empty."""
        return self._derive("blank", column, lambda: list(compress(range(self.size), map(not_, self.text(column)))))

    def of_kind(self, kind: str, positions: Positions) -> Positions:
        """Those of ``positions`` whose row is of ``kind``."""
        kinds = self.kinds
        return [position for position in positions if kinds[position] == kind]

    def key(self, column: str) -> list[str]:
        """Values compared case-insensitively (``Ö`` and ``ö`` alike: casefold)."""
        return self._derive("key", column, lambda: list(map(str.casefold, self.text(column))))

    def dates(self, column: str) -> list[Day | None]:
        """Each row's date in ``column`` (a UTC calendar day), or ``None`` (an empty or unreadable cell)."""
        return self._derive("dates", column, lambda: self._dates.days(self.text(column)))

    def take(self, positions: Positions) -> QualityRows:
        """The rows at ``positions`` (in that order)."""
        pick = _picker(positions)
        columns = {name: pick(values) for name, values in self.columns.items()}
        return QualityRows(columns, pick(self.kinds), self.today, self._dates)

    def findings(self, rule: Rule, positions: Positions, shown: Shown) -> list[tuple[Any, ...]]:
        """The findings of ``rule`` for the rows at ``positions``."""
        count = len(positions)
        pick = _picker(positions) if count != self.size else list
        picked = [self.kinds, *(self.columns.get(name) for name in (ID, NAME, SITE))]
        values = repeat(shown, count) if isinstance(shown, str) else shown
        return list(
            zip(
                repeat(rule.id, count),
                repeat(rule.severity, count),
                *(pick(column) if column is not None else repeat("", count) for column in picked),
                values,
                strict=False,
            )
        )

    def _derive(self, what: str, column: str, make: Callable[[], Any]) -> Any:
        if (what, column) not in self._derived:
            self._derived[what, column] = make()
        return self._derived[what, column]


def _picker(positions: Positions) -> Callable[[list[Any]], list[Any]]:
    """A function picking the values at ``positions`` from a list: ``itemgetter``, at C speed, where it can."""
    if len(positions) > 1:
        getter = itemgetter(*positions)
        return lambda values: list(getter(values))
    return lambda values: [values[position] for position in positions]


class DateReader:
    """Parses date cells, remembering each text's answer across chunks (a column's dates repeat: a few thousand
    days; at most ``_MEMO_MAX`` texts are remembered)."""

    _MEMO_MAX = 1 << 16

    def __init__(self) -> None:
        self._memo: dict[str, Day | None] = {}

    def days(self, texts: list[str]) -> list[Day | None]:
        memo = self._memo
        unknown = {text for text in texts if text and text not in memo}
        if unknown:
            if len(memo) + len(unknown) > self._MEMO_MAX:
                memo.clear()
            hard = []
            for text in unknown:
                day = _iso_day(text)
                if day is None:
                    hard.append(text)
                else:
                    memo[text] = day
            if hard:
                memo.update(_pandas_days(hard))
        get = memo.get
        return [get(text) if text else None for text in texts]


_ISO_DATE = re.compile(r"([1-9]\d{3})-(\d\d)-(\d\d)")
_ISO_DATETIME = re.compile(r"[1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)?")


def _iso_day(text: str) -> Day | None:
    """The UTC calendar day of ``text`` in one of the forms NetBox writes, or ``None`` for any other text (pandas
    decides those). Only what pandas' ISO 8601 parser reads the same: years 1000 to 9999, at most microseconds."""
    try:
        if match := _ISO_DATE.fullmatch(text):
            day = date(int(match[1]), int(match[2]), int(match[3]))
        elif _ISO_DATETIME.fullmatch(text):
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC)
            day = moment.date()
        else:
            return None
    except (ValueError, OverflowError):  # not a day in the calendar: pandas says what it is
        return None
    return (day, day.isoformat()) if day.year >= 1000 else None


def _pandas_days(texts: list[str]) -> dict[str, Day | None]:
    """What pandas' ISO 8601 parser makes of ``texts`` (``parse_dates``), as days shown as pandas formats them."""
    import pandas as pd

    parsed = parse_dates(pd.Series(texts, dtype=object))
    shown = parsed.dt.strftime("%Y-%m-%d")
    days: dict[str, Day | None] = {}
    for text, moment, label in zip(texts, parsed.tolist(), shown.tolist(), strict=True):
        if pd.isna(moment):
            days[text] = None
        else:
            try:
                day = date(moment.year, moment.month, moment.day)
            except ValueError:  # a year Python's dates do not hold: before the first, after the last
                day = date.min if moment.year < date.min.year else date.max
            days[text] = (day, label)
    return days


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


# --- the checks: each returns the positions of the rows it flags and the value to show for each (or for all) ---


def _missing(kind: str, column: str) -> Check:
    def check(rows: QualityRows, setting: RuleSetting) -> tuple[Positions, Shown]:
        return rows.of_kind(kind, rows.blank(column)), ""

    return check


def _name_keys(rows: QualityRows) -> list[str]:
    return [f"{kind}\x00{name}" if name else "" for kind, name in zip(rows.kinds, rows.key(NAME), strict=True)]


def _name_shown(rows: QualityRows, sizes: list[int]) -> Shown:
    return [f"same name as {size - 1} other(s)" for size in sizes]


def _serial_keys(rows: QualityRows) -> list[str]:
    return rows.key("Serial number")


def _serial_shown(rows: QualityRows, sizes: list[int]) -> Shown:
    return rows.text("Serial number")


# A dated rule flags the rows whose day in its column is within bounds: ``(first, last)`` days as ordinals, either
# ``None`` for no bound; the bounds come from the run's day and the rule's threshold (``quality.kept`` evaluates the
# kept days of an incremental run's unchanged rows against them).
Bounds = tuple[int | None, int | None]


def _dated(column: str, bounds: Callable[[date, RuleSetting], Bounds]) -> Check:
    def check(rows: QualityRows, setting: RuleSetting) -> tuple[Positions, Shown]:
        first, last = bounds(rows.today, setting)
        if last is not None and last < 1:  # before the first day there is
            return [], []
        low = date.fromordinal(first) if first is not None else date.min
        high = date.fromordinal(last) if last is not None else date.max
        days = rows.dates(column)
        positions = [position for position in compress(range(rows.size), days) if low <= days[position][0] <= high]  # type: ignore[index]
        return positions, [days[position][1] for position in positions]  # type: ignore[index]

    return check


def _expired_bounds(today: date, setting: RuleSetting) -> Bounds:
    return None, today.toordinal() - 1  # before today


def _expiring_bounds(today: date, setting: RuleSetting) -> Bounds:
    days = setting.threshold if setting.threshold is not None else 90
    try:
        last = today + timedelta(days=days)
    except OverflowError:  # beyond the last day Python's dates hold: pandas' answer (its day, or its error)
        import pandas as pd

        pd.Timestamp(today) + pd.Timedelta(days=days)
        last = date.max
    return today.toordinal(), last.toordinal()


def _years_before(day: date, years: int) -> date:
    """``years`` before ``day``, the day of the month clamped to the month's last (pandas' ``DateOffset``)."""
    year = day.year - years
    return date(year, day.month, min(day.day, monthrange(year, day.month)[1]))


def _old_bounds(today: date, setting: RuleSetting) -> Bounds:
    years = setting.threshold if setting.threshold is not None else 5
    return None, _years_before(today, years).toordinal() - 1  # bought before the limit


_warranty_expired = _dated(WARRANTY_COLUMN, _expired_bounds)
_warranty_expiring = _dated(WARRANTY_COLUMN, _expiring_bounds)
_hardware_old = _dated(BUY_DATE_COLUMN, _old_bounds)


def _unreadable_dates(rows: QualityRows, setting: RuleSetting) -> tuple[Positions, Shown]:
    found: dict[int, str] = {}
    for column in (WARRANTY_COLUMN, BUY_DATE_COLUMN):
        text, days = rows.text(column), rows.dates(column)
        for position in compress(range(rows.size), text):  # the cells not empty
            if days[position] is None and position not in found:
                found[position] = f"{column}: {text[position]}"
    positions = sorted(found)
    return positions, [found[position] for position in positions]


def _outside_allowed(column: str) -> Check:
    def check(rows: QualityRows, setting: RuleSetting) -> tuple[Positions, Shown]:
        allowed = {value.strip().casefold() for value in setting.allowed}
        text = rows.text(column)
        positions = [position for position, key in enumerate(rows.key(column)) if key and key not in allowed]
        return positions, [text[position] for position in positions]

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
    Rule("duplicate_name", "Duplicate names within a kind", SEVERITY_ERROR, (NAME,),
         SameKey(_name_keys, _name_shown)),
    Rule("duplicate_serial", "Duplicate serial numbers", SEVERITY_ERROR, ("Serial number",),
         SameKey(_serial_keys, _serial_shown)),
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
# The dated rules' checks, with the column each reads and its bounds (``_dated``).
DATED_CHECKS: dict[Check, tuple[str, Callable[[date, RuleSetting], Bounds]]] = {
    _warranty_expired: (WARRANTY_COLUMN, _expired_bounds),
    _warranty_expiring: (WARRANTY_COLUMN, _expiring_bounds),
    _hardware_old: (BUY_DATE_COLUMN, _old_bounds),
}


def allowed_values_rule(column: str, severity: str = SEVERITY_WARNING) -> Rule:
    """The rule flagging values of ``column`` (a custom field) outside its allowed set (compared case-insensitively;
    empty cells are not flagged)."""
    slug = re.sub(r"\W+", "_", column.casefold()).strip("_") or "column"
    return Rule(f"allowed_{slug}", f"{column}: value outside the allowed set", severity, (column,),
                _outside_allowed(column), column=column)  # fmt: skip


def _missing_in(kinds: tuple[str, ...], column: str) -> Check:
    def check(rows: QualityRows, setting: RuleSetting) -> tuple[Positions, Shown]:
        positions = rows.blank(column)
        if set(kinds) != set(KINDS):
            positions = rows.of_kind(kinds[0], positions)
        return positions, ""

    return check


def required_column_rule(column: str, kinds: tuple[str, ...] = KINDS, severity: str = SEVERITY_WARNING) -> Rule:
    """The rule flagging objects of ``kinds`` whose ``column`` (any column, the operator's own included) is empty."""
    slug = re.sub(r"\W+", "_", column.casefold()).strip("_") or "column"
    who = "Devices" if kinds == (KIND_DEVICE,) else "VMs" if kinds == (KIND_VM,) else "Objects"
    return Rule(f"missing_{slug}", f"{who} without {column}", severity, (column,), _missing_in(kinds, column),
                column=column)  # fmt: skip


# --- running the rules ----------------------------------------------------------------------------------------


def quality_rows(
    row_sets: Sequence[RowSet], wanted: Sequence[str], today: date, *, chunk_rows: int = CHUNK_ROWS
) -> Iterator[QualityRows]:
    """The ``wanted`` columns of the row sets, one after the other, in chunks of ``chunk_rows`` rows (at least one
    chunk, empty when there are no rows), as stripped text, with ``Name``, ``ID`` (as it is) and ``Site`` for the
    findings. A column some sets lack is empty in their rows (as in the merged rows); a column no set has is left
    out, and the rules reading it record an error. Each set's batches are read once: only the wanted columns are
    kept, and a chunk only until the next is asked for."""
    positions = [{name: position for position, name in enumerate(row_set.columns)} for row_set in row_sets]
    names = [name for name in dict.fromkeys((NAME, ID, SITE, *wanted)) if any(name in index for index in positions)]
    dates = DateReader()
    data: dict[str, list[Any]] = {name: [] for name in names}
    kinds: list[str] = []
    chunks = 0
    for row_set, index in zip(row_sets, positions, strict=True):
        for batch in row_set.each_batch():
            start = 0
            while start < len(batch):
                room = chunk_rows - len(kinds)
                rows = batch[start : start + room] if start or len(batch) > room else batch
                start += len(rows)
                for name in names:
                    if name in index:
                        data[name] += _column(rows, index[name], strip=name != ID)
                    else:
                        data[name] += [""] * len(rows)
                if row_set.kind or TYPE not in index:
                    kinds += [row_set.kind] * len(rows)
                else:
                    kinds += map(_KIND_OF_TYPE.get, map(itemgetter(index[TYPE]), rows), repeat(""))
                if len(kinds) >= chunk_rows:
                    yield QualityRows(data, kinds, today, dates)
                    chunks += 1
                    data, kinds = {name: [] for name in names}, []
    if kinds or not chunks:
        yield QualityRows(data, kinds, today, dates)


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


def quality_evaluate(
    row_sets: Sequence[RowSet],
    config: QualityConfig,
    *,
    findings: FindingSink | None = None,
    folder: Path | None = None,
    chunk_rows: int | None = None,
) -> QualityReport:
    """Run every enabled rule of ``config`` over the rows, a chunk at a time; a rule that raises is recorded, never
    propagated. Findings go to ``findings`` as they come (rule by rule, and within a rule in the order of the rows,
    once the sink is read), or, without a sink, to a list (``QualityReport.findings``). ``folder``: where the
    comparing rules spill what they keep of each chunk (an anonymous file; the system's temporary folder if None).
    Rows that cannot be read (a row shorter than its columns) raise: the report cannot be made. ``chunk_rows``:
    ``CHUNK_ROWS`` unless given."""
    enabled = [(rule, setting) for rule, setting in config.rules if setting.enabled]
    sink: FindingSink = findings if findings is not None else FindingList()
    counts = [0] * len(enabled)
    errors: dict[int, str] = {}

    def failed(number: int, exc: Exception) -> None:
        errors[number] = describe(exc)
        counts[number] = 0
        sink.drop(number)

    keyed = _Keyed(enabled, folder)
    try:
        wanted = [column for rule, _ in enabled for column in rule.columns]
        for rows in quality_rows(row_sets, wanted, config.today, chunk_rows=chunk_rows or CHUNK_ROWS):
            for number, (rule, setting) in enumerate(enabled):
                if number in errors:
                    continue
                try:
                    if isinstance(rule.check, SameKey):
                        keyed.add(number, rule.check.key(rows))
                        continue
                    positions, shown = rule.check(rows, setting)
                    if positions:
                        sink.add(number, rows.findings(rule, positions, shown))
                        counts[number] += len(positions)
                except Exception as exc:  # a broken rule is reported, and the others still run
                    failed(number, exc)
            keyed.keep(rows, errors)
        for number, count in keyed.findings(sink, config.today, errors, failed):
            counts[number] = count
    finally:
        keyed.close()
    results = [
        RuleResult(rule.id, rule.label, rule.severity, rule.columns, counts[number], errors.get(number, ""),
                   setting.threshold)
        for number, (rule, setting) in enumerate(enabled)
    ]  # fmt: skip
    return QualityReport(results=results, findings=sink.findings() if isinstance(sink, FindingList) else sink)


def shared_key_findings(rule: Rule, rows: QualityRows, sizes: Mapping[str, int]) -> list[tuple[Any, ...]]:
    """A comparing rule's (``SameKey``) findings among ``rows``: those whose key ``sizes`` counts more than once."""
    assert isinstance(rule.check, SameKey)
    keys = rule.check.key(rows)
    flagged = [position for position, key in enumerate(keys) if sizes[key] > 1]
    if not flagged:
        return []
    shared_rows = rows.take(flagged)
    shown = rule.check.shown(shared_rows, [sizes[keys[position]] for position in flagged])
    return shared_rows.findings(rule, list(range(len(flagged))), shown)


class _Keyed:
    """The comparing rules' (``SameKey``) part of a report: while the chunks pass, each row's key hash and whether
    it is empty (numpy arrays, 9 bytes a row and rule), and the chunk's columns their findings need, spilled; then
    the rows whose hash another row shares are read back, their exact keys counted, and those shared flagged."""

    def __init__(self, enabled: list[tuple[Rule, RuleSetting]], folder: Path | None) -> None:
        self.rules = {number: rule for number, (rule, _) in enumerate(enabled) if isinstance(rule.check, SameKey)}
        self.hashes: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {number: [] for number in self.rules}
        self.columns = {ID, NAME, SITE, *(column for rule in self.rules.values() for column in rule.columns)}
        self.spill = _Spill(folder) if self.rules else None
        self.offsets: list[int] = []
        self.stable = True  # every hash is ``key_hashes``' (the same in every process): they may be kept

    def add(self, number: int, keys: list[str]) -> None:
        import numpy as np

        size = len(keys)
        if _key_hash is None:
            try:
                self.hashes[number].append(key_hashes(keys))
                return
            except TypeError:  # keys that are not all text: Python's hash, which differs between processes
                self.stable = False
        hashes = np.fromiter(map(_key_hash or hash, keys), dtype=np.int64, count=size)
        self.hashes[number].append((hashes, np.fromiter(map(bool, keys), dtype=bool, count=size)))

    def keep(self, rows: QualityRows, errors: Mapping[int, str]) -> None:
        if self.spill is not None and any(number not in errors for number in self.rules):
            kept = {name: values for name, values in rows.columns.items() if name in self.columns}
            self.offsets.append(self.spill.add((rows.kinds, kept)))

    def findings(
        self, sink: FindingSink, today: date, errors: Mapping[int, str], failed: Callable[[int, Exception], None]
    ) -> Iterator[tuple[int, int]]:
        """Each comparing rule's number and count, once its findings are in ``sink``."""
        import numpy as np

        dates = DateReader()
        for number, rule in self.rules.items():
            if number in errors:
                continue
            assert isinstance(rule.check, SameKey) and self.spill is not None
            try:
                chunks = self.hashes.pop(number)
                hashes = np.concatenate([chunk[filled] for chunk, filled in chunks]) if chunks else np.array([])
                values, times = np.unique(hashes, return_counts=True)
                shared = values[times > 1]  # sorted
                # Per chunk: the rows whose hash another row shares, read back from the spill.
                candidates = [_among(chunk, filled, shared) for chunk, filled in chunks]
                del chunks, hashes, values, times, shared
                sizes = Counter(key for rows in self._read(candidates, today, dates) for key in rule.check.key(rows))
                count = 0
                for rows in self._read(candidates, today, dates):
                    findings = shared_key_findings(rule, rows, sizes)
                    if findings:
                        sink.add(number, findings)
                        count += len(findings)
                yield number, count
            except Exception as exc:  # a broken rule is reported, and the others still run
                failed(number, exc)

    def _read(self, candidates: list[np.ndarray], today: date, dates: DateReader) -> Iterator[QualityRows]:
        """The rows at each chunk's ``candidates`` positions, read back from the spill."""
        assert self.spill is not None
        for positions, offset in zip(candidates, self.offsets, strict=True):
            if len(positions):
                kinds, columns = self.spill.read(offset)
                yield QualityRows(columns, kinds, today, dates).take(positions.tolist())

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


def _among(hashes: np.ndarray, filled: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """The positions of the ``filled`` rows whose hash is in ``shared`` (sorted): a binary search each, where
    ``numpy.isin`` would sort both sides again for every chunk."""
    import numpy as np

    if not len(shared):
        return np.flatnonzero(np.zeros(0, dtype=bool))
    at = np.minimum(np.searchsorted(shared, hashes), len(shared) - 1)
    return np.flatnonzero(filled & (shared[at] == hashes))


# None: keys are hashed by ``key_hashes``. A test sets a function of one key here to make keys collide on purpose.
_key_hash: Callable[[str], int] | None = None

# ``key_hashes``: a polynomial over the keys' code points modulo 2**64 (``_HASH_BASE`` odd, so its powers have
# inverses), each key's sum taken from running sums over all the keys' code points at once, then mixed
# (splitmix64's finaliser) with the key's length.
_HASH_BASE = 0x100000001B3
_HASH_POWERS: list[np.ndarray] = []  # the base's powers and their inverses, as many as the longest text yet


def _hash_powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if not _HASH_POWERS or len(_HASH_POWERS[0]) < count:
        size = max(count, 2 * len(_HASH_POWERS[0]) if _HASH_POWERS else 1 << 16)
        powers = []
        for base in (_HASH_BASE, pow(_HASH_BASE, -1, 1 << 64)):
            factors = np.full(size, base, dtype=np.uint64)
            factors[0] = 1
            powers.append(np.cumprod(factors, dtype=np.uint64))  # modulo 2**64: unsigned numpy products wrap
        _HASH_POWERS[:] = powers
    return _HASH_POWERS[0], _HASH_POWERS[1]


def key_hashes(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each key's 64-bit hash (``int64``), the same in every process and every run (unlike Python's ``hash``: an
    incremental run compares its new rows' hashes with those a previous run kept), and whether it is not empty.
    Equal keys have equal hashes; rows sharing a hash are then compared by their keys. Raises ``TypeError`` when a
    key is not text."""
    import numpy as np

    size = len(keys)
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=size)
    codes = np.frombuffer("".join(keys).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    total = len(codes)
    powers, inverses = _hash_powers(total + 1)
    sums = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(codes * powers[:total], dtype=np.uint64)])
    ends = np.cumsum(lengths)
    starts = ends - lengths
    hashes = (sums[ends] - sums[starts]) * inverses[starts]
    hashes += lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    hashes ^= hashes >> np.uint64(30)
    hashes *= np.uint64(0xBF58476D1CE4E5B9)
    hashes ^= hashes >> np.uint64(27)
    hashes *= np.uint64(0x94D049BB133111EB)
    hashes ^= hashes >> np.uint64(31)
    return hashes.view(np.int64), lengths > 0


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
