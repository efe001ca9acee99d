"""Spools: what a run streams through once and reads again later, kept on disk a batch at a time instead of in memory.

A run's rows pass once, page by page, from NetBox to the devices and VMs CSVs; the merged CSV, the workbook and the
companions read them again afterwards. Each kind's rows are appended to a ``RowSpool`` (hidden in the run's folder) as
they pass, a batch per ``marshal`` record: exactly the Python values the transform made (text, numbers, ``None``),
which the CSVs could not give back (a number and the digit string of a text column read alike), read back at C speed
a batch at a time. A full run's snapshots are encoded as they pass too and wait in a spool until the run saves them
in its transaction (``exports.snapshots.snapshots_save``). No Django.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

_LENGTH = struct.Struct("<Q")  # each batch's marshalled size, ahead of it


def _read_batch(path: Path, offset: int, size: int) -> list[Any]:
    with open(path, "rb") as source:
        source.seek(offset)
        return marshal.loads(source.read(size))  # type: ignore[no-any-return]  # noqa: S302  # this run's own file


class RowSpool:
    """Batches of rows (tuples of ``str``/``int``/``float``/``None``) appended to a file and read back in order.

    ``add`` appends a batch; ``batches()`` is a fresh iterator over them on every call (the file is flushed first).
    ``reset`` empties it (a listing read again from the start); ``remove`` deletes the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._out: IO[bytes] | None = None

    def reset(self) -> None:
        self.close()
        self._out = open(self.path, "wb")  # noqa: SIM115  # closed by close(), the spool's lifetime is the run's
        self.rows = 0

    def add(self, batch: Sequence[Any]) -> None:
        if not batch:
            return
        if self._out is None:
            self.reset()
        assert self._out is not None
        # marshal.load() of a file reads it object by object through Python-level calls (13 times slower than
        # loads() of the bytes, measured): each batch is written as its size and its bytes, read back whole.
        data = marshal.dumps(list(batch) if not isinstance(batch, list) else batch)
        self._out.write(_LENGTH.pack(len(data)))
        self._out.write(data)
        self.rows += len(batch)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def batches(self) -> Iterator[list[Any]]:
        """The batches in the order they were added (none if nothing was)."""
        if self._out is not None:
            self._out.flush()
        if not self.path.exists():
            return
        with open(self.path, "rb") as source:
            while header := source.read(_LENGTH.size):
                (size,) = _LENGTH.unpack(header)
                yield marshal.loads(source.read(size))  # noqa: S302  # this run's own file

    def batches_later(self) -> Iterator[Callable[[], list[Any]]]:
        """``batches()`` as functions that read their batch when called: a batch no one needs is passed over
        unread (the file is read only for the batches' sizes)."""
        if self._out is not None:
            self._out.flush()
        if not self.path.exists():
            return
        with open(self.path, "rb") as source:
            while header := source.read(_LENGTH.size):
                (size,) = _LENGTH.unpack(header)
                yield functools.partial(_read_batch, self.path, source.tell(), size)
                source.seek(size, os.SEEK_CUR)

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
