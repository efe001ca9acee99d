"""The rows of a query as a file: a CSV streamed a batch at a time, or the CMDB workbook (exports.workbook).

The CSV follows the export's conventions (UTF-8, RFC 4180; ``EXPORT_CSV_EXCEL_SAFE`` adds the BOM and the
apostrophe before ``=``, ``+``, ``-`` and ``@``). The workbook is written by ``exports.workbook.write_workbook``, so
it has the contract's styling (table, frozen header and first column, fitted widths) and typing (number columns as
numbers, serials and asset tags as text), into a temporary file that is unlinked once open: the response streams
the open file.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, overload

import numpy as np

from cmdb.table import CmdbTable, Column
from exports.workbook import ColumnSizes, write_workbook

CSV_BATCH_ROWS = 2000
_FORMULA_PREFIXES = ("=", "+", "-", "@")
_UTF8_BOM = b"\xef\xbb\xbf"


class _Sink:
    __slots__ = ("write",)

    def __init__(self, parts: list[str]) -> None:
        self.write = parts.append


def _excel_safe(row: Sequence[str]) -> tuple[str, ...]:
    return tuple("'" + value if value.startswith(_FORMULA_PREFIXES) else value for value in row)


def csv_chunks(
    *, table: CmdbTable, rows: np.ndarray, columns: Sequence[Column], excel_safe: bool = False
) -> Iterator[bytes]:
    """The CSV's bytes, header first, then ``CSV_BATCH_ROWS`` rows per chunk: memory holds one batch."""
    labels = [column.label for column in columns]
    parts: list[str] = []
    writer = csv.writer(_Sink(parts))
    writer.writerow(labels)
    head = "".join(parts).encode("utf-8")
    parts.clear()
    yield (_UTF8_BOM + head) if excel_safe else head
    for start in range(0, len(rows), CSV_BATCH_ROWS):
        values = table.rows_values(rows[start : start + CSV_BATCH_ROWS], labels)
        writer.writerows(map(_excel_safe, values) if excel_safe else values)
        chunk = "".join(parts).encode("utf-8")
        parts.clear()
        yield chunk


class TableRows(Sequence[tuple[str, ...]]):
    """The selected rows as a sequence of tuples, made on demand (a batch at a time when iterated)."""

    def __init__(self, table: CmdbTable, rows: np.ndarray, labels: Sequence[str]) -> None:
        self.table, self.rows, self.labels = table, rows, list(labels)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, ...]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return TableRows(self.table, self.rows[index], self.labels)
        return next(self.table.rows_values(self.rows[index : index + 1 if index != -1 else None], self.labels))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        for start in range(0, len(self.rows), CSV_BATCH_ROWS):
            yield from self.table.rows_values(self.rows[start : start + CSV_BATCH_ROWS], self.labels)


def workbook_open(*, table: CmdbTable, rows: np.ndarray, columns: Sequence[Column], timestamp: datetime) -> IO[bytes]:
    """The rows as the CMDB workbook, an open file whose name is already unlinked (it vanishes once closed)."""
    labels = [column.label for column in columns]
    lines, longest = table.longest(rows, labels)
    with tempfile.TemporaryDirectory(prefix="cmdb-download-") as directory:
        path = Path(directory) / "rows.xlsx"
        write_workbook(
            path,
            labels,
            TableRows(table, rows, labels),
            numeric_columns=table.column_set.numeric_columns(),
            text_columns=table.column_set.text_columns(),
            date_columns=table.column_set.date_columns(),
            datetime_columns=table.column_set.datetime_columns(),
            timestamp=timestamp,
            sizes=ColumnSizes(lines=lines, values=longest),
        )
        handle = open(path, "rb")  # noqa: SIM115 (the response closes it)
        os.unlink(path)
    return handle
