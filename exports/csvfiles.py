"""Write CMDB rows to CSV, atomically (see ``exports.atomic``).

UTF-8 without a BOM, the csv module's default dialect (RFC 4180: ``\\r\\n`` between records, fields with commas,
quotes or line breaks quoted, line breaks inside a field kept as they are). Values are written exactly: ``""`` is
an empty field, numbers as ``str()`` (shortest round-trip form). ``excel_safe=True`` is for people who double-click
the CSV into Excel: a string starting with ``=``, ``+``, ``-`` or ``@`` gets a leading apostrophe, and the file starts
with a UTF-8 BOM, without which Excel decodes the file in the local code page and mangles non-ASCII names.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
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


def write_csv(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any] | bytes],
    *,
    excel_safe: bool = False,
    raw: bool = False,
) -> FileInfo:
    """Write ``columns`` and ``rows`` as a CSV file at ``path``, atomically, hashing the bytes as they are written.

    ``rows`` may be any iterable (a generator is consumed once). A row of the wrong length raises ``ValueError``
    rather than shifting values into the wrong columns. With ``raw``, an item of ``rows`` may also be a record
    already written (``bytes`` from ``csv_records`` of a CSV written with the same ``excel_safe``): copied as it is.
    """
    target = Path(path)
    width = len(columns)
    digest = hashlib.sha256()
    size = 0
    written = 0
    parts: list[str] = []
    writer = csv.writer(_ListSink(parts))
    with atomic_path(target) as temp, open(temp, "xb") as out:

        def flush(data: bytes | None = None) -> None:
            nonlocal size
            if data is None:
                data = "".join(parts).encode("utf-8")
                parts.clear()
            digest.update(data)
            out.write(data)
            size += len(data)

        if excel_safe:
            digest.update(_UTF8_BOM)
            out.write(_UTF8_BOM)
            size += len(_UTF8_BOM)
        writer.writerow(columns)
        iterator = iter(rows)
        # Chunks keep the encode/hash/write calls few without holding the whole file in memory.
        while chunk := list(islice(iterator, _CSV_CHUNK_ROWS)):
            if raw:
                flush()  # the header
                data = _write_mixed(chunk, writer, parts, width, written + 1, excel_safe)
                written += len(chunk)
                flush(data)
                continue
            check_widths(chunk, width, written + 1)
            writer.writerows(map(_excel_safe, chunk) if excel_safe else chunk)
            written += len(chunk)
            flush()
        flush()
        out.flush()
        os.fsync(out.fileno())
    return FileInfo(path=target, size=size, sha256=digest.hexdigest(), rows=written)


def _write_mixed(chunk: list[Any], writer: Any, parts: list[str], width: int, first: int, excel_safe: bool) -> bytes:
    """The bytes of rows formatted by ``writer`` (through ``parts``) and of records copied as they are, in order: the
    copied records are neither decoded nor encoded again."""
    pieces: list[bytes] = []
    writerow = writer.writerow
    for number, item in enumerate(chunk, first):
        if isinstance(item, bytes):
            if parts:
                pieces.append("".join(parts).encode("utf-8"))
                parts.clear()
            pieces.append(item)
        else:
            check_widths([item], width, number)
            writerow(_excel_safe(item) if excel_safe else item)
    if parts:
        pieces.append("".join(parts).encode("utf-8"))
        parts.clear()
    return b"".join(pieces)
