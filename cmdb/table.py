"""The CMDB rows of one export as a memory-mapped column store, and the one query function over it.

Pure: no Django. A run's table is a file written once from its merged CSV (device rows then VM rows,
``netbox_type`` last; ``cmdb.columnar``) and mapped by every process that reads it, so the operating system keeps
one copy of its pages for all of them (``cmdb.tablefiles`` finds, builds and maps a run's file). Per column the file
holds an integer code per row into the column's distinct values, and per distinct value its case-folded text, sort
rank, flags and number. Every filter is evaluated once per *distinct* value and then spread over the rows with one
numpy take, sorting takes the precomputed ranks and ``numpy.lexsort``, and the global search runs Arrow's substring
kernel over each column's case-folded distinct values. The devices and VMs datasets are views of the same table
(their rows, their contract columns), so a run is held once. ``bench/cmdb_bench.py`` measures it.

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

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from cmdb.columnar import TableArrays, csv_read, table_buffer, table_read
from cmdb.matching import SEP, ColumnData, value_check, value_table
from cmdb.query import DATASETS, Column, Filter, Query, QueryError, column_key, column_kind, column_kinds
from exports.columns import MERGED_COLUMNS, TYPE_COLUMN, ColumnSet


class RowSet:
    """The rows of a dataset: a contiguous range (the usual case: devices, then VMs) or an index array."""

    __slots__ = ("indexes", "start", "stop")

    def __init__(self, start: int = 0, stop: int = 0, indexes: np.ndarray | None = None) -> None:
        self.start, self.stop, self.indexes = start, stop, indexes

    @classmethod
    def of(cls, indexes: np.ndarray) -> RowSet:
        if not len(indexes):
            return cls(0, 0)
        first, last = int(indexes[0]), int(indexes[-1])
        if last - first + 1 == len(indexes):
            return cls(first, last + 1)
        return cls(indexes=indexes.astype(np.int64))

    def __len__(self) -> int:
        return len(self.indexes) if self.indexes is not None else self.stop - self.start

    def window(self, offset: int, limit: int) -> np.ndarray:
        """The rows ``offset`` to ``offset + limit``."""
        if self.indexes is not None:
            return self.indexes[offset : offset + limit]
        start = min(self.stop, self.start + offset)
        return np.arange(start, min(self.stop, start + limit), dtype=np.int64)

    def mask(self, size: int) -> np.ndarray:
        if self.indexes is None and (self.start, self.stop) == (0, size):
            return np.ones(size, dtype=bool)
        mask = np.zeros(size, dtype=bool)
        mask[self.indexes if self.indexes is not None else slice(self.start, self.stop)] = True
        return mask

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, int):
            return False
        if self.indexes is None:
            return self.start <= row < self.stop
        position = int(np.searchsorted(self.indexes, row))
        return position < len(self.indexes) and int(self.indexes[position]) == row


class CmdbTable:
    """The rows of one export (its merged CSV), queryable as the devices, VMs or merged dataset."""

    def __init__(
        self, labels: Sequence[str], columns: Sequence[Sequence[str]], column_set: ColumnSet | None = None
    ) -> None:
        """``labels``: the merged CSV's header; ``columns``: each column's cells, in row order (built in memory);
        ``column_set``: the one the run wrote its files with (the default if not given)."""
        if len(labels) != len(columns):
            raise ValueError("one column of cells per label")
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate column labels")
        self._load(table_buffer(labels, columns, column_set.as_dict() if column_set is not None else None))

    @classmethod
    def of(cls, arrays: TableArrays) -> CmdbTable:
        """The table of a read table file (``cmdb.columnar.table_read``)."""
        table = cls.__new__(cls)
        table._load(arrays)
        return table

    @classmethod
    def open(cls, path: str | Path, *, expect_sha256: str | None = None) -> CmdbTable:
        """Map a table file (``cmdb.columnar``); ``TableFileError`` when it is missing, outdated or of another CSV."""
        return cls.of(table_read(path, expect_sha256=expect_sha256))

    @classmethod
    def from_csv(cls, path: str | Path) -> CmdbTable:
        """Read a merged CSV (UTF-8, with or without a BOM; every cell as text) into a table held in memory."""
        labels, columns = csv_read(path)
        return cls.of(table_buffer(labels, columns))

    def _load(self, arrays: TableArrays) -> None:
        self._arrays = arrays  # keeps the mapping alive
        self.labels: list[str] = [column.label for column in arrays.columns]
        self.size = arrays.size
        self.source_sha256: str = arrays.metadata.get("source_sha256", "")
        # The run's column set, kept in the file: the datasets' columns and each column's kind.
        self.column_set = ColumnSet.from_dict(arrays.metadata.get("columns") or {})
        self._kinds = column_kinds(self.column_set)
        self._data: dict[str, ColumnData] = {
            column.label: ColumnData.of(column, column_kind(column.label, self._kinds)) for column in arrays.columns
        }
        self._datasets = self._dataset_rows()
        self._columns = {name: self._dataset_columns(name) for name in DATASETS}
        # What the global search reads (not the type), smallest dictionary first.
        searched = [data for label, data in self._data.items() if label != TYPE_COLUMN]
        self._searched = sorted(searched, key=len)

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

    def _dataset_rows(self) -> dict[str, RowSet]:
        everything = RowSet(0, self.size)
        kinds = self._data.get(TYPE_COLUMN)
        if kinds is None:
            return {"devices": everything, "vms": RowSet(0, 0), "merged": everything}
        values = kinds.take(np.arange(len(kinds)))
        sets = {}
        for name in ("devices", "vms"):
            codes = [code for code, value in enumerate(values) if value == name]
            sets[name] = RowSet.of(np.flatnonzero(kinds.codes == codes[0]) if codes else np.array([], dtype=np.int64))
        return {**sets, "merged": everything}

    # --- rows ---------------------------------------------------------------------------------------------------

    def cell(self, row: int, label: str) -> str:
        data = self._data[label]
        return data.value(int(data.codes[row]))

    def row(self, row: int, labels: Sequence[str] | None = None) -> dict[str, str]:
        """One row as ``{label: text}`` (all columns of the table, or ``labels``)."""
        return {label: self.cell(row, label) for label in (self.labels if labels is None else labels)}

    def rows_values(self, rows: Sequence[int] | np.ndarray, labels: Sequence[str]) -> Iterator[tuple[str, ...]]:
        """The cells of ``rows`` in ``labels`` order, one tuple per row: a column-wise take, then zip."""
        indexes = np.asarray(rows, dtype=np.int64)
        if not len(indexes):
            return iter(())
        columns = [self._data[label].take(self._data[label].codes[indexes]) for label in labels]
        return zip(*columns, strict=True)

    def longest(self, rows: Sequence[int] | np.ndarray, labels: Sequence[str]) -> tuple[list[int], list[int]]:
        """The longest line and the longest value of each of ``labels`` over ``rows``, in characters (a workbook's
        column widths): measured once per distinct value present, then the largest taken."""
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
            line_lengths, value_lengths = data.lengths(present)
            lines.append(int(line_lengths.max()))
            values.append(int(value_lengths.max()))
        return lines, values

    def row_id(self, row: int) -> str:
        """``devices-<NetBox id>`` or ``vms-<NetBox id>``: unique across the merged rows."""
        kind = self.cell(row, TYPE_COLUMN) if TYPE_COLUMN in self._data else "devices"
        return f"{kind}-{self.cell(row, 'ID') if 'ID' in self._data else row}"

    def _row_of_id(self, text: str) -> int | None:
        """The last row whose ``row_id`` is ``text`` (looked up in the type and ID columns, no index kept)."""
        kinds = self._data.get(TYPE_COLUMN)
        ids = self._data.get("ID")
        kind_codes = {"devices": 0} if kinds is None else {}
        if kinds is not None:
            for code, value in enumerate(kinds.take(np.arange(len(kinds)))):
                kind_codes[value] = code
        found: list[int] = []
        for kind, code in kind_codes.items():
            if not text.startswith(kind + "-"):
                continue
            wanted = text[len(kind) + 1 :]
            of_kind = np.ones(self.size, dtype=bool) if kinds is None else kinds.codes == code
            if ids is None:
                if wanted.isdigit() and int(wanted) < self.size and of_kind[int(wanted)] and str(int(wanted)) == wanted:
                    found.append(int(wanted))
                continue
            id_codes = np.flatnonzero(ids.values.equal(wanted))
            if len(id_codes):
                rows = np.flatnonzero(of_kind & np.isin(ids.codes, id_codes))
                if len(rows):
                    found.append(int(rows[-1]))
        return max(found) if found else None

    def find(self, dataset: str, identifier: str) -> int | None:
        """The row of ``identifier`` (a ``row_id``, or a bare NetBox id when it names one row of the dataset)."""
        members = self._datasets[_dataset(dataset)]
        text = identifier.strip()
        if text.isdigit():
            candidates = [self._row_of_id(f"{kind}-{text}") for kind in ("devices", "vms")]
            found = [row for row in candidates if row is not None and row in members]
            if len(found) > 1:
                raise QueryError(
                    f"Both a device and a VM have id {text}; use devices-{text} or vms-{text}.", field="id"
                )
            return found[0] if found else None
        row = self._row_of_id(text)
        return row if row is not None and row in members else None

    def rows_folded_equal(self, label: str, text: str) -> np.ndarray:
        """The rows whose cell in ``label``, case-folded, is exactly ``text`` (no trimming)."""
        data = self._data[label]
        codes = np.flatnonzero(data.equals(text))
        if not len(codes):
            return np.array([], dtype=np.int64)
        return np.flatnonzero(np.isin(data.codes, codes))

    # --- the query ----------------------------------------------------------------------------------------------

    def select(self, query: Query) -> np.ndarray:
        """The matching rows (indexes into the table), in the query's order."""
        rows, keys = self._matches(query)
        if keys:
            rows = rows[np.lexsort(keys[::-1])]
        return rows

    def select_page(self, query: Query, offset: int, limit: int) -> tuple[int, np.ndarray]:
        """How many rows match, and the matching rows ``offset`` to ``offset + limit`` in the query's order.

        The same rows as ``select(query)[offset:offset + limit]``; a page near the start of a long sorted result is
        picked with ``numpy.argpartition`` over one composite key (the sort keys, then the row) instead of sorting
        every match.
        """
        if not (query.filters or query.any_of or query.search.split() or query.ordering):
            members = self._datasets[_dataset(query.dataset)]  # every row of the dataset, in table order
            return len(members), members.window(offset, limit)
        rows, keys = self._matches(query)
        stop = min(len(rows), offset + limit)
        if not keys or offset >= stop:
            return len(rows), rows[offset:stop] if not keys else rows[np.lexsort(keys[::-1])][offset:stop]
        spans = [int(key.max()) + 1 for key in keys] + [len(rows)]
        if stop * 4 > len(rows) or math.prod(spans) >= 2**62:
            return len(rows), rows[np.lexsort(keys[::-1])][offset:stop]
        composite = np.zeros(len(rows), dtype=np.int64)
        for key, span in zip([*keys, np.arange(len(rows))], spans, strict=True):
            composite *= span
            composite += key
        first = np.argpartition(composite, stop - 1)[:stop]
        first = first[np.argsort(composite[first])]
        return len(rows), rows[first[offset:stop]]

    def _matches(self, query: Query) -> tuple[np.ndarray, list[np.ndarray]]:
        """The matching rows in table order, and their sort keys (most significant first) when the query sorts."""
        dataset = _dataset(query.dataset)
        mask = self._datasets[dataset].mask(self.size)
        allowed = {column.label for column in self.columns(dataset)}
        for condition in query.filters:
            mask &= self.mask(condition, allowed)
        for group in query.any_of:
            either = np.zeros(self.size, dtype=bool)
            for condition in group:
                either |= self.mask(condition, allowed)
            mask &= either
        for term in query.search.split():
            mask = self._search(term, mask)
        rows = np.flatnonzero(mask)
        keys: list[np.ndarray] = []
        for name in query.ordering:
            descending = name.startswith("-")
            label = name[1:] if descending else name
            if label not in allowed:
                raise QueryError(f"Unknown column {label!r} to sort by.", field="ordering")
            if len(rows) > 1:
                data = self._data[label]
                ranks = data.rank_up[data.codes[rows]]
                keys.append(data.rank_down(ranks) if descending else ranks)
        return rows, keys

    def check(self, condition: Filter) -> None:
        """``QueryError`` when ``condition`` cannot be evaluated (unknown column or operator, a bad bound), as
        ``mask`` would raise it, without evaluating it."""
        data = self._data.get(condition.column)
        if data is None:
            raise QueryError(f"Unknown column {condition.column!r}.", field=condition.column)
        value_check(data, condition)

    def mask(self, condition: Filter, allowed: set[str] | None = None) -> np.ndarray:
        """The rows (all of the table) meeting one condition."""
        data = self._data.get(condition.column)
        if data is None or (allowed is not None and condition.column not in allowed):
            raise QueryError(f"Unknown column {condition.column!r}.", field=condition.column)
        table = value_table(data, condition)
        return table[data.codes]

    def _search(self, term: str, mask: np.ndarray) -> np.ndarray:
        """``mask`` narrowed to the rows with ``term`` in some cell.

        Columns are taken smallest dictionary first (cheap to search, and they often find most rows). While many
        rows are left, a column's distinct values are searched and the hits spread over the rows; once most rows are
        found, only the rest are looked up, and when they use few of a column's values only those are tested.
        """
        needle = term.casefold().replace(SEP, "")
        if not needle:
            return mask
        candidates = int(np.count_nonzero(mask))
        whole = candidates == self.size
        rows = None if whole else np.flatnonzero(mask)
        found = np.zeros(candidates, dtype=bool)
        left: np.ndarray | None = None  # the candidates not found yet, once they are few
        for data in self._searched:
            if left is None:
                table = data.search(needle)
                if table is None:
                    continue
                found |= table[data.codes if rows is None else data.codes[rows]]
                if np.count_nonzero(found) * 4 >= candidates * 3:
                    left = np.flatnonzero(~found)
            else:
                codes = data.codes[left if rows is None else rows[left]]
                if len(codes) * 16 < len(data):
                    present = np.unique(codes)
                    table = np.zeros(len(data), dtype=bool)
                    table[present] = data.search_values(needle, present)
                else:
                    table = data.search(needle)
                    if table is None:
                        continue
                hit = table[codes]
                found[left[hit]] = True
                left = left[~hit]
            if left is not None and not len(left):
                break
        if whole:
            return found
        narrowed = np.zeros(self.size, dtype=bool)
        narrowed[rows[found]] = True  # type: ignore[index]
        return narrowed

    # --- counts -------------------------------------------------------------------------------------------------

    def facet(self, query: Query, label: str, *, limit: int = 50) -> tuple[list[tuple[str, int]], int]:
        """The values of column ``label`` with their row counts under every condition of ``query`` but its own.

        What a pick-from-values filter offers: the rows the query's *other* filters, OR-groups and search select
        (conditions on ``label`` itself are left out, so values already picked keep their siblings), counted per
        whole cell value (blank as ``""``), most frequent first, ties in row order. Returns the first ``limit``
        ``(value, count)`` pairs and the number of distinct values. Backend-neutral: only ``select`` and
        ``group_counts`` are used.
        """
        dataset = _dataset(query.dataset)
        if label not in {column.label for column in self.columns(dataset)}:
            raise QueryError(f"Unknown column {label!r}.", field="column")
        others = Query(
            dataset=dataset,
            filters=tuple(condition for condition in query.filters if condition.column != label),
            any_of=tuple(group for group in query.any_of if any(condition.column != label for condition in group)),
            search=query.search,
        )
        counts = self.group_counts(self.select(others), label)
        return counts[: max(0, limit)], len(counts)

    def group_counts(
        self, rows: Sequence[int] | np.ndarray, label: str, *, split: bool = False
    ) -> list[tuple[str, int]]:
        """``(value, count)`` over ``rows``, most frequent first, ties in order of first appearance among ``rows``.

        ``split``: count each item of a comma-separated list (Tags) instead of the whole cell; a blank cell counts
        as ``""`` either way.
        """
        data = self._data[label]
        codes = data.codes[np.asarray(rows, dtype=np.int64)]
        counts = np.bincount(codes, minlength=len(data))
        present, first = np.unique(codes, return_index=True)
        names = dict(zip(present.tolist(), data.take(present), strict=True))
        totals: dict[str, list[int]] = {}
        for code, seen in sorted(zip(present.tolist(), first.tolist(), strict=True), key=lambda pair: pair[1]):
            value = names[code]
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


def _dataset(name: str) -> str:
    if name not in DATASETS:
        raise QueryError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.", field="dataset")
    return name


def merged_columns() -> tuple[str, ...]:
    """The contract's merged columns (what a current export's merged CSV holds)."""
    return MERGED_COLUMNS
