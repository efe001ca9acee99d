"""The CMDB table's file format: one Arrow IPC file per run, written once, memory-mapped by every process.

Pure: no Django. ``table_write`` turns the cells of a merged CSV into the file; ``table_read`` maps one and hands
back each column's arrays without copying them (numpy views and Arrow arrays over the mapping), so the operating
system shares the pages between every process that reads the same run.

The file is one record batch with one field per CSV column, in CSV order. Each field is dictionary-encoded: the
row's code (``int8``, ``int16`` or ``int32``, the narrowest that holds the column's distinct values) into a
dictionary of the column's distinct cells in order of first appearance. The dictionary is a struct holding
everything a query needs per distinct value, computed once when the file is written:

- ``value``: the cell's text;
- ``folded``: ``str.casefold()`` of it (only when some value of the column folds to other text);
- ``rank``: its place in the column's ascending sort (numbers numerically, dates as ISO text, other text
  naturally), blanks ranked after everything;
- ``flags``: blank, padded (leading or trailing whitespace once folded), holding the search separator, starting
  with a date, holding a line break;
- ``number``: the value as a float, NaN for blanks and text (number columns only).

The schema's metadata (``enreach.cmdb``) records the format version and the SHA-256 of the CSV it was made from, so
a reader can tell an outdated file from a current one. Measured against a DuckDB database file holding the same
columns in ``bench/cmdb_storage_bench.py``; the README quotes the figures.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cmdb.query import DATE, NUMBER, column_kind

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT_VERSION = 1
METADATA_KEY = b"enreach.cmdb"
# Separates a column's distinct values in the old search text; a search term drops it, a value's holds a space.
SEP = "\x1e"
BLANK, PADDED, HAS_SEP, DATED, NEWLINE = 1, 2, 4, 8, 16

_DIGITS = re.compile(r"(\d+)")
DATE_BOUND = re.compile(r"\d{4}(?:-\d\d(?:-\d\d(?:T\d\d(?::\d\d(?::\d\d)?)?)?)?)?")
NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class TableFileError(Exception):
    """A table file is missing, unreadable, of another format version or made from another CSV."""


@dataclass(frozen=True, slots=True)
class ColumnArrays:
    """One column as read from a table file: views over the mapping, nothing copied."""

    label: str
    codes: np.ndarray
    values: pa.StringArray
    folded: pa.StringArray
    ranks: np.ndarray
    flags: np.ndarray
    numbers: np.ndarray | None


@dataclass(frozen=True, slots=True)
class TableArrays:
    """A whole table file: its columns in CSV order, its row count and its metadata."""

    columns: list[ColumnArrays]
    size: int
    metadata: dict[str, Any]
    # Keeps the mapping (and so every view above) alive as long as the table is.
    source: Any = None


def to_float(value: str) -> float:
    """A cell as a number: NaN for blanks, text and infinities (what number columns compare and sort by)."""
    text = value.strip()
    if not NUMBER_TEXT.fullmatch(text):
        return math.nan
    number = float(text)
    return number if math.isfinite(number) else math.nan


def natural_key(folded: str, raw: str) -> str:
    """A text whose plain order is the natural order of ``(folded, raw)``: digit runs by their number (``srv2``
    before ``srv10``, leading zeros aside), then the original text.

    The same order as comparing ``(parts, raw)`` where ``parts`` alternates text and ``(len(digits), digits)``:
    each text part ends with ``\\x00\\x01`` (a NUL inside it is written ``\\x00\\x02``, so a shorter part sorts
    first), a digit run is ``\\x02`` + its length in ten digits + the digits, and ``\\x01`` ends the parts (fewer
    parts sort first), before the raw text.
    """
    parts = _DIGITS.split(folded)
    if len(parts) == 1:
        text = folded.replace("\x00", "\x00\x02") if "\x00" in folded else folded
        return f"{text}\x00\x01\x01{raw}"
    out: list[str] = []
    for index, part in enumerate(parts):
        if index % 2:
            digits = part.lstrip("0")
            out.append(f"\x02{len(digits):010d}{digits}")
        else:
            out.append((part.replace("\x00", "\x00\x02") if "\x00" in part else part) + "\x00\x01")
    out.append("\x01")
    out.append(raw)
    return "".join(out)


def _ranks(kind: str, values: list[str], folded: list[str], numbers: np.ndarray | None, empty: int) -> np.ndarray:
    """A sort rank per distinct value (ascending; blanks after everything); ties keep the values' order."""
    codes = range(len(values))
    order: list[int] | np.ndarray
    if kind == NUMBER and numbers is not None:
        numeric = np.flatnonzero(~np.isnan(numbers))
        by_number = numeric[np.argsort(numbers[numeric], kind="stable")]
        is_number = np.zeros(len(values), dtype=bool)
        is_number[numeric] = True
        # Numbers first (by value), then any text a number column holds (by text).
        text = sorted((c for c in codes if not is_number[c] and c != empty), key=folded.__getitem__)
        order = np.concatenate([by_number, np.array(text, dtype=np.int64)]).astype(np.int64)
    elif kind == DATE:
        order = sorted((c for c in codes if c != empty), key=folded.__getitem__)
    else:
        keys = [natural_key(f, raw) for f, raw in zip(folded, values, strict=True)]
        order = sorted((c for c in codes if c != empty), key=keys.__getitem__)
    ranks = np.empty(len(values), dtype=np.int32)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int32)
    if empty >= 0:
        ranks[empty] = len(values)
    return ranks


def _flags(kind: str, values: list[str], folded: list[str]) -> np.ndarray:
    dated = kind == DATE
    flags = np.zeros(len(values), dtype=np.uint8)
    for code, (raw, fold) in enumerate(zip(values, folded, strict=True)):
        flag = 0
        if not raw.strip():
            flag |= BLANK
        if fold != fold.strip():
            flag |= PADDED
        if SEP in fold:
            flag |= HAS_SEP
        if dated and DATE_BOUND.match(raw):
            flag |= DATED
        if "\n" in raw:
            flag |= NEWLINE
        if flag:
            flags[code] = flag
    return flags


def encode_column(label: str, cells: pa.Array) -> pa.DictionaryArray:
    """One column's cells -> codes into a dictionary of its distinct values with their query data."""
    import pyarrow as pa

    encoded = cells.dictionary_encode()
    dictionary = encoded.dictionary
    values: list[str] = dictionary.to_pylist()
    folded = [value.casefold() for value in values]
    kind = column_kind(label)
    numbers = np.array([to_float(value) for value in values], dtype=np.float64) if kind == NUMBER else None
    try:
        empty = values.index("")
    except ValueError:
        empty = -1
    fields: list[pa.Array] = [dictionary]
    names = ["value"]
    if folded != values:
        fields.append(pa.array(folded, type=pa.string()))
        names.append("folded")
    fields.append(pa.array(_ranks(kind, values, folded, numbers, empty), type=pa.int32()))
    names.append("rank")
    fields.append(pa.array(_flags(kind, values, folded), type=pa.uint8()))
    names.append("flags")
    if numbers is not None:
        fields.append(pa.array(numbers, type=pa.float64()))
        names.append("number")
    size = len(values)
    index_type = pa.int8() if size <= 127 else pa.int16() if size <= 32767 else pa.int32()
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(index_type), pa.StructArray.from_arrays(fields, names))


def csv_read(path: str | Path) -> tuple[list[str], list[pa.Array]]:
    """A merged CSV's header and its columns as Arrow strings (UTF-8 with or without a BOM; every cell as text)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    if not header:
        return [], []
    if len(set(header)) != len(header):
        raise ValueError("duplicate column labels")
    names = [f"c{index}" for index in range(len(header))]  # labels may be anything; Arrow needs them only to type
    frame = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
        ),
    )
    return header, [frame.column(index).combine_chunks() for index in range(len(header))]


def table_write(
    target: str | Path | Any, labels: Sequence[str], columns: Sequence[pa.Array], *, source_sha256: str = ""
) -> None:
    """Write the table file (to a path, or to an Arrow output stream) from each column's cells (Arrow strings)."""
    import pyarrow as pa

    if len(labels) != len(columns):
        raise ValueError("one column of cells per label")
    if len(set(labels)) != len(labels):
        raise ValueError("duplicate column labels")
    sizes = {len(cells) for cells in columns}
    if len(sizes) > 1:
        raise ValueError("columns of different lengths")
    size = sizes.pop() if sizes else 0
    arrays = [encode_column(label, cells) for label, cells in zip(labels, columns, strict=True)]
    metadata = {"version": FORMAT_VERSION, "source_sha256": source_sha256, "rows": size, "labels": list(labels)}
    fields = [pa.field(f"c{index}", array.type, nullable=False) for index, array in enumerate(arrays)]
    schema = pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata).encode()})
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema) if arrays else None
    sink = pa.OSFile(str(target), "wb") if isinstance(target, str | Path) else target
    try:
        with pa.ipc.new_file(sink, schema) as writer:
            if batch is not None:
                writer.write_batch(batch)
    finally:
        if isinstance(target, str | Path):
            sink.close()


def table_read(source: str | Path | Any, *, expect_sha256: str | None = None) -> TableArrays:
    """Map a table file (a path) or read one from an Arrow buffer; ``TableFileError`` when it is not current."""
    import pyarrow as pa

    try:
        mapped = pa.memory_map(str(source), "r") if isinstance(source, str | Path) else source
        reader = pa.ipc.open_file(mapped)
    except (OSError, pa.ArrowInvalid) as exc:
        raise TableFileError(f"cannot read the table file: {exc}") from exc
    raw = (reader.schema.metadata or {}).get(METADATA_KEY)
    metadata: dict[str, Any] = json.loads(raw) if raw else {}
    if metadata.get("version") != FORMAT_VERSION:
        raise TableFileError(f"table file of format {metadata.get('version')!r}, not {FORMAT_VERSION}")
    if expect_sha256 is not None and metadata.get("source_sha256") != expect_sha256:
        raise TableFileError("table file made from another CSV")
    labels: list[str] = metadata["labels"]
    size = int(metadata["rows"])
    columns: list[ColumnArrays] = []
    if labels:
        batch = reader.get_batch(0)
        for label, column in zip(labels, batch.columns, strict=True):
            dictionary = column.dictionary
            names = {dictionary.type.field(i).name for i in range(dictionary.type.num_fields)}
            values = dictionary.field("value")
            columns.append(
                ColumnArrays(
                    label=label,
                    codes=column.indices.to_numpy(zero_copy_only=True),
                    values=values,
                    folded=dictionary.field("folded") if "folded" in names else values,
                    ranks=dictionary.field("rank").to_numpy(zero_copy_only=True),
                    flags=dictionary.field("flags").to_numpy(zero_copy_only=True),
                    numbers=dictionary.field("number").to_numpy(zero_copy_only=True) if "number" in names else None,
                )
            )
    return TableArrays(columns=columns, size=size, metadata=metadata, source=mapped)


def table_buffer(labels: Sequence[str], columns: Sequence[Sequence[str] | pa.Array]) -> TableArrays:
    """A table built in memory (tests, and a table that cannot be written to disk): written and read back."""
    import pyarrow as pa

    arrays = [cells if isinstance(cells, pa.Array) else pa.array(list(cells), type=pa.string()) for cells in columns]
    sink = pa.BufferOutputStream()
    table_write(sink, labels, arrays)
    return table_read(pa.BufferReader(sink.getvalue()))
