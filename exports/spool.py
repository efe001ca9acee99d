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
import struct
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

_LENGTH = struct.Struct("<Q")  # each batch's marshalled size, ahead of it
_LIST = struct.Struct("<ci")  # a marshalled list's header: its type code and its length
_LIST_CODE = b"["
SPOOL_INDEX_SUFFIX = ".index"  # beside an indexed spool: each row's id, start and end (int64)


def _read_batch(path: Path, offset: int, size: int) -> list[Any]:
    with open(path, "rb") as source:
        source.seek(offset)
        return marshal.loads(source.read(size))  # type: ignore[no-any-return]  # noqa: S302  # this run's own file


class RowSpool:
    """Batches of rows (tuples of ``str``/``int``/``float``/``None``) appended to a file and read back in order.

    ``add`` appends a batch; ``batches()`` is a fresh iterator over them on every call (the file is flushed first).
    ``reset`` empties it (a listing read again from the start); ``remove`` deletes the file.

    With ``key`` (the position of each row's integer id), the spool is indexed: each row is marshalled on its own,
    without marshal's references (format 2), so that its bytes mean the row wherever they are put, and the index
    beside the spool (``index_path``) holds each row's id and where its bytes start and end. A later run copies runs of
    rows it reuses as ranges of those bytes (``add_encoded``) instead of reading and writing each row. The batches
    read back the same either way: a marshalled list is its header and its items' bytes one after the other.
    """

    def __init__(self, path: Path, key: int | None = None) -> None:
        self.path = path
        self.rows = 0
        self.key = key
        self._out: IO[bytes] | None = None
        self._index: IO[bytes] | None = None
        self._size = 0

    @property
    def index_path(self) -> Path:
        return self.path.with_name(self.path.name + SPOOL_INDEX_SUFFIX)

    def reset(self) -> None:
        self.close()
        self._out = open(self.path, "wb")  # noqa: SIM115  # closed by close(), the spool's lifetime is the run's
        self._size = 0
        with contextlib.suppress(FileNotFoundError):
            self.index_path.unlink()
        if self.key is not None:
            self._index = open(self.index_path, "wb")  # noqa: SIM115  # as the spool's
        self.rows = 0

    def add(self, batch: Sequence[Any]) -> None:
        if not batch:
            return
        if self._out is None:
            self.reset()
        assert self._out is not None
        if self._index is not None:
            self._add_indexed(batch)
            return
        # marshal.load() of a file reads it object by object through Python-level calls (13 times slower than
        # loads() of the bytes, measured): each batch is written as its size and its bytes, read back whole.
        data = marshal.dumps(list(batch) if not isinstance(batch, list) else batch)
        self._write(data)
        self.rows += len(batch)

    def _write(self, *parts: bytes) -> None:
        assert self._out is not None
        size = sum(map(len, parts))
        self._out.write(_LENGTH.pack(size))
        self._out.writelines(parts)
        self._size += _LENGTH.size + size

    def _add_indexed(self, batch: Sequence[Any]) -> None:
        import numpy as np

        assert self.key is not None
        encoded = list(map(marshal.dumps, batch, repeat(2)))
        ids = list(map(itemgetter(self.key), batch))
        try:
            if not all(value.__class__ is int for value in ids):
                raise TypeError
            keys = np.fromiter(ids, np.int64, len(batch))
        except (TypeError, OverflowError):  # not 64-bit integer ids: the spool goes on without its index
            self._index_drop()
            self._write(_LIST.pack(_LIST_CODE, len(batch)), *encoded)
            self.rows += len(batch)
            return
        self.add_encoded(encoded, keys, np.fromiter(map(len, encoded), np.int64, len(batch)))

    def add_encoded(self, parts: Sequence[bytes], keys: Any, lengths: Any) -> None:
        """Append a batch of rows already encoded as this spool encodes them (``key`` given): ``parts`` are their
        bytes one after the other (each part one row or a run of them), ``keys`` and ``lengths`` (numpy arrays) each
        row's id and size in bytes."""
        import numpy as np

        count = len(keys)
        if not count:
            return
        if self._out is None:
            self.reset()
        header = _LIST.pack(_LIST_CODE, count)
        first = self._size + _LENGTH.size + len(header)
        self._write(header, *parts)
        self.rows += count
        if self._index is not None:
            ends = np.cumsum(lengths, dtype=np.int64)
            if int(ends[-1]) + first != self._size:
                raise ValueError("the rows' sizes are not those of their bytes")
            entries = np.empty((count, 3), np.int64)
            entries[:, 0] = keys
            entries[:, 1] = ends - lengths + first
            entries[:, 2] = ends + first
            self._index.write(entries.tobytes())

    def _index_drop(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        with contextlib.suppress(FileNotFoundError):
            self.index_path.unlink()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._index is not None:
            self._index.close()
            self._index = None

    def batches(self) -> Iterator[list[Any]]:
        """The batches in the order they were added (none if nothing was)."""
        for source, size in self._frames():
            yield marshal.loads(source.read(size))  # noqa: S302  # this run's own file

    def batches_later(self) -> Iterator[Callable[[], list[Any]]]:
        """``batches()`` as functions that read their batch when called: a batch no one needs is passed over
        unread (the file is read only for the batches' sizes)."""
        for source, size in self._frames():
            yield functools.partial(_read_batch, self.path, source.tell(), size)

    def _frames(self) -> Iterator[tuple[IO[bytes], int]]:
        """Each batch's size, the file at the batch's first byte: the caller reads the batch or not."""
        if self._out is not None:
            self._out.flush()
        if not self.path.exists():
            return
        with open(self.path, "rb") as source:
            while header := source.read(_LENGTH.size):
                (size,) = _LENGTH.unpack(header)
                start = source.tell()
                yield source, size
                source.seek(start + size)

    def index(self, rows: int) -> Any:
        """The spool's index as a numpy array of ``rows`` rows (each row's id, start and end in the file, in the
        spool's order), or ``None`` when there is none that describes the spool's ``rows`` rows."""
        import numpy as np

        try:
            size = self.path.stat().st_size
            entries = np.fromfile(self.index_path, np.int64)
        except (OSError, ValueError):
            return None
        if len(entries) != 3 * rows:
            return None
        entries = entries.reshape(rows, 3)
        starts, ends = entries[:, 1], entries[:, 2]
        if rows and not ((starts < ends).all() and (starts[1:] >= ends[:-1]).all() and ends[-1] <= size):
            return None
        return entries

    def remove(self) -> None:
        self.close()
        for path in (self.path, self.index_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def spool_row(data: bytes) -> Any:
    """A row of an indexed spool from its bytes (``RowSpool.index`` says where they are)."""
    return marshal.loads(data)  # noqa: S302  # a run's own file
