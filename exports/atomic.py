"""Atomic export files: a file is written to a hidden temp file in the target's directory
(``.<name>.<random>.tmp``) and moved over the target with ``os.replace`` only once it is complete and flushed to disk,
so readers see the previous file or the new one, never half of one; on any exception the temp file is removed and the
target is untouched. Also what every written file reports (``FileInfo``) and the row-width check shared by the CSV and
workbook writers. No Django; settings arrive as arguments.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Export files are readable by the service's group (a backup or web server user), never by everyone.
FILE_MODE = 0o640
HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A written file: where, how big, its SHA-256 (hex) and the number of data rows (header excluded)."""

    path: Path
    size: int
    sha256: str
    rows: int


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; move it over ``path`` on success, delete it on any failure."""
    temp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        yield temp
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_directory(path.parent)


class PendingFile:
    """A file written a piece at a time to a hidden temp file beside ``path`` (``.<name>.tmp``) and moved into place
    by ``commit``, or removed by ``discard``: for a file whose writing spans its owner's work, where
    ``atomic_path``'s block does not fit (the workbook's kept rows, the quality report's kept results)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temp = path.with_name(f".{path.name}.tmp")
        self._out: IO[bytes] | None = open(self.temp, "wb")  # noqa: SIM115  # closed by commit or discard

    def write(self, data: bytes) -> None:
        assert self._out is not None, "written after commit or discard"
        self._out.write(data)

    def commit(self) -> None:
        assert self._out is not None, "committed twice or after discard"
        self._out.close()
        self._out = None
        os.chmod(self.temp, FILE_MODE)
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        with suppress(FileNotFoundError):
            self.temp.unlink()


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk; not every platform can open a directory.
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_width(row: Sequence[Any], width: int, number: int) -> None:
    if len(row) != width:
        raise ValueError(f"Row {number} has {len(row)} values for {width} columns")


def check_widths(rows: Sequence[Sequence[Any]], width: int, first: int = 1) -> None:
    """Raise ``ValueError`` naming the first row (numbered from ``first``) that does not have ``width`` values."""
    if set(map(len, rows)) - {width}:
        for number, row in enumerate(rows, first):
            _check_width(row, width, number)


def hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(handle.fileno())
    return size, digest.hexdigest()
