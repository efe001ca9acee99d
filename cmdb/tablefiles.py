"""A run's CMDB table file: where it lives, how it is built once, and how a process maps it.

Pure: no Django; paths and checksums arrive as arguments. The file (``cmdb_table.arrow``, format in
``cmdb.columnar``) sits beside the run's merged CSV in ``ENREACH_DATA_DIR/runs/<run>/`` and goes when the run's
folder is pruned; it is not one of the run's artifacts (not downloaded, published or backed up).

It is written when the run finishes (the after-run step ``cmdb_table``), or on first use for a run that finished
before there was such a step (or whose file is missing or of an older format): whoever needs it takes an exclusive
``flock`` on ``.cmdb_table.lock`` in the run's folder, looks again, and only then builds, into a hidden temp file
moved over the target with ``os.replace``. So two processes asking at once build it once, and a reader sees a whole
file or none. A file made from another CSV (its recorded SHA-256 differs) or by another format version is rebuilt.

After a run, the build is handed the newest other run's file (``cmdb.services``): each column takes the query data
of the distinct values that file holds and computes only the new ones' (``cmdb.columnar.csv_write``), the same bytes
as a build from scratch in about two thirds of its time (the CSV's parse and the encoding of every cell remain). When
that file is the table of the run whose records an incremental run copied, the merged CSV's row map
(``exports.rowmap``) says which rows are those copies: the build takes their codes from the previous file by their
place and parses only the records made now (``cmdb.columnar.csv_write_mapped``), the same bytes again in about half
the time and memory of ``csv_write``'s (``bench/cmdb_incremental_bench.py``); a map that is missing or does not add
up leaves the build to ``csv_write``.

The build runs in a forked child (``enreach.forked``): the CSV, pyarrow's kernels and their memory (one column's
encoding at a time, ``csv_write``, each large array handed back to the system as soon as it is freed,
``allocate_returnably``: about 145 MB private at 500,000 rows) stay in the child, and the web or queue worker that
asked keeps only the mapping. A caller may wait a bounded time (``wait``): past it ``TableBuilding`` is raised while
the build goes on in a thread of the process, so a web request answers "being prepared" instead of running into the
server's timeout. When the folder cannot be written, the table is built in this process's memory instead (and a
warning logged).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import importlib.abc
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from cmdb.columnar import TableFileError, csv_read, csv_write, csv_write_mapped, table_buffer, table_read
from cmdb.table import CmdbTable
from enreach.forked import FORK_AVAILABLE, forked

TABLE_FILE = "cmdb_table.arrow"
LOCK_FILE = ".cmdb_table.lock"
# Not ``.*.tmp``: the run sweeper deletes those in finished runs' folders, and a lazy build happens in one.
PARTIAL_SUFFIX = ".part"
FILE_MODE = 0o640

logger = logging.getLogger(__name__)

_builds: dict[Path, Future[bool]] = {}
_builds_lock = threading.Lock()


class TableBuilding(Exception):
    """The table file is being built and the caller would not wait longer; try again shortly."""


def table_path(csv_path: Path) -> Path:
    """Where the table file of a run's merged CSV lives: beside it."""
    return csv_path.parent / TABLE_FILE


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _is_current(path: Path, sha256: str) -> bool:
    try:
        table_read(path, expect_sha256=sha256)
    except TableFileError:
        return False
    return True


def _reusable(csv_path: Path, sha256: str) -> Path | None:
    """Another run's table file made from this very CSV (an unchanged run links the previous run's files)."""
    try:
        inode = csv_path.stat().st_ino
    except OSError:
        return None
    for sibling in csv_path.parent.parent.glob(f"*/{csv_path.name}"):
        candidate = sibling.parent / TABLE_FILE
        if sibling.parent == csv_path.parent or not candidate.is_file():
            continue
        with contextlib.suppress(OSError):
            if sibling.stat().st_ino == inode and _is_current(candidate, sha256):
                return candidate
    return None


def table_build(
    csv_path: Path, sha256: str, column_set: dict[str, Any] | None = None, previous: Path | None = None
) -> bool:
    """Write the table file of a merged CSV unless a current one is there; ``True`` when this call wrote it.

    Under the folder's lock; a file another run made from the same CSV is linked rather than built again.
    ``previous``: another run's table file (the previous run's), whose columns' query data the build takes for the
    values they still hold (``csv_write``): the same bytes as a build from scratch.
    """
    target = table_path(csv_path)
    folder = target.parent
    with _locked(folder):
        if _is_current(target, sha256):
            return False
        for stale in folder.glob(f".{TABLE_FILE}.*{PARTIAL_SUFFIX}"):  # left by a builder that died
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        temp = folder / f".{TABLE_FILE}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        try:
            reuse = _reusable(csv_path, sha256)
            if reuse is not None:
                os.link(reuse, temp)
            else:
                started = time.perf_counter()
                options: dict[str, Any] = {"source_sha256": sha256, "column_set": column_set, "previous": previous}
                reused = csv_write_mapped(csv_path, temp, **options)
                how = "its copied rows taken from"
                if reused is None:
                    reused = csv_write(csv_path, temp, **options)
                    how = "every row parsed, values' query data from"
                if previous is not None:
                    logger.info(
                        "CMDB table of %s: %d columns built, %s %s, in %.1f s",
                        folder.name,
                        len(reused),
                        how,
                        previous,
                        time.perf_counter() - started,
                    )
                with open(temp, "rb") as handle:
                    os.fsync(handle.fileno())
                os.chmod(temp, FILE_MODE)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
    return True


class _PandasRefused(importlib.abc.MetaPathFinder):
    """Refuses to import pandas. pyarrow's conversions (``pa.array``, ``Array.to_numpy``, a compute function given
    a numpy array) first ask whether pandas is there, importing it: 60-80 MB of the build child's own memory (the
    run's process no longer imports pandas, so the child cannot share its pages), for nothing the build uses.
    pyarrow takes the refusal as "no pandas" and goes on."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (not in the CMDB table's build)", name=name)


# glibc's mallopt parameters (<malloc.h>), and what the build child sets them to: each allocation from 256 KiB up gets
# pages of its own, handed back when it is freed; the heap's free top is trimmed from 1 MiB.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
CHILD_MMAP_THRESHOLD, CHILD_TRIM_THRESHOLD = 256 << 10, 1 << 20


def allocate_returnably() -> bool:
    """Make this process hand back the memory of each large array as soon as it is freed; whether it could.

    A column's encoding makes and drops a dozen arrays of a few MB each (at 500,000 rows). pyarrow's own allocator
    (mimalloc) keeps what they freed until ``release_unused()``, and glibc's, which numpy uses, serves them from its
    heap once one of their size was freed (its mmap threshold grows with what it saw), so the freed pages stay
    resident until the next ``malloc_trim``: the child held each column's temporaries all at once (185-220 MB
    private at 500,000 rows; 146-152 MB with this, ``bench/cmdb_incremental_bench.py``). With pyarrow on the
    system allocator and glibc's mmap threshold fixed at 256 KiB, each large array is a mapping of its own, unmapped
    when freed: the peak is what one step holds. For the build child only, which ends with the build. The cost is
    CPU: a page fault per page of each large array, instead of pages reused: at 500,000 rows from the previous table
    2.8 -> 3.4-4.2 CPU seconds, at 250,000 1.35 -> 1.7 (``bench/cmdb_incremental_bench.py``, main and this in turn);
    a threshold of 1 or 4 MiB, or mimalloc kept for pyarrow, saved neither the memory nor much of the time."""
    import pyarrow as pa

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not (
            libc.mallopt(M_MMAP_THRESHOLD, CHILD_MMAP_THRESHOLD)
            and libc.mallopt(M_TRIM_THRESHOLD, CHILD_TRIM_THRESHOLD)
        ):
            return False
    except (OSError, AttributeError):  # not glibc
        return False
    pa.set_memory_pool(pa.system_memory_pool())
    return True


def table_build_child(
    csv_path: Path, sha256: str, column_set: dict[str, Any] | None = None, previous: Path | None = None
) -> bool:
    """``table_build`` in a forked child, which ends with it: pandas stays out unless the parent had it, and large
    arrays are handed back to the system as soon as they are freed (``allocate_returnably``)."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _PandasRefused())
    allocate_returnably()
    return table_build(csv_path, sha256, column_set, previous)


def _build_started(
    csv_path: Path, sha256: str, column_set: dict[str, Any] | None = None, previous: Path | None = None
) -> Future[bool]:
    """This process's build of the file (one at a time per file), started in a thread that waits for the child."""
    target = table_path(csv_path)
    with _builds_lock:
        future = _builds.get(target)
        if future is not None:
            return future
        future = _builds[target] = Future()

    def build() -> None:
        try:
            builder = table_build_child if FORK_AVAILABLE else table_build  # the refusal only where it ends
            with forked(functools.partial(builder, csv_path, sha256, column_set, previous)) as result:
                future.set_result(result())
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            with _builds_lock:
                _builds.pop(target, None)

    threading.Thread(target=build, name=f"cmdb-table-{csv_path.parent.name}", daemon=True).start()
    return future


def table_open(
    csv_path: Path,
    sha256: str,
    *,
    wait: float | None = None,
    column_set: dict[str, Any] | None = None,
    previous: Path | None = None,
) -> tuple[CmdbTable, bool]:
    """The mapped table of a merged CSV, built first when missing or not current; and whether this call built it.
    ``column_set``: the run's (``ExportRun.columns``), which the file keeps. ``previous``: another run's table file
    to build from (``table_build``).

    ``wait``: seconds to wait for a build (``None``: as long as it takes); past them ``TableBuilding``.
    ``FileNotFoundError`` when the CSV is gone (the run was pruned).
    """
    if not csv_path.is_file():
        raise FileNotFoundError(csv_path)
    target = table_path(csv_path)
    with contextlib.suppress(TableFileError):
        return CmdbTable.open(target, expect_sha256=sha256), False
    try:
        built = _build_started(csv_path, sha256, column_set, previous).result(timeout=wait)
    except FutureTimeout:
        raise TableBuilding(f"The CMDB table of {csv_path.parent.name} is being prepared.") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        logger.warning("cannot write the CMDB table file %s (%s): building it in memory", target, exc)
        labels, columns = csv_read(csv_path)
        return CmdbTable.of(table_buffer(labels, columns, column_set)), True
    return CmdbTable.open(target, expect_sha256=sha256), built
