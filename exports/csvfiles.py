"""Write CMDB rows to CSV, atomically (see ``exports.atomic``).

UTF-8 without a BOM, the csv module's default dialect (RFC 4180: ``\\r\\n`` between records, fields with commas,
quotes or line breaks quoted, line breaks inside a field kept as they are). Values are written exactly: ``""`` is
an empty field, numbers as ``str()`` (shortest round-trip form). ``excel_safe=True`` is for people who double-click
the CSV into Excel: a string starting with ``=``, ``+``, ``-`` or ``@`` gets a leading apostrophe, and the file starts
with a UTF-8 BOM, without which Excel decodes the file in the local code page and mangles non-ASCII names.

``write_csv(index=True)`` keeps where each record starts beside the CSV (``.<name>.index``): the next incremental
run copies the runs of records it reuses as ranges of bytes (``CsvSpan``) instead of finding them line by line.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, islice
from pathlib import Path
from typing import Any

from exports.atomic import FileInfo, atomic_path, check_widths

# OWASP's list of characters that start a formula in a spreadsheet (tab and carriage return too).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_CSV_CHUNK_ROWS = 2000
_UTF8_BOM = b"\xef\xbb\xbf"


class _ListSink:
    """A file for ``csv.writer`` that collects each record in a list: cheaper than writing to a ``StringIO``."""

    __slots__ = ("write",)

    def __init__(self, parts: list[str]) -> None:
        self.write = parts.append


def _excel_safe(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        "'" + value if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) else value for value in row
    )


def csv_records(path: Path) -> Iterator[bytes]:
    """The raw records of a CSV, header first, without its BOM: lines joined while a quoted cell spans them (each
    record with its ``\\r\\n``)."""
    with path.open("rb") as handle:
        pending = b""
        first = True
        for line in handle:
            if first:
                line = line.removeprefix(_UTF8_BOM)
                first = False
            pending = pending + line if pending else line
            # csv quotes a cell holding a line break, and doubles a quote inside one: an odd count means the
            # record goes on.
            if pending.count(b'"') % 2 == 0:
                yield pending
                pending = b""
        if pending:
            yield pending


def csv_records_of(rows: Iterable[Sequence[Any]], *, excel_safe: bool = False) -> list[bytes]:
    """Each row as the record ``write_csv`` writes for it (its bytes, ``\\r\\n`` included), as ``csv_records``
    reads it back."""
    parts: list[str] = []
    writer = csv.writer(_ListSink(parts))
    records = []
    for row in rows:
        writer.writerow(_excel_safe(row) if excel_safe else row)
        records.append("".join(parts).encode("utf-8"))
        parts.clear()
    return records


class CsvIndexed:
    """A CSV whose records' places are known (its index, ``csv_indexed``): records and runs of records read by their
    byte offsets, not found line by line. The file stays open while this (or a ``CsvSpan`` of it) is referenced."""

    def __init__(self, path: Path, offsets: array[int]) -> None:
        self.path = path
        self.offsets = offsets  # where each record starts, then the file's end
        self.rows = len(offsets) - 1
        self._fd: int | None = None
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        self.close()

    def read(self, first: int, stop: int) -> bytes:
        """Records ``first`` to ``stop`` (excluded, numbered from 0 after the header), as they are in the file."""
        if self._fd is None:
            raise CsvIndexError(f"{self.path.name} was closed")
        start, end = self.offsets[first], self.offsets[stop]
        data = os.pread(self._fd, end - start, start)
        # Where the index says a record starts, the previous one ends: a file the index does not describe fails here.
        if len(data) != end - start or (data and not data.endswith(b"\r\n")):
            raise CsvIndexError(f"{self.path.name} is not the file its index describes")
        if start and os.pread(self._fd, 1, start - 1) != b"\n":
            raise CsvIndexError(f"{self.path.name} is not the file its index describes")
        return data

    def span(self, first: int, stop: int) -> CsvSpan:
        if not 0 <= first <= stop <= self.rows:
            raise CsvIndexError(f"{self.path.name} has no records {first} to {stop}")
        return CsvSpan(self, first, stop)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class CsvIndexError(ValueError):
    """A CSV that is not what its index says (changed behind the index's back)."""


class CsvSpan:
    """Records ``first`` to ``stop`` of an indexed CSV, for ``write_csv(raw=True)`` to copy as they are: a run of
    records read and written as one range of bytes."""

    __slots__ = ("first", "source", "stop")

    def __init__(self, source: CsvIndexed, first: int, stop: int) -> None:
        self.source, self.first, self.stop = source, first, stop

    @property
    def rows(self) -> int:
        return self.stop - self.first


# A CSV's index: where each of its records starts (``write_csv(index=True)``), beside it as ``.<name>.index``: a
# header line, a JSON line (the CSV's size and modification time, the rows, the CRC-32 of the offsets) and the
# offsets (8-byte integers, little-endian). It serves only the CSV it was written with: another size or time, or a
# damaged index, and the CSV is read record by record instead.
_INDEX_MAGIC = b"enreach csv index 1\n"


def csv_index_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.index")


def _index_save(path: Path, offsets: array[int]) -> None:
    stat = os.stat(path)
    if sys.byteorder != "little":
        offsets = array("q", offsets)
        offsets.byteswap()
    data = offsets.tobytes()
    meta = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "rows": len(offsets) - 1, "crc": zlib.crc32(data)}
    with atomic_path(csv_index_path(path)) as temp, open(temp, "xb") as out:
        out.write(_INDEX_MAGIC + json.dumps(meta).encode() + b"\n")
        out.write(data)


def csv_indexed(path: Path) -> CsvIndexed | None:
    """The CSV at ``path`` with its index, when the index is there, whole and written for this very file; else
    ``None`` (the CSV is then read record by record)."""
    try:
        stat = os.stat(path)
        with open(csv_index_path(path), "rb") as handle:
            if handle.readline() != _INDEX_MAGIC:
                return None
            meta = json.loads(handle.readline())
            data = handle.read()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or zlib.crc32(data) != meta.get("crc") or len(data) % 8:
        return None
    if (meta.get("size"), meta.get("mtime_ns"), meta.get("rows")) != (
        stat.st_size,
        stat.st_mtime_ns,
        len(data) // 8 - 1,
    ):
        return None
    offsets = array("q")
    offsets.frombytes(data)
    if sys.byteorder != "little":
        offsets.byteswap()
    if not offsets or offsets[-1] != stat.st_size:
        return None
    try:
        return CsvIndexed(path, offsets)
    except OSError:
        return None


def csv_index_remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        csv_index_path(path).unlink()


def write_csv(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any] | bytes | CsvSpan],
    *,
    excel_safe: bool = False,
    raw: bool = False,
    index: bool = False,
) -> FileInfo:
    """Write ``columns`` and ``rows`` as a CSV file at ``path``, atomically, hashing the bytes as they are written.

    ``rows`` may be any iterable (a generator is consumed once). A row of the wrong length raises ``ValueError``
    rather than shifting values into the wrong columns. With ``raw``, an item of ``rows`` may also be a record
    already written (``bytes`` from ``csv_records`` of a CSV written with the same ``excel_safe``), or a run of them
    (``CsvSpan`` of an indexed CSV written alike): copied as it is.

    With ``index``, the CSV's index is written beside it (``csv_indexed`` reads it); else any index there goes.
    """
    target = Path(path)
    width = len(columns)
    digest = hashlib.sha256()
    size = 0
    written = 0
    parts: list[str] = []
    writer = csv.writer(_ListSink(parts))
    offsets = array("q") if index else None
    csv_index_remove(target)
    with atomic_path(target) as temp, open(temp, "xb") as out:

        def flush(data: bytes | None = None) -> None:
            nonlocal size
            if data is None:
                text = "".join(parts)
                data = text.encode("utf-8")
                if offsets is not None:
                    # csv.writer writes each record in one call: a part per record.
                    lengths = map(len, parts) if len(text) == len(data) else (len(part.encode()) for part in parts)
                    offsets.extend(islice(accumulate(lengths, initial=size), 1, None))
                parts.clear()
            digest.update(data)
            out.write(data)
            size += len(data)

        if excel_safe:
            digest.update(_UTF8_BOM)
            out.write(_UTF8_BOM)
            size += len(_UTF8_BOM)
        writer.writerow(columns)
        text = "".join(parts)
        parts.clear()
        flush(text.encode("utf-8"))  # the header
        if offsets is not None:
            offsets.append(size)
        iterator: Iterator[Any] = iter(rows)
        # Chunks keep the encode/hash/write calls few without holding the whole file in memory.
        while chunk := list(islice(iterator, _CSV_CHUNK_ROWS)):
            if raw:
                written += _write_mixed(chunk, writer, parts, width, written + 1, excel_safe, flush, offsets)
                continue
            check_widths(chunk, width, written + 1)
            writer.writerows(map(_excel_safe, chunk) if excel_safe else chunk)
            written += len(chunk)
            flush()
        out.flush()
        os.fsync(out.fileno())
    if offsets is not None:
        _index_save(target, offsets)
    return FileInfo(path=target, size=size, sha256=digest.hexdigest(), rows=written)


def _write_mixed(
    chunk: list[Any],
    writer: Any,
    parts: list[str],
    width: int,
    first: int,
    excel_safe: bool,
    flush: Any,
    offsets: array[int] | None,
) -> int:
    """Write rows formatted by ``writer`` (through ``parts``), records copied as they are and runs of records copied
    as ranges of bytes, in order, through ``flush``: the copied records are neither decoded nor encoded again.
    Returns how many records were written."""
    pieces: list[bytes] = []
    writerow = writer.writerow
    number = first

    def pending() -> None:
        if parts:
            text = "".join(parts)
            data = text.encode("utf-8")
            if offsets is not None:
                lengths = map(len, parts) if len(text) == len(data) else (len(part.encode()) for part in parts)
                base = offsets[-1]
                offsets.extend(islice(accumulate(lengths, initial=base), 1, None))
            pieces.append(data)
            parts.clear()

    def out() -> None:
        pending()
        if pieces:
            flush(b"".join(pieces))
            pieces.clear()

    for item in chunk:
        if isinstance(item, bytes):
            pending()
            pieces.append(item)
            if offsets is not None:
                offsets.append(offsets[-1] + len(item))
            number += 1
        elif isinstance(item, CsvSpan):
            out()
            source = item.source
            for start in range(item.first, item.stop, _SPAN_RECORDS):
                stop = min(item.stop, start + _SPAN_RECORDS)
                flush(source.read(start, stop))
            if offsets is not None:
                import numpy as np  # the run's offsets shifted at once, not one by one

                shift = offsets[-1] - source.offsets[item.first]
                moved = np.frombuffer(source.offsets, np.int64)[item.first + 1 : item.stop + 1] + shift
                offsets.frombytes(moved.tobytes())
            number += item.rows
        else:
            check_widths([item], width, number)
            writerow(_excel_safe(item) if excel_safe else item)
            number += 1
    out()
    return number - first


# A run of copied records is read this many at a time (about 1 MB of the CMDB's records).
_SPAN_RECORDS = 2000
