"""The CMDB rows of one export as a column store in memory, and the one query function over it.

Pure: no Django. ``CmdbTable.from_csv`` reads a run's merged CSV (device rows then VM rows, ``netbox_type`` last)
and keeps, per column, its distinct values and an ``int32`` code per row (``pandas.factorize``). Every filter is
evaluated once per *distinct* value and then spread over the rows with one numpy take, sorting uses a rank per
distinct value and ``numpy.lexsort``, and the global search runs ``str.find`` over each column's case-folded
distinct values. The devices and VMs datasets are views of the same table (their rows, their contract columns), so
a run is held once. ``bench/cmdb_bench.py`` measures it at 20,000 devices + 30,000 VMs.

The words of a query (datasets, kinds, operators, ``Query``) are ``cmdb.query``; one column's values and how they
match are ``cmdb.matching``; this module holds the table, its datasets and rows, and runs queries over them.

Matching rules (the API, the page, the downloads and the chat assistant share them):

- text is compared case-insensitively (``str.casefold``, so ``STRASSE`` finds ``Straße``);
- ``contains``: substring; ``eq``: the whole value (numbers compare as numbers in number columns);
- ``empty`` / ``notempty``: the cell is (not) blank;
- ``gte`` / ``lte``: number columns compare numerically; date columns compare ISO text at the bound's precision
  (``lte=2024-05`` includes all of May); text columns have no ranges;
- ``has``: one item of a comma-separated list (Tags); ``ip``: an address matches the address part of a cell
  (``10.2.0.4`` finds ``10.2.0.4/24``), a network the addresses inside it, anything else is a substring;
- the global search: every whitespace-separated term must occur in some column of the row;
- sorting: numbers numerically, text naturally (``srv2`` before ``srv10``), dates as ISO text; empty cells last in
  both directions; ties keep the export's order (by NetBox id).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from cmdb.matching import SEP, ColumnData, factorize, value_table
from cmdb.query import DATASETS, Column, Filter, Query, QueryError, column_key, column_kind, column_kinds
from exports.columns import DEFAULT_SET, MERGED_COLUMNS, TYPE_COLUMN, ColumnSet


class CmdbTable:
    """The rows of one export (its merged CSV), queryable as the devices, VMs or merged dataset."""

    def __init__(
        self, labels: Sequence[str], columns: Sequence[Sequence[str]], column_set: ColumnSet | None = None
    ) -> None:
        """``labels``: the merged CSV's header; ``columns``: each column's cells, in row order; ``column_set``: the
        one the run wrote its files with (the datasets' columns and their kinds), the default if not given."""
        if len(labels) != len(columns):
            raise ValueError("one column of cells per label")
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate column labels")
        self.labels: list[str] = list(labels)
        self.size = len(columns[0]) if columns else 0
        self.column_set = column_set or DEFAULT_SET
        self._kinds = column_kinds(self.column_set)
        self._data: dict[str, ColumnData] = {}
        for label, cells in zip(labels, columns, strict=True):
            self._data[label] = factorize(label, cells, column_kind(label, self._kinds))
        self._lock = threading.Lock()
        self._row_ids: dict[str, int] | None = None
        self._datasets = self._dataset_rows()
        self._columns = {name: self._dataset_columns(name) for name in DATASETS}

    @classmethod
    def from_csv(cls, path: str | Path, column_set: ColumnSet | None = None) -> CmdbTable:
        """Read a merged CSV (UTF-8, with or without a BOM; every cell as text) written with ``column_set``."""
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", engine="c")
        labels = [str(label) for label in frame.columns]
        return cls(labels, [frame[label].to_numpy(dtype=object) for label in labels], column_set)

    # --- shape --------------------------------------------------------------------------------------------------

    def columns(self, dataset: str) -> list[Column]:
        """The dataset's columns in their contract order (devices: the devices CSV's, VMs: the VMs CSV's)."""
        return self._columns[_dataset(dataset)]

    def count(self, dataset: str) -> int:
        return len(self._datasets[_dataset(dataset)])

    def _dataset_columns(self, dataset: str) -> list[Column]:
        if dataset == "devices":
            labels = [label for label in self.column_set.device_columns if label in self._data]
        elif dataset == "vms":
            labels = [label for label in self.column_set.vm_columns if label in self._data]
        else:
            labels = list(self.labels)
        columns: list[Column] = []
        used: set[str] = set()
        for label in labels:
            key = column_key(label)
            while key in used or key == "row_id":
                key += "_"
            used.add(key)
            columns.append(Column(key=key, label=label, kind=column_kind(label, self._kinds)))
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
