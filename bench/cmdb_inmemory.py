"""The CMDB table as it was before issue 25: built in memory in every process from the merged CSV (pandas.factorize,
numpy, per-distinct-value caches built on demand). Kept only as the test oracle of ``cmdb.table`` (its answers must
be the same for every query) and as the "before" of ``bench/cmdb_bench.py``; production code never imports it.

The matching rules are those of ``cmdb.table``'s docstring.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from cmdb.query import (
    DATASETS,
    DATE,
    NUMBER,
    OPERATORS,
    RANGE_OPERATORS,
    Column,
    Filter,
    Query,
    QueryError,
    column_key,
    column_kind,
)
from exports.columns import DEVICE_COLUMNS, MERGED_COLUMNS, TYPE_COLUMN, VM_COLUMNS

# Separates a column's distinct values in its search text; dropped from search terms, so a match stays in one value.
SEP = "\x1e"
_DIGITS = re.compile(r"(\d+)")
_DATE_BOUND = re.compile(r"\d{4}(?:-\d\d(?:-\d\d(?:T\d\d(?::\d\d(?::\d\d)?)?)?)?)?")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(slots=True)
class ColumnData:
    """One column: a code per row into ``values`` (distinct cells), plus per-distinct-value caches built on demand."""

    label: str
    kind: str
    codes: np.ndarray
    values: list[str]
    empty_code: int
    _folded: list[str] | None = None
    _array: np.ndarray | None = None
    _text: str | None = None
    _starts: list[int] = field(default_factory=list)
    _numbers: np.ndarray | None = None
    _ranks: dict[bool, np.ndarray] = field(default_factory=dict)
    _lengths: tuple[np.ndarray, np.ndarray] | None = None

    def array(self) -> np.ndarray:
        """The distinct values as an object array, for taking cells by code."""
        if self._array is None:
            self._array = np.array(self.values, dtype=object)
        return self._array

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Per distinct value: its longest line and its length, in characters."""
        if self._lengths is None:
            lines = [max(map(len, value.split("\n"))) if "\n" in value else len(value) for value in self.values]
            self._lengths = (np.array(lines, dtype=np.int64), np.fromiter(map(len, self.values), dtype=np.int64))
        return self._lengths

    def folded(self) -> list[str]:
        if self._folded is None:
            self._folded = [value.casefold() for value in self.values]
        return self._folded

    def search(self, needle: str) -> np.ndarray | None:
        """Which distinct values contain ``needle`` (folded), or ``None`` when none does.

        ``str.find`` over one text of the folded distinct values, jumping to the next value after each hit; when
        hits are many (a one-letter search), a plain test of every value is cheaper and takes over.
        """
        if self._text is None:
            folded = [value.replace(SEP, " ") for value in self.folded()]
            starts: list[int] = []
            position = 0
            for value in folded:
                starts.append(position)
                position += len(value) + 1
            self._starts, self._text = starts, SEP.join(folded)
        text, starts = self._text, self._starts
        position = text.find(needle)
        if position == -1:
            return None
        table = np.zeros(len(starts), dtype=bool)
        last = len(starts) - 1
        budget = max(64, len(starts) // 8)
        while position != -1:
            index = bisect_right(starts, position) - 1
            table[index] = True
            budget -= 1
            if index >= last:
                break
            if not budget:
                return np.array([needle in value for value in self.folded()], dtype=bool)
            position = text.find(needle, starts[index + 1])
        return table

    def numbers(self) -> np.ndarray:
        """The distinct values as floats; NaN for blanks and text."""
        if self._numbers is None:
            self._numbers = np.array([_float(value) for value in self.values], dtype=np.float64)
        return self._numbers

    def ranks(self, descending: bool) -> np.ndarray:
        """A sort rank per distinct value; blanks rank after everything in both directions."""
        cached = self._ranks.get(descending)
        if cached is not None:
            return cached
        if self.kind == NUMBER:
            numbers = self.numbers()
            folded = self.folded()
            # Numbers first (by value), then any text a number column holds (by text).
            keys: list[Any] = [
                (0, number, "") if not math.isnan(number) else (1, 0.0, folded[code])
                for code, number in enumerate(numbers)
            ]
        elif self.kind == DATE:
            keys = self.folded()
        else:
            keys = [(_natural(text), raw) for text, raw in zip(self.folded(), self.values, strict=True)]
        order = sorted((code for code in range(len(self.values)) if code != self.empty_code), key=keys.__getitem__)
        ranks = np.empty(len(self.values), dtype=np.int32)
        positions = np.arange(len(order), dtype=np.int32)
        if descending:
            positions = positions[::-1].copy()
        ranks[np.array(order, dtype=np.int64)] = positions
        if self.empty_code >= 0:
            ranks[self.empty_code] = len(self.values)
        self._ranks[descending] = ranks
        return ranks


def _float(value: str) -> float:
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        return math.nan
    number = float(text)
    return number if math.isfinite(number) else math.nan


def _natural(text: str) -> list[Any]:
    """A key that orders digit runs by their number (``srv2`` < ``srv10``) without converting them to ``int``."""
    parts: list[Any] = _DIGITS.split(text)
    for index in range(1, len(parts), 2):
        digits = parts[index].lstrip("0")
        parts[index] = (len(digits), digits)
    return parts


def factorize(label: str, cells: Sequence[str]) -> ColumnData:
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(cells, dtype=object), sort=False)
    values = [str(value) for value in uniques.tolist()]
    try:
        empty_code = values.index("")
    except ValueError:
        empty_code = -1
    return ColumnData(
        label=label, kind=column_kind(label), codes=codes.astype(np.int32), values=values, empty_code=empty_code
    )


def value_table(data: ColumnData, condition: Filter) -> np.ndarray:
    """Whether each distinct value of the column meets the condition."""
    op, raw = condition.op, condition.value
    size = len(data.values)
    table = np.zeros(size, dtype=bool)
    if op in ("empty", "notempty"):
        blank = np.array([not value.strip() for value in data.values], dtype=bool)
        return blank if op == "empty" else ~blank
    needle = raw.strip().casefold()
    if op == "contains":
        table[:] = [needle in value for value in data.folded()]
    elif op == "eq":
        if data.kind == NUMBER and not math.isnan(_float(raw)):
            table[:] = data.numbers() == _float(raw)
        else:
            table[:] = [value.strip() == needle for value in data.folded()]
    elif op in RANGE_OPERATORS:
        table[:] = _range_table(data, op, raw)
    elif op == "has":
        table[:] = [needle in {item.strip() for item in value.split(",") if item.strip()} for value in data.folded()]
    elif op == "ip":
        match = _ip_matcher(raw.strip())
        table[:] = [match(value) for value in data.values]
    else:
        raise QueryError(f"Unknown filter {op!r}; use one of: {', '.join(OPERATORS)}.", field=condition.column)
    return table


def _range_table(data: ColumnData, op: str, raw: str) -> np.ndarray | list[bool]:
    bound = raw.strip()
    if data.kind == NUMBER:
        number = _float(bound)
        if math.isnan(number):
            raise QueryError(f"{data.label!r} needs a number for {op}, not {raw!r}.", field=data.label)
        numbers = data.numbers()
        with np.errstate(invalid="ignore"):
            return numbers >= number if op == "gte" else numbers <= number
    if data.kind == DATE:
        bound = bound.replace(" ", "T")
        if not _DATE_BOUND.fullmatch(bound):
            raise QueryError(
                f"{data.label!r} needs an ISO date for {op} (2024, 2024-05, 2024-05-31 or 2024-05-31T12:00), "
                f"not {raw!r}.",
                field=data.label,
            )
        width = len(bound)
        dated = [bool(_DATE_BOUND.match(value)) for value in data.values]
        if op == "gte":
            return [ok and value[:width] >= bound for ok, value in zip(dated, data.values, strict=True)]
        return [ok and value[:width] <= bound for ok, value in zip(dated, data.values, strict=True)]
    raise QueryError(
        f"{data.label!r} is a text column: ranges (gte, lte) apply to numbers and dates.", field=data.label
    )


def _ip_matcher(value: str) -> Any:
    def addresses(cell: str) -> Iterator[str]:
        for part in cell.replace(";", ",").split(","):
            if part.strip():
                yield part.strip()

    try:
        if "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            return lambda cell: any(_in_network(address, network) for address in addresses(cell))
        address = str(ipaddress.ip_address(value))
        return lambda cell: any(part.split("/")[0] == address for part in addresses(cell))
    except ValueError:
        needle = value.casefold()
        return lambda cell: any(needle in part.casefold() for part in addresses(cell))


def _in_network(cell: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(cell.split("/")[0]) in network
    except ValueError:
        return False


class CmdbTable:
    """The rows of one export (its merged CSV), queryable as the devices, VMs or merged dataset."""

    def __init__(self, labels: Sequence[str], columns: Sequence[Sequence[str]]) -> None:
        """``labels``: the merged CSV's header; ``columns``: each column's cells, in row order."""
        if len(labels) != len(columns):
            raise ValueError("one column of cells per label")
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate column labels")
        self.labels: list[str] = list(labels)
        self.size = len(columns[0]) if columns else 0
        self._data: dict[str, ColumnData] = {}
        for label, cells in zip(labels, columns, strict=True):
            self._data[label] = factorize(label, cells)
        self._lock = threading.Lock()
        self._row_ids: dict[str, int] | None = None
        self._datasets = self._dataset_rows()
        self._columns = {name: self._dataset_columns(name) for name in DATASETS}

    @classmethod
    def from_csv(cls, path: str | Path) -> CmdbTable:
        """Read a merged CSV (UTF-8, with or without a BOM; every cell as text)."""
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", engine="c")
        labels = [str(label) for label in frame.columns]
        return cls(labels, [frame[label].to_numpy(dtype=object) for label in labels])

    # --- shape --------------------------------------------------------------------------------------------------

    def columns(self, dataset: str) -> list[Column]:
        """The dataset's columns in their contract order (devices: the devices CSV's, VMs: the VMs CSV's)."""
        return self._columns[_dataset(dataset)]

    def count(self, dataset: str) -> int:
        return len(self._datasets[_dataset(dataset)])

    def _dataset_columns(self, dataset: str) -> list[Column]:
        if dataset == "devices":
            labels = [label for label in DEVICE_COLUMNS if label in self._data]
        elif dataset == "vms":
            labels = [label for label in VM_COLUMNS if label in self._data]
        else:
            labels = list(self.labels)
        columns: list[Column] = []
        used: set[str] = set()
        for label in labels:
            key = column_key(label)
            while key in used or key == "row_id":
                key += "_"
            used.add(key)
            columns.append(Column(key=key, label=label, kind=column_kind(label)))
        return columns

    def _dataset_rows(self) -> dict[str, np.ndarray]:
        everything = np.arange(self.size, dtype=np.int64)
        kinds = self._data.get(TYPE_COLUMN)
        if kinds is None:
            return {"devices": everything, "vms": everything[:0], "merged": everything}
        types = np.array(kinds.values, dtype=object)[kinds.codes] if self.size else np.array([], dtype=object)
        return {
            "devices": np.flatnonzero(types == "devices"),
            "vms": np.flatnonzero(types == "vms"),
            "merged": everything,
        }

    # --- rows ---------------------------------------------------------------------------------------------------

    def cell(self, row: int, label: str) -> str:
        data = self._data[label]
        return data.values[int(data.codes[row])]

    def row(self, row: int, labels: Sequence[str] | None = None) -> dict[str, str]:
        """One row as ``{label: text}`` (all columns of the table, or ``labels``)."""
        return {label: self.cell(row, label) for label in (self.labels if labels is None else labels)}

    def rows_values(self, rows: Sequence[int] | np.ndarray, labels: Sequence[str]) -> Iterator[tuple[str, ...]]:
        """The cells of ``rows`` in ``labels`` order, one tuple per row: a column-wise take, then zip."""
        indexes = np.asarray(rows, dtype=np.int64)
        if not len(indexes):
            return iter(())
        columns = [self._data[label].array()[self._data[label].codes[indexes]] for label in labels]
        return zip(*columns, strict=True)

    def longest(self, rows: Sequence[int] | np.ndarray, labels: Sequence[str]) -> tuple[list[int], list[int]]:
        """The longest line and the longest value of each of ``labels`` over ``rows``, in characters (a workbook's
        column widths): measured once per distinct value, then taken over the rows' codes."""
        indexes = np.asarray(rows, dtype=np.int64)
        lines: list[int] = []
        values: list[int] = []
        for label in labels:
            data = self._data[label]
            if not len(indexes):
                lines.append(0)
                values.append(0)
                continue
            present = np.unique(data.codes[indexes])
            line_lengths, value_lengths = data.lengths()
            lines.append(int(line_lengths[present].max()))
            values.append(int(value_lengths[present].max()))
        return lines, values

    def row_id(self, row: int) -> str:
        """``devices-<NetBox id>`` or ``vms-<NetBox id>``: unique across the merged rows."""
        kind = self.cell(row, TYPE_COLUMN) if TYPE_COLUMN in self._data else "devices"
        return f"{kind}-{self.cell(row, 'ID') if 'ID' in self._data else row}"

    def find(self, dataset: str, identifier: str) -> int | None:
        """The row of ``identifier`` (a ``row_id``, or a bare NetBox id when it names one row of the dataset)."""
        if self._row_ids is None:
            with self._lock:
                if self._row_ids is None:
                    self._row_ids = {self.row_id(row): row for row in range(self.size)}
        dataset = _dataset(dataset)
        members = self._datasets[dataset]
        text = identifier.strip()
        if text.isdigit():
            candidates = [self._row_ids.get(f"{kind}-{text}") for kind in ("devices", "vms")]
            found = [row for row in candidates if row is not None and _member(members, row)]
            if len(found) > 1:
                raise QueryError(
                    f"Both a device and a VM have id {text}; use devices-{text} or vms-{text}.", field="id"
                )
            return found[0] if found else None
        row = self._row_ids.get(text)
        return row if row is not None and _member(members, row) else None

    # --- the query ----------------------------------------------------------------------------------------------

    def select(self, query: Query) -> np.ndarray:
        """The matching rows (indexes into the table), in the query's order."""
        dataset = _dataset(query.dataset)
        mask = np.zeros(self.size, dtype=bool)
        mask[self._datasets[dataset]] = True
        allowed = {column.label for column in self.columns(dataset)}
        for condition in query.filters:
            mask &= self.mask(condition, allowed)
        for group in query.any_of:
            either = np.zeros(self.size, dtype=bool)
            for condition in group:
                either |= self.mask(condition, allowed)
            mask &= either
        for term in query.search.split():
            mask &= self._search(term)
        rows = np.flatnonzero(mask)
        if query.ordering and len(rows) > 1:
            keys = []
            for name in reversed(query.ordering):
                descending = name.startswith("-")
                label = name[1:] if descending else name
                if label not in allowed:
                    raise QueryError(f"Unknown column {label!r} to sort by.", field="ordering")
                data = self._data[label]
                keys.append(data.ranks(descending)[data.codes[rows]])
            rows = rows[np.lexsort(keys)]
        return rows

    def mask(self, condition: Filter, allowed: set[str] | None = None) -> np.ndarray:
        """The rows (all of the table) meeting one condition."""
        data = self._data.get(condition.column)
        if data is None or (allowed is not None and condition.column not in allowed):
            raise QueryError(f"Unknown column {condition.column!r}.", field=condition.column)
        table = value_table(data, condition)
        return table[data.codes]

    def _search(self, term: str) -> np.ndarray:
        """Rows with ``term`` in some cell: each column's distinct values are searched, then spread over the rows."""
        needle = term.casefold().replace(SEP, "")
        mask = np.zeros(self.size, dtype=bool)
        if not needle:
            mask[:] = True
            return mask
        for label in self.labels:
            if label == TYPE_COLUMN:
                continue
            data = self._data[label]
            table = data.search(needle)
            if table is not None:
                mask |= table[data.codes]
        return mask

    # --- counts -------------------------------------------------------------------------------------------------

    def group_counts(
        self, rows: Sequence[int] | np.ndarray, label: str, *, split: bool = False
    ) -> list[tuple[str, int]]:
        """``(value, count)`` over ``rows``, most frequent first, ties in order of first appearance among ``rows``.

        ``split``: count each item of a comma-separated list (Tags) instead of the whole cell; a blank cell counts
        as ``""`` either way.
        """
        data = self._data[label]
        codes = data.codes[np.asarray(rows, dtype=np.int64)]
        counts = np.bincount(codes, minlength=len(data.values))
        present, first = np.unique(codes, return_index=True)
        totals: dict[str, list[int]] = {}
        for code, seen in sorted(zip(present.tolist(), first.tolist(), strict=True), key=lambda pair: pair[1]):
            value = data.values[code]
            items = [item.strip() for item in value.split(",") if item.strip()] if split else [value]
            for position, item in enumerate(items or [""]):
                entry = totals.setdefault(item, [0, seen, position])
                entry[0] += int(counts[code])
        ordered = sorted(totals.items(), key=lambda pair: (-pair[1][0], pair[1][1], pair[1][2]))
        return [(value, total[0]) for value, total in ordered]


class RowDicts(Sequence[dict[str, str]]):
    """The table's rows as ``{label: text}`` dicts, made on demand (for code that reads rows one by one)."""

    def __init__(self, table: CmdbTable) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.size

    @overload
    def __getitem__(self, index: int) -> dict[str, str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, str]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self.table.row(row) for row in range(self.table.size)[index]]
        if not -self.table.size <= index < self.table.size:
            raise IndexError(index)
        return self.table.row(index % self.table.size)


def _member(rows: np.ndarray, row: int) -> bool:
    position = int(np.searchsorted(rows, row))
    return position < len(rows) and int(rows[position]) == row


def _dataset(name: str) -> str:
    if name not in DATASETS:
        raise QueryError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.", field="dataset")
    return name


def merged_columns() -> tuple[str, ...]:
    """The contract's merged columns (what a current export's merged CSV holds)."""
    return MERGED_COLUMNS
