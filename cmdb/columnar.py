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
a reader can tell an outdated file from a current one. A build may take the query data of the values an earlier file
holds (``csv_write(previous=...)``, ``_encode_reusing``) and writes the same bytes; one that knows which rows are
the earlier file's copied rows (``csv_write_mapped``, by the merged CSV's row map) takes them from it by their place and
parses only the others. Measured against a DuckDB database
file holding the same columns in ``bench/cmdb_storage_bench.py``; the README quotes the figures.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import math
import mmap
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cmdb.query import DATE, NUMBER, column_kind, column_kinds
from enreach.forked import release_freed_memory
from exports.columns import TYPE_COLUMN, ColumnSet

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT_VERSION = 1
METADATA_KEY = b"enreach.cmdb"
# Separates a column's distinct values in the old search text; a search term drops it, a value's holds a space.
SEP = "\x1e"
BLANK, PADDED, HAS_SEP, DATED, NEWLINE, NON_ASCII = 1, 2, 4, 8, 16, 32

_DIGITS = re.compile(r"(\d+)")
DATE_BOUND = re.compile(r"\d{4}(?:-\d\d(?:-\d\d(?:T\d\d(?::\d\d(?::\d\d)?)?)?)?)?")
# Values keyed at once by the numpy natural-order keying: its temporaries are a few int64 arrays of their bytes and
# digit runs (about 150 MB for 65,536 IP addresses; a twentieth of that here, at the same speed).
_KEY_CHUNK = 1 << 12
# Bytes of a column's values whose pairs ``presence`` finds at once (its temporaries: about 12 bytes for each).
_PRESENCE_CHUNK = 1 << 20
NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class TableFileError(Exception):
    """A table file is missing, unreadable, of another format version or made from another CSV."""


@dataclass(frozen=True, slots=True)
class Strings:
    """A column's distinct values (or their folded forms) in place in the file: UTF-8 bytes back to back and the
    offset of each value, read with numpy and Python only (pyarrow's conversions would import pandas into every
    process that queries).

    ``text`` is the whole file as a Python object with ``find`` and slicing (an ``mmap``, or ``bytes`` for a table
    in memory) and ``base`` where this array's bytes start in it.
    """

    offsets: np.ndarray
    data: np.ndarray
    text: Any
    base: int
    # Which bytes, and which pairs of neighbouring bytes within a value, occur in these values (bit sets, packed):
    # a search for text holding another byte or pair skips the column without reading it.
    present: np.ndarray | None = None
    pairs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def may_contain(self, pattern: bytes) -> bool:
        """``False`` when no value can hold ``pattern`` (one of its bytes or byte pairs occurs in none)."""
        if self.present is None or self.pairs is None:
            return True
        for byte in pattern:
            if not self.present[byte >> 3] & (128 >> (byte & 7)):
                return False
        for first, second in itertools.pairwise(pattern):
            pair = first << 8 | second
            if not self.pairs[pair >> 3] & (128 >> (pair & 7)):
                return False
        return True

    def get(self, index: int) -> str:
        return self.text[self.base + int(self.offsets[index]) : self.base + int(self.offsets[index + 1])].decode()

    def take(self, indexes: np.ndarray) -> list[str]:
        """The values at ``indexes``, as Python text."""
        text, base = self.text, self.base
        starts = (self.offsets[indexes].astype(np.int64) + base).tolist()
        stops = (self.offsets[np.asarray(indexes) + 1].astype(np.int64) + base).tolist()
        return [text[start:stop].decode() for start, stop in zip(starts, stops, strict=True)]

    def lengths(self) -> np.ndarray:
        """Each value's length in bytes."""
        return np.diff(self.offsets)

    def contains(self, needle: str) -> np.ndarray:
        """Which values hold ``needle``: ``find`` over the bytes in place, jumping to the next value after each hit.

        A byte match of UTF-8 text is a character match; a hit across two values is skipped. When hits are many (a
        one-letter term), the rest is found with numpy over the bytes instead.
        """
        size = len(self)
        if not needle:
            return np.ones(size, dtype=bool)
        table = np.zeros(size, dtype=bool)
        pattern = needle.encode()
        if not size or not self.may_contain(pattern):
            return table
        width = len(pattern)
        starts, base, text = self.offsets, self.base, self.text
        end = base + int(starts[-1])
        budget = 32 + size // 4096
        position = text.find(pattern, base + int(starts[0]), end)
        while position != -1:
            offset = position - base
            index = int(starts.searchsorted(np.int32(offset), side="right")) - 1  # int32 both: no copy of starts
            stop = int(starts[index + 1])
            following = position + 1
            if offset + width <= stop:
                table[index] = True
                following = base + stop
            budget -= 1
            if not budget:
                self._contains_bytes(pattern, following - base, table)
                break
            position = text.find(pattern, following, end)
        return table

    def _contains_bytes(self, pattern: bytes, start: int, table: np.ndarray) -> None:
        """``contains`` from byte ``start`` on, with numpy: the positions of the pattern's rarest byte pair (counted
        in a sample of the bytes) over the whole span, narrowed by the pattern's other bytes."""
        starts, data = self.offsets, self.data
        width = len(pattern)
        count = int(starts[-1]) - width + 1 - start
        if count <= 0:
            return
        if width == 1:
            candidates = np.flatnonzero(data[start : start + count] == pattern[0]) + start
        else:
            sample = data[start : start + min(count, 1 << 16) + 1]
            pairs = [
                int(np.count_nonzero((sample[:-1] == pattern[shift]) & (sample[1:] == pattern[shift + 1])))
                for shift in range(width - 1)
            ]
            anchor = int(np.argmin(pairs))
            first = start + anchor
            matches = data[first : first + count] == pattern[anchor]
            np.logical_and(matches, data[first + 1 : first + 1 + count] == pattern[anchor + 1], out=matches)
            candidates = np.flatnonzero(matches) + start
            for shift in range(width):
                if shift not in (anchor, anchor + 1) and len(candidates):
                    candidates = candidates[data[candidates + shift] == pattern[shift]]
        indexes = np.searchsorted(starts, candidates, side="right") - 1
        inside = candidates + width <= starts[indexes + 1]
        table[indexes[inside]] = True

    def equal(self, text: str) -> np.ndarray:
        """Which values are exactly ``text``: those holding it that are as long."""
        return self.contains(text) & (self.lengths() == len(text.encode()))


@dataclass(frozen=True, slots=True)
class ColumnArrays:
    """One column as read from a table file: views over the mapping, nothing copied."""

    label: str
    codes: np.ndarray
    values: Strings
    folded: Strings
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


# Python's ``str.isspace`` among ASCII characters (``str.strip`` removes these), as a regex class.
_ASCII_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
_SPACE_CLASS = "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f ]"
_ASCII_NUMBER = f"^{_SPACE_CLASS}*[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?{_SPACE_CLASS}*$"


def _np(array: Any) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


class _Column:
    """The distinct values of one column while its query data is computed.

    Pure-ASCII values go through Arrow's kernels, whose byte-wise answers equal Python's ``str`` methods on ASCII
    text; the others (and the odd ASCII value a kernel cannot key: a NUL, a marker byte, a very long digit run)
    are computed in Python, value by value, with the same definitions.
    """

    def __init__(self, label: str, values: pa.StringArray, kind: str | None = None) -> None:
        import pyarrow.compute as pc

        self.label, self.kind, self.values = label, kind or column_kind(label), values
        self.size = len(values)
        self.python = np.flatnonzero(~_np(pc.string_is_ascii(values)))
        self._python_values: list[str] | None = None
        self._python_folded: list[str] | None = None

    def python_values(self) -> list[str]:
        if self._python_values is None:
            self._python_values = self.values.take(self.python).to_pylist() if len(self.python) else []
        return self._python_values

    def python_folded(self) -> list[str]:
        if self._python_folded is None:
            self._python_folded = [value.casefold() for value in self.python_values()]
        return self._python_folded

    def folded(self) -> pa.StringArray:
        import pyarrow as pa
        import pyarrow.compute as pc

        folded = pc.ascii_lower(self.values)
        if len(self.python):
            mask = np.zeros(self.size, dtype=bool)
            mask[self.python] = True
            folded = pc.replace_with_mask(folded, pa.array(mask), pa.array(self.python_folded(), type=pa.string()))
        return folded

    def numbers(self) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        numbers = np.full(self.size, np.nan, dtype=np.float64)
        numeric = np.flatnonzero(_np(pc.match_substring_regex(self.values, _ASCII_NUMBER)))
        numeric = numeric[~np.isin(numeric, self.python)]
        if len(numeric):
            text = pc.utf8_trim(self.values.take(numeric), _ASCII_SPACE)
            numbers[numeric] = _np(pc.cast(text, pa.float64()))
        numbers[self.python] = [to_float(value) for value in self.python_values()]
        numbers[~np.isfinite(numbers)] = np.nan
        return numbers

    def flags(self, folded: pa.StringArray) -> np.ndarray:
        import pyarrow.compute as pc

        def flag(array: Any, bit: int) -> np.ndarray:
            return _np(array).astype(np.uint8) * np.uint8(bit)

        flags = flag(pc.match_substring_regex(self.values, f"^{_SPACE_CLASS}*$"), BLANK)
        flags |= flag(pc.match_substring_regex(folded, f"^{_SPACE_CLASS}|{_SPACE_CLASS}$"), PADDED)
        flags |= flag(pc.match_substring(folded, SEP), HAS_SEP)
        if self.kind == DATE:
            flags |= flag(pc.match_substring_regex(self.values, "^[0-9]{4}"), DATED)
        flags |= flag(pc.match_substring(self.values, "\n"), NEWLINE)
        if len(self.python):
            flags[self.python] = [
                _value_flags(self.kind, raw, fold)
                for raw, fold in zip(self.python_values(), self.python_folded(), strict=True)
            ]
        return flags

    def natural_keys(self, folded: pa.StringArray) -> pa.ChunkedArray:
        """``natural_key`` of every value: built from the bytes with numpy for ASCII values, in Python for others;
        in chunks of ``_KEY_CHUNK`` values (sorted as they are: joining them would hold the keys twice)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        special = _np(pc.match_substring(folded, "\x00"))
        special[self.python] = True
        chunks = _ascii_natural_keys(folded, self.values)
        redo = np.flatnonzero(special)
        for number in np.unique(redo // _KEY_CHUNK).tolist():
            start = number * _KEY_CHUNK
            inside = redo[(redo >= start) & (redo < start + _KEY_CHUNK)]
            raws = self.values.take(inside).to_pylist()
            folds = folded.take(inside).to_pylist()
            mask = np.zeros(len(chunks[number]), dtype=bool)
            mask[inside - start] = True
            python_keys = [natural_key(fold, raw) for fold, raw in zip(folds, raws, strict=True)]
            chunks[number] = pc.replace_with_mask(
                chunks[number], pa.array(mask), pa.array(python_keys, type=pa.large_string())
            )
        return pa.chunked_array(chunks, type=pa.large_string())

    def ranks(self, folded: pa.StringArray, numbers: np.ndarray | None) -> np.ndarray:
        """A sort rank per distinct value (ascending; blanks after everything); ties keep the values' order."""
        import pyarrow.compute as pc

        codes = np.arange(self.size, dtype=np.int64)

        def by_text(text: pa.Array | pa.ChunkedArray, among: np.ndarray) -> np.ndarray:
            """``among`` (ascending codes) in the order of their ``text``, equal texts in code order."""
            if not len(among):
                return among
            if len(among) * 2 < len(text):
                return among[_np(pc.sort_indices(text.take(among)))]  # a stable sort
            # Most values: all of them sorted, the others dropped from the order (a stable sort of a part is the
            # whole's order with the rest dropped), rather than a copy of most of the texts taken.
            order = _np(pc.sort_indices(text)).astype(np.int64)
            wanted = np.zeros(len(text), dtype=bool)
            wanted[among] = True
            return order[wanted[order]]

        empty = _np(pc.equal(self.values, ""))
        if self.kind == NUMBER and numbers is not None:
            is_number = ~np.isnan(numbers)
            numeric = codes[is_number]
            by_number = numeric[np.argsort(numbers[numeric], kind="stable")]
            # Numbers first (by value), then any text a number column holds (by text).
            order = np.concatenate([by_number, by_text(folded, codes[~is_number & ~empty])])
        elif self.kind == DATE:
            order = by_text(folded, codes[~empty])
        else:
            order = by_text(self.natural_keys(folded), codes[~empty])
        ranks = np.empty(self.size, dtype=np.int32)
        ranks[order] = np.arange(len(order), dtype=np.int32)
        ranks[empty] = self.size
        return ranks


def presence(folded: pa.StringArray) -> tuple[bytes, bytes]:
    """The bytes and the pairs of neighbouring bytes (within one value) that occur in ``folded``, as packed bit sets
    of 256 and 65,536 bits: what ``Strings.may_contain`` reads.

    ``_PRESENCE_CHUNK`` bytes at a time: a byte or a pair as an index is widened to ``intp``, eight bytes for each
    byte of the values (60 MB for the names at 500,000 rows, the build's peak) when they are taken at once."""
    offsets, data = _string_buffers(folded)
    present = np.zeros(256, dtype=bool)
    pairs = np.zeros(1 << 16, dtype=bool)
    count = len(data) - 1  # pairs of neighbouring bytes, each at its first byte
    starts = offsets[1:-1]
    ends = starts[(starts > 0) & (starts <= count)] - 1  # the pairs across two values: from a value's last byte
    for start in range(0, len(data), _PRESENCE_CHUNK):
        present[np.flatnonzero(np.bincount(data[start : start + _PRESENCE_CHUNK], minlength=256))] = True
        stop = min(start + _PRESENCE_CHUNK, count)
        if stop <= start:
            continue
        codes = data[start:stop].astype(np.uint16) << 8 | data[start + 1 : stop + 1]
        inside = np.ones(len(codes), dtype=bool)
        inside[ends[np.searchsorted(ends, start) : np.searchsorted(ends, stop)] - start] = False
        pairs[codes[inside]] = True
        del codes, inside
    return np.packbits(present).tobytes(), np.packbits(pairs).tobytes()


def _string_buffers(array: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string array's offsets (from 0, ``len + 1`` of them) and the bytes they point into."""
    _, offsets, data = array.buffers()
    positions = np.frombuffer(offsets, dtype=np.int32)[array.offset : array.offset + len(array) + 1].astype(np.int64)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return positions - positions[0], raw[positions[0] : positions[-1]]


def _ascii_natural_keys(folded: pa.StringArray, values: pa.StringArray) -> list[pa.Array]:
    """``natural_key(folded, raw)`` of every value, built from the bytes with numpy (the same text as
    ``natural_key`` for ASCII values without a NUL; the caller keys the others in Python), ``_KEY_CHUNK`` values at
    a time so the temporary arrays stay small: the keys of each chunk.
    """
    return [
        _ascii_natural_keys_chunk(folded.slice(start, _KEY_CHUNK), values.slice(start, _KEY_CHUNK))
        for start in range(0, len(folded), _KEY_CHUNK)
    ]


def _ascii_natural_keys_chunk(folded: pa.StringArray, values: pa.StringArray) -> pa.Array:
    """``_ascii_natural_keys`` of one chunk.

    Each byte of a value becomes a segment of the key: a text byte itself, a leading zero of a digit run nothing, a
    kept digit itself, and the first byte of a run is preceded by ``\\x00\\x01\\x02`` + the run's kept length in
    ten digits; after the value's bytes come ``\\x00\\x01\\x01`` and the raw value.
    """
    import pyarrow as pa

    count = len(folded)
    offsets, data = _string_buffers(folded)
    raw_offsets, raw_data = _string_buffers(values)
    lengths = np.diff(offsets)
    raw_lengths = np.diff(raw_offsets)
    size = len(data)
    owner = np.repeat(np.arange(count, dtype=np.int64), lengths)
    digit = (data >= 48) & (data <= 57)
    after_digit = np.zeros(size, dtype=bool)
    after_digit[1:] = digit[:-1]
    after_digit[offsets[:-1][lengths > 0]] = False  # a value's first byte follows nothing
    run_first = digit & ~after_digit
    digits = np.flatnonzero(digit)
    run_starts = np.flatnonzero(run_first[digits])  # in ``digits``
    keep = ~digit
    header = np.zeros(size, dtype=np.int64)
    kept_lengths = np.zeros(0, dtype=np.int64)
    if len(digits):
        run_of = np.cumsum(run_first[digits]) - 1
        place = np.arange(len(digits), dtype=np.int64)
        nonzero = np.where(data[digits] != 48, place, len(digits))
        first_kept = np.minimum.reduceat(nonzero, run_starts)
        run_ends = np.append(run_starts[1:], len(digits))
        first_kept = np.minimum(first_kept, run_ends)
        kept_lengths = run_ends - first_kept
        keep[digits] = place >= first_kept[run_of]
        header[digits[run_starts]] = 13
    segments = np.empty(size + count, dtype=np.int64)
    slot = np.arange(size, dtype=np.int64) + owner  # each byte's segment; a value's suffix follows its bytes
    suffix_slot = offsets[1:] + np.arange(count, dtype=np.int64)
    segments[slot] = header + keep
    segments[suffix_slot] = 3 + raw_lengths
    starts = np.zeros(size + count + 1, dtype=np.int64)
    np.cumsum(segments, out=starts[1:])
    out = np.empty(int(starts[-1]), dtype=np.uint8)
    kept = np.flatnonzero(keep)
    out[starts[slot[kept]] + header[kept]] = data[kept]
    if len(run_starts):
        ten = 10 ** np.arange(9, -1, -1, dtype=np.int64)
        heads = np.empty((len(run_starts), 13), dtype=np.uint8)
        heads[:, :3] = (0, 1, 2)
        heads[:, 3:] = (kept_lengths[:, None] // ten) % 10 + 48
        out[starts[slot[digits[run_starts]]][:, None] + np.arange(13)] = heads
    tails = starts[suffix_slot]
    out[tails[:, None] + np.arange(3)] = (0, 1, 1)
    raw_owner = np.repeat(np.arange(count, dtype=np.int64), raw_lengths)
    out[tails[raw_owner] + 3 + np.arange(len(raw_data), dtype=np.int64) - raw_offsets[raw_owner]] = raw_data
    key_offsets = starts[np.append(offsets[:-1] + np.arange(count, dtype=np.int64), size + count)]
    return pa.Array.from_buffers(pa.large_string(), count, [None, pa.py_buffer(key_offsets), pa.py_buffer(out)])


def _value_flags(kind: str, raw: str, fold: str) -> int:
    flag = 0
    if not raw.strip():
        flag |= BLANK
    if fold != fold.strip():
        flag |= PADDED
    if SEP in fold:
        flag |= HAS_SEP
    if kind == DATE and DATE_BOUND.match(raw):
        flag |= DATED
    if "\n" in raw:
        flag |= NEWLINE
    if not raw.isascii():
        flag |= NON_ASCII
    return flag


def encode_column(
    label: str, cells: pa.Array, kind: str | None = None, previous: PreviousColumn | None = None
) -> pa.DictionaryArray:
    """One column's cells -> codes into a dictionary of its distinct values with their query data (``kind``:
    number, date or text; by default the contract's kind of ``label``).

    ``previous``: the same column of an earlier table file, whose query data is taken for the values it holds
    (``_encode_reusing``); the same array as without it, which is what it falls back to when it cannot be exact."""
    return _encode(label, cells, kind, previous)[0]


def _encode(
    label: str, cells: pa.Array, kind: str | None, previous: PreviousColumn | None
) -> tuple[pa.DictionaryArray, bool, tuple[bytes, bytes] | None]:
    """``encode_column``, whether the previous column's query data was reused, and the presence bit sets of the
    folded values when they came from the previous ones (``_presence_reusing``)."""
    return _encode_dictionary(label, cells.dictionary_encode(), kind or column_kind(label), previous)


def _encode_dictionary(
    label: str, encoded: pa.DictionaryArray, kind: str, previous: PreviousColumn | None, where: np.ndarray | None = None
) -> tuple[pa.DictionaryArray, bool, tuple[bytes, bytes] | None]:
    """``_encode`` of a column's cells already dictionary-encoded (``encoded``: its distinct values in order of first
    appearance, as ``dictionary_encode`` gives them); ``where``: each value's code in ``previous``'s dictionary or
    -1, when it is known (else it is found, ``_previous_codes``)."""
    if previous is not None:
        reused = _encode_reusing(label, encoded, kind, previous, where)
        if reused is not None:
            return reused[0], True, reused[1]
    column = _Column(label, encoded.dictionary, kind)
    folded = column.folded()
    numbers = column.numbers() if column.kind == NUMBER else None
    array = _dictionary_array(encoded, folded, column.ranks(folded, numbers), column.flags(folded), numbers)
    return array, False, None


def _dictionary_array(
    encoded: pa.DictionaryArray, folded: pa.Array, ranks: np.ndarray, flags: np.ndarray, numbers: np.ndarray | None
) -> pa.DictionaryArray:
    """The file's column: ``encoded``'s codes (in the narrowest integer) into its values with their query data."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = encoded.dictionary
    size = len(values)
    fields: list[pa.Array] = [values]
    names = ["value"]
    if not pc.all(pc.equal(folded, values)).as_py() and size:
        fields.append(folded)
        names.append("folded")
    fields.append(pa.array(ranks, type=pa.int32()))
    names.append("rank")
    fields.append(pa.array(flags, type=pa.uint8()))
    names.append("flags")
    if numbers is not None:
        fields.append(pa.array(numbers, type=pa.float64()))
        names.append("number")
    index_type = pa.int8() if size <= 127 else pa.int16() if size <= 32767 else pa.int32()
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(index_type), pa.StructArray.from_arrays(fields, names))


@dataclass(frozen=True, slots=True)
class PreviousColumn:
    """One column of an earlier table file, as ``_encode_reusing`` reads it: its kind and its dictionary's fields
    (Arrow arrays and numpy views over the mapping)."""

    kind: str
    values: pa.StringArray
    folded: pa.StringArray
    ranks: np.ndarray
    flags: np.ndarray
    numbers: np.ndarray | None
    bits: tuple[bytes, bytes] | None = None  # the presence bit sets of its folded values (``presence``)
    codes: np.ndarray | None = None  # each previous row's code
    rows: np.ndarray | None = (
        None  # each new row's previous row holding the same object, or -1 (``PreviousTable.rows``)
    )
    dictionary: pa.StructArray | None = None  # the whole dictionary (values and query data) as the file holds it


class PreviousTable:
    """An earlier table file mapped for a build to take its columns' query data (``csv_write(previous=...)``).

    ``column(label)`` gives the column of that label when the file has it with the same kind and the fields this
    format writes, else ``None`` (that column is built from scratch); ``release()`` drops the pages read since the
    last call from this process (they stay in the page cache). ``open`` gives ``None`` for a file that is missing,
    unreadable or of another format version.
    """

    def __init__(
        self,
        mapping: mmap.mmap,
        batch: pa.RecordBatch,
        labels: list[str],
        kinds: dict[str, str],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.mapping, self.kinds = mapping, kinds
        self.labels, self.metadata, self.size = labels, metadata or {}, batch.num_rows
        self.batch: pa.RecordBatch | None = batch
        self.index = {label: index for index, label in enumerate(labels)}

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | Path | None) -> Iterator[PreviousTable | None]:
        import pyarrow as pa

        mapping = None
        try:
            with open(path, "rb") if path is not None else contextlib.nullcontext() as handle:
                if handle is not None:
                    mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            mapping = None
        if mapping is None:
            yield None
            return
        table = None
        try:
            try:
                reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapping)))
                raw = (reader.schema.metadata or {}).get(METADATA_KEY)
                metadata = json.loads(raw) if raw else {}
                labels = metadata.get("labels") or []
                if metadata.get("version") == FORMAT_VERSION and reader.num_record_batches == 1 and labels:
                    batch = reader.get_batch(0)
                    if batch.num_columns == len(labels):
                        kinds = column_kinds(ColumnSet.from_dict(metadata.get("columns") or {}))
                        table = cls(mapping, batch, labels, kinds, metadata)
                    del batch
                del reader
            except (OSError, ValueError, TypeError, KeyError, AttributeError, pa.ArrowException):
                table = None
            yield table
        finally:
            if table is not None:
                table.batch = None
            del table
            # No collection here (in a child forked from a large process it would walk every object the parent had):
            # a mapping still held by an Arrow buffer is closed when that buffer goes.
            with contextlib.suppress(BufferError):
                mapping.close()

    def column(self, label: str) -> PreviousColumn | None:
        import pyarrow as pa

        index = self.index.get(label)
        if index is None or self.batch is None:
            return None
        column = self.batch.column(index)
        dictionary = column.dictionary
        names = [dictionary.type.field(i).name for i in range(dictionary.type.num_fields)]
        kind = column_kind(label, self.kinds)
        expected = ["value", *(["folded"] if "folded" in names else []), "rank", "flags"]
        expected += ["number"] if kind == NUMBER else []
        types = {"value": pa.string(), "folded": pa.string(), "rank": pa.int32(), "flags": pa.uint8()}
        types["number"] = pa.float64()
        if names != expected or any(dictionary.type.field(name).type != types[name] for name in names):
            return None
        if dictionary.null_count or column.null_count:
            return None
        values = dictionary.field("value")
        metadata = self.batch.schema.field(index).metadata or {}
        present, pairs = metadata.get(b"bytes"), metadata.get(b"pairs")
        bits = (present, pairs) if present is not None and pairs is not None else None
        if bits is not None and (len(bits[0]) != 32 or len(bits[1]) != 8192):
            bits = None
        return PreviousColumn(
            kind=kind,
            values=values,
            folded=dictionary.field("folded") if "folded" in names else values,
            ranks=_numbers(dictionary.field("rank"), np.int32),
            flags=_numbers(dictionary.field("flags"), np.uint8),
            numbers=_numbers(dictionary.field("number"), np.float64) if kind == NUMBER else None,
            bits=bits,
            codes=self.codes(label),
            dictionary=dictionary,
        )

    def codes(self, label: str) -> np.ndarray | None:
        """Each row's code into the dictionary of the column ``label`` (a view over the mapping)."""
        index = self.index.get(label)
        if index is None or self.batch is None:
            return None
        indices = self.batch.column(index).indices
        return _numbers(indices, {1: np.int8, 2: np.int16, 4: np.int32}[indices.type.bit_width // 8])

    def rows(self, batches: Sequence[pa.RecordBatch], labels: Sequence[str], keys: Sequence[str]) -> np.ndarray | None:
        """Each new row's row in this table holding the same object (the same cells in the columns ``keys``: the
        type and the id), or -1; ``None`` when a key column is missing. A guess, which ``_encode_reusing`` checks
        value by value."""
        import pyarrow as pa
        import pyarrow.compute as pc

        new_keys = np.zeros(sum(batch.num_rows for batch in batches), dtype=np.int64)
        old_keys: np.ndarray | None = None
        for label in keys:
            column, codes = self.column(label), self.codes(label)
            if label not in labels or column is None or codes is None or len(column.values) >= 1 << 30:
                return None
            index = list(labels).index(label)
            cells = pa.chunked_array([batch.column(index) for batch in batches], type=pa.string())
            found = _np(pc.index_in(cells, value_set=column.values).fill_null(-1)).astype(np.int64)
            del cells
            width = len(column.values) + 1
            new_keys = np.where((new_keys >= 0) & (found >= 0), new_keys * width + found, -1)
            old = codes.astype(np.int64)
            old_keys = old if old_keys is None else old_keys * width + old
        if old_keys is None:
            return None
        order = np.argsort(old_keys, kind="stable")
        ordered = old_keys[order]
        at = np.minimum(np.searchsorted(ordered, new_keys), max(len(ordered) - 1, 0))
        if not len(ordered):
            return np.full(len(new_keys), -1, dtype=np.int32)
        return np.where((new_keys >= 0) & (ordered[at] == new_keys), order[at], -1).astype(np.int32)

    def release(self) -> None:
        self.mapping.madvise(mmap.MADV_DONTNEED)


def _encode_reusing(
    label: str, encoded: pa.DictionaryArray, kind: str, previous: PreviousColumn, where: np.ndarray | None = None
) -> tuple[pa.DictionaryArray, tuple[bytes, bytes] | None] | None:
    """``encode_column`` of a column whose previous table holds most of its values; ``None`` when it cannot be
    exactly what the build from scratch writes (it then runs).

    The dictionary is the new cells' (``dictionary_encode``: first appearance in the new CSV), so are the codes.
    Each value's folded text, flags and number are pure functions of it: taken from the previous dictionary for the
    values found there (``index_in``), computed for the others. The rank is the value's place in the column's order:
    the previous ranks give the kept values' order, the new values are sorted among themselves and each placed among
    the kept ones by comparing sort keys (computed only for the values compared). Ties (values whose sort keys are
    equal, ordered by their codes) make it give up, unless they are between kept values whose codes keep their order.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if previous.kind != kind:
        return None
    values = encoded.dictionary
    size = len(values)
    if where is None:
        where = _previous_codes(encoded, previous)
    fresh = np.flatnonzero(where < 0)
    kept = np.flatnonzero(where >= 0)
    if len(fresh) * (len(kept).bit_length() + 1) > len(kept) + 64:
        return None  # each new value keys about log2(kept) kept ones: keying every value once is then cheaper
    column = _Column(label, values.take(fresh), kind)
    fresh_folded = column.folded()
    fresh_numbers = column.numbers() if kind == NUMBER else None
    fresh_flags = column.flags(fresh_folded)
    # Every value's folded text: the previous one's, or the new one's (after the previous dictionary's end); the
    # values themselves when none folds to other text (the previous file then has no folded field).
    if previous.folded is previous.values and pc.all(pc.equal(fresh_folded, column.values)).as_py():
        folded = values
    else:
        source = where.copy()
        source[fresh] = len(previous.folded) + np.arange(len(fresh))
        folded = pa.concat_arrays([previous.folded, fresh_folded]).take(pa.array(source))
        del source
    flags = np.empty(size, dtype=np.uint8)
    flags[kept] = previous.flags[where[kept]]
    flags[fresh] = fresh_flags
    numbers = None
    if kind == NUMBER:
        assert previous.numbers is not None and fresh_numbers is not None
        numbers = np.empty(size, dtype=np.float64)
        numbers[kept] = previous.numbers[where[kept]]
        numbers[fresh] = fresh_numbers
    ranks = _ranks_merged(label, kind, values, folded, numbers, where, previous)
    if ranks is None:
        return None
    bits = None
    if previous.bits is not None:
        gone = np.ones(len(previous.values), dtype=bool)
        gone[where[kept]] = False
        bits = _presence_reusing(previous.bits, previous.folded.take(np.flatnonzero(gone)), fresh_folded, folded)
    return _dictionary_array(encoded, folded, ranks, flags, numbers), bits


# From how many distinct values a column's are found in the previous dictionary through the rows holding the same
# objects rather than by hashing the previous dictionary (``_previous_codes``).
_BY_ROWS_FROM = 1 << 12
_COMPARED_AT_ONCE = 1 << 16


def _previous_codes(encoded: pa.DictionaryArray, previous: PreviousColumn) -> np.ndarray:
    """Each value's code in the previous dictionary, or -1 (a value not found there is then new to the build; a
    value missed that the previous dictionary has is computed again, which gives the same data).

    Few values: ``index_in``. Many (names, addresses, serials, dates): the previous dictionary is not hashed; each
    value is compared with the one the previous row of the same object held (a row holding the value, its
    previous row from ``previous.rows``, that row's previous code), which it equals but where the object changed.
    """
    import pyarrow.compute as pc

    values = encoded.dictionary
    rows, codes = previous.rows, previous.codes
    if rows is None or codes is None or len(values) < _BY_ROWS_FROM or len(rows) != len(encoded):
        return _np(pc.index_in(values, value_set=previous.values).fill_null(-1)).astype(np.int64)  # type: ignore[no-any-return]
    holder = np.empty(len(values), dtype=np.int32)
    holder[_np(encoded.indices)] = np.arange(len(encoded), dtype=np.int32)  # a row holding each value (any)
    before = rows[holder]
    del holder
    held = np.flatnonzero(before >= 0).astype(np.int32)
    candidates = codes[before[held]].astype(np.int32)
    del before
    where = np.full(len(values), -1, dtype=np.int64)
    for start in range(0, len(held), _COMPARED_AT_ONCE):  # a slice at a time: the values taken stay small
        mine, theirs = held[start : start + _COMPARED_AT_ONCE], candidates[start : start + _COMPARED_AT_ONCE]
        same = _np(pc.equal(values.take(mine), previous.values.take(theirs))).astype(bool)
        where[mine[same]] = theirs[same]
    return where


def _presence_reusing(
    bits: tuple[bytes, bytes], gone: pa.StringArray, fresh: pa.StringArray, folded: pa.StringArray
) -> tuple[bytes, bytes] | None:
    """``presence(folded)`` from the previous values' (``bits``), the folded values no longer there (``gone``) and
    those new (``fresh``): a byte or pair is present when the new values have it, or the previous ones did and the
    values gone did not; one that only values gone and kept ones may have had is looked for in ``folded`` (the first
    hit inside one value decides). ``None`` when too many hits straddle two values (then count them all)."""

    def unpacked(bit_set: bytes) -> np.ndarray:
        return np.unpackbits(np.frombuffer(bit_set, dtype=np.uint8)).astype(bool)

    fresh_present, fresh_pairs = (unpacked(bit_set) for bit_set in presence(fresh))
    gone_present, gone_pairs = (unpacked(bit_set) for bit_set in presence(gone))
    present = unpacked(bits[0]) | fresh_present
    pairs = unpacked(bits[1]) | fresh_pairs
    doubtful_bytes = np.flatnonzero(gone_present & ~fresh_present)
    doubtful_pairs = np.flatnonzero(gone_pairs & ~fresh_pairs)
    if len(doubtful_bytes) or len(doubtful_pairs):
        offsets, data = _string_buffers(folded)
        text = data.tobytes()
        for byte in doubtful_bytes.tolist():
            present[byte] = text.find(bytes((byte,))) >= 0
        starts = offsets[1:-1]
        for pair in doubtful_pairs.tolist():
            pattern, position, tries = bytes((pair >> 8, pair & 255)), -1, 0
            while True:
                position = text.find(pattern, position + 1)
                if position < 0:
                    break
                at = int(np.searchsorted(starts, position + 1))
                if at == len(starts) or starts[at] != position + 1:
                    break  # inside one value
                tries += 1
                if tries > 64:
                    return None
            pairs[pair] = position >= 0
    return np.packbits(present).tobytes(), np.packbits(pairs).tobytes()


def _ranks_merged(
    label: str,
    kind: str,
    values: pa.StringArray,
    folded: pa.Array,
    numbers: np.ndarray | None,
    where: np.ndarray,
    previous: PreviousColumn,
) -> np.ndarray | None:
    """``_Column.ranks`` of ``values`` from the previous ranks of those the previous dictionary holds (``where``):
    the same ranks, or ``None`` where a tie makes them depend on the codes."""
    import pyarrow.compute as pc

    size = len(values)
    empty = _np(pc.equal(values, ""))
    kept = np.flatnonzero((where >= 0) & ~empty)
    fresh = np.flatnonzero((where < 0) & ~empty)
    # The kept values in their previous order: placed by their previous rank (distinct for non-blank values).
    previous_ranks = previous.ranks[where[kept]].astype(np.int64)
    if len(kept) and (previous_ranks.min() < 0 or previous_ranks.max() >= len(previous.ranks)):
        return None
    slots = np.full(len(previous.ranks), -1, dtype=np.int64)
    slots[previous_ranks] = kept
    in_order = slots[slots >= 0]
    if len(in_order) != len(kept):
        return None

    def texts(codes: np.ndarray) -> pa.Array:
        return folded.take(codes)

    def natural(codes: np.ndarray) -> pa.Array:
        return _Column(label, values.take(codes), kind).natural_keys(folded.take(codes))

    order: np.ndarray | None
    if kind == NUMBER and numbers is not None:
        is_number = ~np.isnan(numbers)
        numeric = _merged_numbers(in_order[is_number[in_order]], fresh[is_number[fresh]], numbers)
        text = _merged_texts(in_order[~is_number[in_order]], fresh[~is_number[fresh]], texts, strict=False)
        if numeric is None or text is None:
            return None
        order = np.concatenate([numeric, text])
    elif kind == DATE:
        order = _merged_texts(in_order, fresh, texts, strict=False)
    else:
        order = _merged_texts(in_order, fresh, natural, strict=True)
    if order is None:
        return None
    ranks = np.empty(size, dtype=np.int32)
    ranks[order] = np.arange(len(order), dtype=np.int32)
    ranks[empty] = size
    return ranks


def _merged_numbers(kept: np.ndarray, fresh: np.ndarray, numbers: np.ndarray) -> np.ndarray | None:
    """``kept`` (in ascending order of their numbers) and ``fresh`` in one ascending order; ``None`` on a tie whose
    order is not the previous one."""
    kept_numbers = numbers[kept]
    if not _ties_kept(kept, kept_numbers[1:] == kept_numbers[:-1]):
        return None
    fresh = fresh[np.argsort(numbers[fresh], kind="stable")]
    fresh_numbers = numbers[fresh]
    if np.any(fresh_numbers[1:] <= fresh_numbers[:-1]):
        return None
    at = np.searchsorted(kept_numbers, fresh_numbers, side="left")
    if np.any(at != np.searchsorted(kept_numbers, fresh_numbers, side="right")):
        return None
    return np.insert(kept, at, fresh)


def _ties_kept(kept: np.ndarray, tied: np.ndarray) -> bool:
    """Whether the kept values whose sort keys equal their predecessor's (``tied``, one per neighbouring pair) stay
    in the order they had: ties are ordered by code, and each new code must follow its predecessor's."""
    return not np.any(tied) or bool(np.all(kept[1:][tied] > kept[:-1][tied]))


def _merged_texts(kept: np.ndarray, fresh: np.ndarray, keys: Any, *, strict: bool) -> np.ndarray | None:
    """``kept`` (in ascending order of ``keys(codes)``, sort keys compared as bytes) and ``fresh`` in one ascending
    order; ``None`` on a tie of a new value, or of kept values now in another order. ``strict``: the keys are known
    distinct (natural keys end with the raw value), so only the comparisons made are checked for ties; else the kept
    values' neighbours are compared too."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not strict and len(kept) > 1:
        kept_keys = keys(kept)
        if not _ties_kept(kept, _np(pc.equal(kept_keys.slice(1), kept_keys.slice(0, len(kept) - 1))).astype(bool)):
            return None
        del kept_keys
    if not len(fresh):
        return kept
    fresh_keys = keys(fresh)
    order = _np(pc.sort_indices(fresh_keys))
    fresh, fresh_keys = fresh[order], fresh_keys.take(pa.array(order))
    if len(fresh) > 1 and pc.any(pc.equal(fresh_keys.slice(1), fresh_keys.slice(0, len(fresh) - 1))).as_py():
        return None
    # A binary search of every fresh value at once: each round keys the kept values in the middle of the ranges.
    low = np.zeros(len(fresh), dtype=np.int64)
    high = np.full(len(fresh), len(kept), dtype=np.int64)
    while True:
        active = np.flatnonzero(low < high)
        if not len(active):
            break
        middle = (low[active] + high[active]) // 2
        probed, back = np.unique(middle, return_inverse=True)
        probe = keys(kept[probed]).take(pa.array(back))
        mine = fresh_keys.take(pa.array(active))
        if pc.any(pc.equal(mine, probe)).as_py():
            return None
        before = _np(pc.less(mine, probe)).astype(bool)
        high[active[before]] = middle[before]
        low[active[~before]] = middle[~before] + 1
    return np.insert(kept, low, fresh)


def csv_read(path: str | Path) -> tuple[list[str], list[pa.Array]]:
    """A merged CSV's header and its columns as Arrow strings (UTF-8 with or without a BOM; every cell as text)."""
    header, frame = _csv_frame(path)
    if frame is None:
        return [], []
    return header, [frame.column(index).combine_chunks() for index in range(len(header))]


def csv_write(
    path: str | Path,
    target: str | Path,
    *,
    source_sha256: str = "",
    column_set: dict[str, Any] | None = None,
    block_size: int | None = None,
    previous: str | Path | None = None,
) -> list[str]:
    """``table_write`` of a merged CSV's cells (as ``csv_read`` reads them), holding one column at a time: the same
    file as ``table_write(target, *csv_read(path))``, in memory that grows only with the largest column's distinct
    values (measured at 250,000 and 500,000 rows: 190 and 270 MB for the whole process, against 470 and 650 MB
    when every column was held until the file was written).

    ``previous``: an earlier table file (the previous run's), whose columns' query data is taken for the values they
    still hold (``encode_column``): the same bytes, built in a fraction of the time when few values are new. A file
    that is missing or of another format is ignored. The labels of the columns built from it are returned.

    Three passes, each holding one piece at a time, through two spill files beside ``target`` (``<stem>.cells`` and
    ``<stem>.coded`` + its suffix, removed at the end; a ``.part`` target's spills end in ``.part`` too):

    1. the CSV is read a block (``block_size`` bytes; pyarrow's default) at a time, each block's cells appended to
       an Arrow file as they are;
    2. that file is mapped and each column encoded alone (``encode_column``) from its cells in place, then appended
       to the second file as an Arrow stream of its own; the pages of the first file it read are dropped from this
       process (``MADV_DONTNEED``: they stay in the page cache, not in its memory) and the freed heap handed back;
    3. the second file is mapped and the table file written from its columns in place, dropping the pages written.

    What stays resident is one block, then one column's encoding (its distinct values and their query data, its
    codes), then a few MB of mapped pages; pyarrow's writer never sees more than one column until the last pass,
    which reads every column from the mapping.
    """
    header, options = _csv_options(path)
    if block_size:
        options["read_options"].block_size = block_size
    if not header:
        table_write(target, [], [], source_sha256=source_sha256, column_set=column_set)
        return []
    kinds = column_kinds(ColumnSet.from_dict(column_set or {}))
    target = Path(target)
    cells_path, encoded_path = (target.with_name(f"{target.stem}.{part}{target.suffix}") for part in ("cells", "coded"))
    try:
        rows = _spill_cells(path, options, cells_path)
        _release_freed()
        with PreviousTable.open(previous) as earlier:
            sources = ColumnSet.from_dict(column_set or {}).contract_sources()
            ids = [label for label, name in sources.items() if name == "ID"]
            keys = [TYPE_COLUMN, ids[0]] if ids else []
            fields, spans, from_previous = _spill_columns(cells_path, encoded_path, header, kinds, earlier, keys)
        cells_path.unlink()
        schema = _schema(header, fields, rows, source_sha256=source_sha256, column_set=column_set)
        _write_spilled(target, encoded_path, spans, schema)
    finally:
        for spill in (cells_path, encoded_path):
            with contextlib.suppress(FileNotFoundError):
                spill.unlink()
    return from_previous


def _write_spilled(target: Path, spill: Path, spans: list[tuple[int, int]], schema: pa.Schema) -> None:
    """The last pass of ``csv_write``: the table file written from the columns' streams in ``spill`` (at ``spans``),
    read in place from its mapping, dropping the pages written."""
    import pyarrow as pa

    with _mapped(spill) as mapping:
        buffer = pa.py_buffer(mapping)
        arrays = [
            pa.ipc.open_stream(pa.BufferReader(buffer.slice(start, length))).read_next_batch().column(0)
            for start, length in spans
        ]
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        del arrays, buffer
        with open(target, "wb") as handle:
            sink = pa.PythonFile(_DroppingSink(handle, mapping), mode="w")
            with pa.ipc.new_file(sink, schema) as writer:
                writer.write_batch(batch)
            del batch


# Up to what share of rows made now ``csv_write_mapped`` builds; past it ``csv_write`` is about as quick, and the cells
# of the rows made now would be held all at once.
MAPPED_MADE_AT_MOST = 0.25
# How many copied rows (the first and last of runs of them) are compared with the previous table before it is trusted.
_CHECKED_ROWS = 512


def csv_write_mapped(
    path: str | Path,
    target: str | Path,
    *,
    source_sha256: str = "",
    column_set: dict[str, Any] | None = None,
    previous: str | Path | None = None,
) -> list[str] | None:
    """``csv_write(previous=...)`` of an incremental run's merged CSV that knows which of its records are copies of
    the previous merged CSV's, and which: its row map (``exports.rowmap``, beside it). Those rows are taken from
    ``previous`` (the table file of that merged CSV) by their place, and only the records made now are read (their
    bytes, through the CSV's index) and parsed: the same bytes as ``csv_write``; the labels of the columns whose
    query data came from ``previous``. ``None``, with nothing written, when it cannot be sure of that: no map or no
    index, a map of another CSV or of another previous run, a previous table that is not that run's table of the same
    columns, more than ``MAPPED_MADE_AT_MOST`` of the rows made now, copied rows whose cells are not the previous
    table's (a sample, ``_copied_rows_match``). The caller then builds with ``csv_write``.

    Each column alone, as ``csv_write``'s second pass: every row's value as an id, a copied row's its code in the
    previous dictionary (a gather) and a row made now's its code there or one after its end (its parsed cell looked up
    in the previous values, ``index_in``); ``dictionary_encode`` of the ids gives the values in order of first
    appearance and every row's code, as the cells' ``dictionary_encode`` would, and each value's code in the previous
    dictionary. The query data is then taken or computed as ``csv_write`` does (``_encode_reusing``: the new values'
    folded text, flags and numbers, their ranks merged among the kept ones'; or the whole column when that cannot be
    exact), and the file written as ``csv_write`` writes it.
    """
    import pyarrow as pa

    from exports.csvfiles import CsvIndexError, csv_indexed
    from exports.rowmap import row_map_read

    if previous is None:
        return None
    path, target = Path(path), Path(target)
    header, options = _csv_options(path)
    mapped = row_map_read(path)
    if not header or mapped is None or mapped.previous != Path(previous).parent.name:
        return None
    if source_sha256 and mapped.sha256 != source_sha256:
        return None
    rows = len(mapped.rows)
    copied = np.flatnonzero(mapped.rows >= 0).astype(np.int32)
    made = np.flatnonzero(mapped.rows < 0).astype(np.int32)
    sources = mapped.rows[copied]
    previous_rows = mapped.previous_rows
    del mapped
    if not len(copied) or len(made) > MAPPED_MADE_AT_MOST * rows:
        return None
    if sources[-1] >= previous_rows or not bool(np.all(np.diff(sources) > 0)):
        return None
    kinds = column_kinds(ColumnSet.from_dict(column_set or {}))
    encoded_path = target.with_name(f"{target.stem}.coded{target.suffix}")
    from_previous: list[str] = []
    try:
        with PreviousTable.open(previous) as earlier:
            if (
                earlier is None
                or earlier.labels != header
                or earlier.size != previous_rows
                or earlier.metadata.get("rows") != previous_rows
                or (earlier.metadata.get("columns") or {}) != (column_set or {})
            ):
                return None
            columns = [earlier.column(label) for label in header]
            if any(column is None or column.codes is None for column in columns):
                return None
            indexed = csv_indexed(path)
            if indexed is None:
                return None
            try:
                if indexed.rows != rows:
                    return None
                cells = _records_parsed(indexed, made, options)
                if cells.num_rows != len(made):
                    return None
                if not _copied_rows_match(indexed, copied, sources, options, columns, earlier.release):
                    return None
            except (CsvIndexError, pa.ArrowInvalid):
                return None
            finally:
                indexed.close()  # and its offsets freed: every record needed is read
                del indexed
            fields: list[pa.Field] = []
            spans: list[tuple[int, int]] = []
            with pa.OSFile(str(encoded_path), "wb") as sink:
                for index, (label, column) in enumerate(zip(header, columns, strict=True)):
                    assert column is not None and column.codes is not None
                    ids, fresh, new = _mapped_ids(column, cells.column(index), copied, sources, made)
                    array = _mapped_unchanged(column, ids) if not len(new) else None
                    if array is not None:  # the previous dictionary as it is: its query data and bit sets too
                        reused, bits = True, column.bits
                    else:
                        encoded, where = _mapped_encoding(column, ids, fresh, new)
                        kind = column_kind(label, kinds)
                        array, reused, bits = _encode_dictionary(label, encoded, kind, column, where)
                        del encoded, where
                    del ids, fresh, new
                    if reused:
                        from_previous.append(label)
                    field, span = _column_spilled(sink, index, array, bits)
                    del array
                    fields.append(field)
                    spans.append(span)
                    earlier.release()
                    _release_freed()
            del columns, cells
        schema = _schema(header, fields, rows, source_sha256=source_sha256, column_set=column_set)
        _write_spilled(target, encoded_path, spans, schema)
    finally:
        with contextlib.suppress(FileNotFoundError):
            encoded_path.unlink()
    return from_previous


def _mapped_ids(
    previous: PreviousColumn, cells: pa.ChunkedArray, copied: np.ndarray, sources: np.ndarray, made: np.ndarray
) -> tuple[np.ndarray, pa.StringArray, np.ndarray]:
    """Each row's value of a column of ``csv_write_mapped`` as an id, from the previous column's codes of the rows
    ``copied`` (from the previous rows ``sources``) and the ``cells`` of the rows ``made``: its previous code, or (a
    value the previous dictionary lacks) one past its end; with the distinct cells of the rows made and which of them
    the previous dictionary lacks (in id order). The ids are of the previous codes' type when none is new (they then
    fit it), else ``int32``.

    The previous dictionary is not hashed (a large one costs more memory than the whole column): its values are looked
    up among the few the rows made now hold."""
    import pyarrow.compute as pc

    assert previous.codes is not None
    size = len(previous.values)
    fresh = cells.combine_chunks().dictionary_encode()
    found = np.full(len(fresh.dictionary), -1, dtype=np.int32)
    if len(fresh.dictionary):
        at = _np(pc.index_in(previous.values, value_set=fresh.dictionary).fill_null(-1)).astype(np.int32)
        hits = np.flatnonzero(at >= 0)
        found[at[hits]] = hits
        del at, hits
    new = np.flatnonzero(found < 0)
    found[new] = size + np.arange(len(new), dtype=np.int32)
    ids = np.empty(len(copied) + len(made), dtype=np.int32 if len(new) else previous.codes.dtype)
    ids[copied] = previous.codes[sources]
    ids[made] = found[_np(fresh.indices)]
    return ids, fresh.dictionary, new


def _mapped_unchanged(previous: PreviousColumn, ids: np.ndarray) -> pa.DictionaryArray | None:
    """The column of ``csv_write_mapped`` when its values are the previous dictionary's, all of them and first seen in
    the same order (``ids``: ``_mapped_ids``, none new): the previous dictionary as the file holds it with ``ids`` as
    the codes, which is what the cells' ``dictionary_encode`` and the query data of those values give; else ``None``.

    Ids first seen in ascending order, none skipped: their running maximum starts at 0, ends at the last id and steps
    up as many times, each step then by one. Ordering the values by their first row would sort them (most columns,
    when 1 % of rows change)."""
    import pyarrow as pa

    size = len(previous.values)
    if previous.dictionary is None or previous.codes is None or not len(ids) or ids[0] != 0:
        return None
    index_type = np.int8 if size <= 127 else np.int16 if size <= 32767 else np.int32
    if previous.codes.dtype != index_type or ids.dtype != index_type:
        return None
    seen = np.maximum.accumulate(ids)
    if seen[-1] != size - 1 or np.count_nonzero(seen[1:] != seen[:-1]) != size - 1:
        return None
    del seen
    return pa.DictionaryArray.from_arrays(pa.array(ids), previous.dictionary, safe=False)


def _mapped_encoding(
    previous: PreviousColumn, ids: np.ndarray, fresh: pa.StringArray, new: np.ndarray
) -> tuple[pa.DictionaryArray, np.ndarray]:
    """A column of ``csv_write_mapped`` as the cells' ``dictionary_encode`` would give it, from each row's value as an
    id and the distinct cells of the rows made now (``_mapped_ids``); and each value's code in the previous
    dictionary, or -1.

    The values in order of first appearance are the ids by their first row (``np.minimum.at``), which numbers them."""
    import pyarrow as pa

    size = len(previous.values)
    count = len(ids)
    first = np.full(size + len(new), count, dtype=np.int32)
    np.minimum.at(first, ids, np.arange(count, dtype=np.int32))
    present = np.flatnonzero(first < count)
    distinct = present[np.argsort(first[present])]
    del first, present
    numbers = np.empty(size + len(new), dtype=np.int32)
    numbers[distinct] = np.arange(len(distinct), dtype=np.int32)
    codes = pa.array(numbers[ids])
    del numbers
    values = previous.values
    if len(new):
        values = pa.concat_arrays([values, fresh.take(pa.array(new))])
    dictionary = values.take(pa.array(distinct))
    del values
    return pa.DictionaryArray.from_arrays(codes, dictionary), np.where(distinct < size, distinct, -1)


def _records_parsed(indexed: Any, numbers: np.ndarray, options: dict[str, Any]) -> pa.Table:
    """The cells of the records ``numbers`` (ascending) of an indexed CSV, read (each run of them as one range of
    bytes) and parsed as ``csv_write`` parses the whole CSV."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = options["read_options"].column_names
    if not len(numbers):
        return pa.table({name: pa.array([], type=pa.string()) for name in names})
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    firsts = numbers[np.concatenate([[0], breaks])].tolist()
    stops = (numbers[np.concatenate([breaks - 1, [len(numbers) - 1]])] + 1).tolist()
    data = b"".join(indexed.read(first, stop) for first, stop in zip(firsts, stops, strict=True))
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
        parse_options=options["parse_options"],
        convert_options=options["convert_options"],
    )


def _copied_rows_match(
    indexed: Any,
    copied: np.ndarray,
    sources: np.ndarray,
    options: dict[str, Any],
    columns: Sequence[Any],
    release: Any,
) -> bool:
    """Whether the rows the map says were copied hold the previous table's cells, looked at where a map gone wrong
    shows: the first and last row of each run of rows copied from consecutive previous rows (at most
    ``_CHECKED_ROWS`` of them, spread over the runs), every column. ``release`` drops the previous table's pages read
    (a column at a time: the rows are spread over the whole file)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    starts = np.flatnonzero((np.diff(copied, prepend=-2) != 1) | (np.diff(sources, prepend=-2) != 1))
    ends = np.append(starts[1:] - 1, len(copied) - 1)
    checked = np.unique(np.concatenate([starts, ends]))
    if len(checked) > _CHECKED_ROWS:
        checked = np.unique(checked[np.linspace(0, len(checked) - 1, _CHECKED_ROWS).astype(np.int64)])
    cells = _records_parsed(indexed, copied[checked], options)
    if cells.num_rows != len(checked):
        return False
    for index, column in enumerate(columns):
        codes = pa.array(column.codes[sources[checked]].astype(np.int64))
        same = pc.all(pc.equal(cells.column(index), column.values.take(codes))).as_py()
        release()
        if not same:
            return False
    return True


# Bytes written from a mapping between two ``MADV_DONTNEED`` of it (how much of it stays resident at most).
_DROP_EVERY = 8 << 20


class _DroppingSink:
    """A file to write to (for ``pa.PythonFile``) that drops ``mapping``'s pages from this process every
    ``_DROP_EVERY`` bytes: what is written is read from the mapping, whose pages would otherwise stay resident."""

    def __init__(self, handle: Any, mapping: Any) -> None:
        self.handle, self.mapping = handle, mapping
        self.written = self.dropped = 0
        self.closed = False

    def write(self, data: Any) -> int:
        size: int = self.handle.write(data)
        self.written += size
        if self.written - self.dropped >= _DROP_EVERY:
            self.mapping.madvise(mmap.MADV_DONTNEED)
            self.dropped = self.written
        return size

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.closed = True
        self.mapping.madvise(mmap.MADV_DONTNEED)


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    """``path`` mapped read-only; closed on the way out once no Arrow buffer holds it (else left to the collector)."""
    with open(path, "rb") as handle:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield mapping
    finally:
        # No gc.collect() here: in a child forked from a large process a collection walks (and copies) every object
        # the parent had. A mapping still held by an Arrow buffer is closed by the collector in its own time.
        with contextlib.suppress(BufferError):
            mapping.close()


def _spill_cells(path: str | Path, options: dict[str, Any], spill: Path) -> int:
    """Pass 1 of ``csv_write``: the CSV's cells into an Arrow file, a block at a time; the number of rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rows = 0
    reader = pacsv.open_csv(path, **options)
    with pa.OSFile(str(spill), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
        for block in reader:
            writer.write_batch(block)
            rows += block.num_rows
            del block
    return rows


def _spill_columns(
    cells: Path,
    spill: Path,
    labels: Sequence[str],
    kinds: dict[str, str],
    previous: PreviousTable | None = None,
    keys: Sequence[str] = (),
) -> tuple[list[pa.Field], list[tuple[int, int]], list[str]]:
    """Pass 2 of ``csv_write``: each column of the cells' file encoded alone (from ``previous``'s column of the same
    label where it can be; ``keys``: the labels of the columns that tell an object, the type and the id, to find each
    row's previous row by) and appended to ``spill`` as an Arrow stream; each column's field, where its stream lies
    in ``spill``, and the labels of the columns built from ``previous``."""
    import pyarrow as pa

    fields: list[pa.Field] = []
    spans: list[tuple[int, int]] = []
    from_previous: list[str] = []
    with _mapped(cells) as mapping, pa.OSFile(str(spill), "wb") as sink:
        reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapping)))
        batches = [reader.get_batch(index) for index in range(reader.num_record_batches)]
        del reader
        rows = previous.rows(batches, labels, keys) if previous is not None and keys else None
        if previous is not None:
            previous.release()
        for index, label in enumerate(labels):
            chunked = pa.chunked_array([batch.column(index) for batch in batches], type=pa.string())
            encoded = chunked.dictionary_encode().combine_chunks()
            del chunked
            earlier = previous.column(label) if previous is not None else None
            if earlier is not None and rows is not None:
                earlier = dataclasses.replace(earlier, rows=rows)
            array, reused, bits = _encode(label, encoded, column_kind(label, kinds), earlier)
            del encoded, earlier
            if previous is not None:
                previous.release()
            if reused:
                from_previous.append(label)
            field, span = _column_spilled(sink, index, array, bits)
            del array
            fields.append(field)
            spans.append(span)
            mapping.madvise(mmap.MADV_DONTNEED)
            _release_freed()
        del batches
    return fields, spans, from_previous


def _column_spilled(
    sink: Any, index: int, array: pa.DictionaryArray, bits: tuple[bytes, bytes] | None
) -> tuple[pa.Field, tuple[int, int]]:
    """Append one encoded column to a spill file as an Arrow stream of its own: its field, and where the stream is
    (start, length) for the last pass to read it in place."""
    import pyarrow as pa

    field = _field(index, array, bits)
    start = sink.tell()
    with pa.ipc.new_stream(sink, pa.schema([field])) as writer:
        writer.write_batch(pa.record_batch([array], schema=pa.schema([field])))
    return field, (start, sink.tell() - start)


def _release_freed() -> None:
    """Hand the memory freed by one column's encoding back to the system (pyarrow's pool, then the C heap)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    release_freed_memory()


def _csv_frame(path: str | Path) -> tuple[list[str], pa.Table | None]:
    import pyarrow.csv as pacsv

    header, options = _csv_options(path)
    if not header:
        return [], None
    return header, pacsv.read_csv(path, **options)


def _csv_options(path: str | Path) -> tuple[list[str], dict[str, Any]]:
    """A merged CSV's header, and how pyarrow reads its cells (every one as text; UTF-8 with or without a BOM)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    if len(set(header)) != len(header):
        raise ValueError("duplicate column labels")
    names = [f"c{index}" for index in range(len(header))]  # labels may be anything; Arrow needs them only to type
    return header, {
        "read_options": pacsv.ReadOptions(column_names=names, skip_rows=1),
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
        ),
    }


def table_write(
    target: str | Path | Any,
    labels: Sequence[str],
    columns: Iterable[pa.Array],
    *,
    source_sha256: str = "",
    column_set: dict[str, Any] | None = None,
) -> None:
    """Write the table file (to a path, or to an Arrow output stream) from each column's cells (Arrow strings).

    ``columns`` may be an iterator: each column is encoded as it comes, and may be freed once it is (``csv_write``).
    ``column_set``: the run's column set (``ColumnSet.as_dict``; ``None`` or ``{}``: the default), kept in the
    file's metadata: it gives each column its kind (here, and to every reader) and the datasets their columns."""
    import pyarrow as pa

    if len(set(labels)) != len(labels):
        raise ValueError("duplicate column labels")
    kinds = column_kinds(ColumnSet.from_dict(column_set or {}))
    arrays = []
    sizes = set()
    for label, cells in itertools.zip_longest(labels, columns):
        if label is None or cells is None:
            raise ValueError("one column of cells per label")
        sizes.add(len(cells))
        arrays.append(encode_column(label, cells, column_kind(label, kinds)))
        del cells
    if len(sizes) > 1:
        raise ValueError("columns of different lengths")
    size = sizes.pop() if sizes else 0
    fields = [_field(index, array) for index, array in enumerate(arrays)]
    schema = _schema(labels, fields, size, source_sha256=source_sha256, column_set=column_set)
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema) if arrays else None
    sink = pa.OSFile(str(target), "wb") if isinstance(target, str | Path) else target
    try:
        with pa.ipc.new_file(sink, schema) as writer:
            if batch is not None:
                writer.write_batch(batch)
    finally:
        if isinstance(target, str | Path):
            sink.close()


def _field(index: int, array: pa.DictionaryArray, bits: tuple[bytes, bytes] | None = None) -> pa.Field:
    """The file's field of an encoded column: ``c<index>``, with the presence bit sets of its folded values (``bits``
    when they are known already)."""
    import pyarrow as pa

    value_type = array.type.value_type
    names = [value_type.field(i).name for i in range(value_type.num_fields)]
    present, pairs = bits or presence(array.dictionary.field("folded" if "folded" in names else "value"))
    return pa.field(f"c{index}", array.type, nullable=False, metadata={b"bytes": present, b"pairs": pairs})


def _schema(
    labels: Sequence[str],
    fields: list[pa.Field],
    size: int,
    *,
    source_sha256: str,
    column_set: dict[str, Any] | None,
) -> pa.Schema:
    """The file's schema: its fields, and the metadata a reader checks (format, source CSV, rows, labels)."""
    import pyarrow as pa

    metadata = {"version": FORMAT_VERSION, "source_sha256": source_sha256, "rows": size, "labels": list(labels)}
    if column_set:
        metadata["columns"] = column_set
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata).encode()})


def _strings(array: Any, text: Any, address: int) -> Strings:
    """An Arrow string array of the file as ``Strings``: numpy views of its buffers, nothing copied."""
    _, offsets, data = array.buffers()
    positions = np.frombuffer(offsets, dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    if data is None:
        return Strings(offsets=positions, data=np.zeros(0, dtype=np.uint8), text=b"", base=0)
    return Strings(offsets=positions, data=np.frombuffer(data, dtype=np.uint8), text=text, base=data.address - address)


def _numbers(array: Any, dtype: Any) -> np.ndarray:
    """A primitive Arrow array of the file as a numpy view (no nulls are written)."""
    buffer = array.buffers()[1]
    return np.frombuffer(buffer, dtype=dtype)[array.offset : array.offset + len(array)]


def table_read(source: str | Path | bytes, *, expect_sha256: str | None = None) -> TableArrays:
    """Map a table file (a path) or read one from bytes; ``TableFileError`` when it is missing or not current.

    Only the IPC framing is read with pyarrow; every array is handed out as a numpy view (or ``Strings``).
    """
    import mmap

    import pyarrow as pa
    import pyarrow.ipc

    text: mmap.mmap | bytes
    try:
        if isinstance(source, bytes):
            text = source
        else:
            with open(source, "rb") as handle:
                text = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        buffer = pa.py_buffer(text)
        reader = pyarrow.ipc.open_file(pa.BufferReader(buffer))
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise TableFileError(f"cannot read the table file: {exc}") from exc
    raw = (reader.schema.metadata or {}).get(METADATA_KEY)
    metadata: dict[str, Any] = json.loads(raw) if raw else {}
    if metadata.get("version") != FORMAT_VERSION:
        raise TableFileError(f"table file of format {metadata.get('version')!r}, not {FORMAT_VERSION}")
    if expect_sha256 is not None and metadata.get("source_sha256") != expect_sha256:
        raise TableFileError("table file made from another CSV")
    labels: list[str] = metadata["labels"]
    size = int(metadata["rows"])
    address = buffer.address
    columns: list[ColumnArrays] = []
    if labels:
        batch = reader.get_batch(0)
        for label, column, field in zip(labels, batch.columns, reader.schema, strict=True):
            dictionary = column.dictionary
            names = {dictionary.type.field(i).name for i in range(dictionary.type.num_fields)}
            values = _strings(dictionary.field("value"), text, address)
            bits = field.metadata or {}
            folded = _strings(dictionary.field("folded"), text, address) if "folded" in names else values
            if b"bytes" in bits and b"pairs" in bits:
                folded = dataclasses.replace(
                    folded,
                    present=np.frombuffer(bits[b"bytes"], dtype=np.uint8),
                    pairs=np.frombuffer(bits[b"pairs"], dtype=np.uint8),
                )
            index_type = {1: np.int8, 2: np.int16, 4: np.int32}[column.type.index_type.bit_width // 8]
            columns.append(
                ColumnArrays(
                    label=label,
                    codes=_numbers(column.indices, index_type),
                    values=values,
                    folded=folded,
                    ranks=_numbers(dictionary.field("rank"), np.int32),
                    flags=_numbers(dictionary.field("flags"), np.uint8),
                    numbers=_numbers(dictionary.field("number"), np.float64) if "number" in names else None,
                )
            )
    return TableArrays(columns=columns, size=size, metadata=metadata, source=text)


def table_buffer(
    labels: Sequence[str], columns: Sequence[Sequence[str] | pa.Array], column_set: dict[str, Any] | None = None
) -> TableArrays:
    """A table built in memory (tests, and a table that cannot be written to disk): written and read back."""
    import pyarrow as pa

    arrays = [cells if isinstance(cells, pa.Array) else pa.array(list(cells), type=pa.string()) for cells in columns]
    sink = pa.BufferOutputStream()
    table_write(sink, labels, arrays, column_set=column_set)
    return table_read(sink.getvalue().to_pybytes())
