"""Run one CPU-bound function in a forked child process while the caller goes on with other work.

Python threads share one interpreter lock, so two CPU-bound jobs in threads take as long as one after the other. A
forked child starts with a copy-on-write view of the parent's memory: the function sees the parent's objects (rows
of a 50,000-object export) without pickling them, and only its result travels back, pickled, through a pipe.

The child dies with its parent: on Linux it asks the kernel (``prctl(PR_SET_PDEATHSIG)``) for SIGKILL when the
parent goes, so a ``kill -9`` of the worker does not leave a child writing into a run folder nobody will use.

The child must not touch what it shares with the parent: database connections, sockets, locks held by other threads.
Functions given here only compute and write files. It leaves with ``os._exit``: no atexit handlers, no buffered
output or connection shutdown run twice.

Where ``os.fork`` does not exist, or on macOS (whose system libraries are not fork-safe), the function simply runs
in the caller when its result is asked for.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

FORK_AVAILABLE = hasattr(os, "fork") and sys.platform != "darwin"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # <malloc.h>


class ChildProcessFailed(RuntimeError):
    """The child died without a result, or its exception could not travel back."""


@contextlib.contextmanager
def forked(function: Callable[[], T], *, enabled: bool = True) -> Iterator[Callable[[], T]]:
    """Start ``function()`` in a forked child; yield a ``result()`` function that waits for it.

    ``result()`` returns what the function returned, or raises the exception it raised (same type and message).
    Leaving the block without asking for the result (the caller's own work failed) kills the child.
    """
    if not (enabled and FORK_AVAILABLE):
        yield function
        return
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        _die_with_parent(parent)
        _child(function, write_fd)
    os.close(write_fd)
    pipe = os.fdopen(read_fd, "rb")
    done = False

    def result() -> T:
        nonlocal done
        with pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        done = True
        if not payload:
            raise ChildProcessFailed(f"ended without a result ({_describe(status)})")
        try:
            ok, value = pickle.loads(payload)  # noqa: S301 (our own child's bytes, through our own pipe)
        except Exception as exc:  # an exception class whose pickle cannot be loaded back
            raise ChildProcessFailed(f"sent a result that could not be read back ({exc})") from None
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    try:
        yield result
    finally:
        if not done:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        pipe.close()


class Mailbox:
    """One message from the parent to a child ``forked`` after the mailbox was made: a pipe opened before the fork.

    The parent ``send``s once, as soon as it has the value; the child ``receive``s when it needs it, waiting if the
    parent is not there yet. The message is pickled through the pipe; keep it small (a pipe buffers 64 KiB, and a
    longer message keeps ``send`` waiting until the child reads). Where the function is not forked, it runs in the
    parent after the ``send`` and ``receive`` gives the value sent. The parent closes the mailbox when done with it
    (a ``with`` block), which a waiting child sees as the end of the message.
    """

    def __init__(self) -> None:
        self._owner = os.getpid()
        self._read_fd, self._write_fd = os.pipe()
        self._sent: list[object] = []

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, value: object) -> None:
        if self._sent:
            raise RuntimeError("a mailbox carries one message")
        self._sent.append(value)
        payload = pickle.dumps(value)
        with os.fdopen(os.dup(self._write_fd), "wb") as pipe:
            pipe.write(len(payload).to_bytes(8, "big") + payload)

    def receive(self) -> object:
        if os.getpid() == self._owner:
            if not self._sent:
                raise RuntimeError("nothing was sent to this mailbox")
            return self._sent[0]
        os.close(self._write_fd)  # this child's copy: the pipe ends when the parent's does
        self._write_fd = -1
        with os.fdopen(self._read_fd, "rb") as pipe:
            self._read_fd = -1
            size = int.from_bytes(pipe.read(8) or b"\0", "big")
            payload = pipe.read(size)
        if not size or len(payload) != size:
            raise ChildProcessFailed("the parent closed the mailbox without a message")
        return pickle.loads(payload)  # noqa: S301 (our own parent's bytes, through our own pipe)

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._write_fd = -1


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``), before forking a child after a
    step that allocated and freed much: the pages the parent keeps resident count once more for each child that
    copies them. Where there is no glibc, nothing happens."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


@functools.cache
def heap_bounded(mmap_threshold: int = 1 << 20, arenas: int = 2) -> bool:
    """Keep this process's C heap close to what it holds (glibc's ``mallopt``), once per process; whether it could.

    For a process that streams much through threads, as an export run does: each response body and page of rows is
    allocated and freed in turn, some in the threads that fetch them. By default glibc serves a block of several MB
    from its heap once one of that size was freed (its mmap threshold follows the largest freed, up to 32 MB), and
    gives each thread an arena of its own (up to eight per core): the freed pages stay resident between runs of
    ``malloc_trim``, in as many places. With the threshold fixed at ``mmap_threshold`` a block that large is a
    mapping of its own, unmapped when freed, and the threads share ``arenas`` arenas. Measured on a full export
    (``bench/export_bench.py --sizes 250000,500000 --full-only``, the same run with and without): the peak
    361 -> 325 MB at 250,000 objects, 419 -> 387 MB at 500,000."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_ARENA_MAX, arenas))
    return False


def _die_with_parent(parent: int) -> None:
    """Ask for SIGKILL when the parent dies; leave now if it already has (it died before we asked)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _child(function: Callable[[], object], write_fd: int) -> None:
    code = 0
    try:
        try:
            payload = pickle.dumps((True, function()))
        except BaseException as exc:  # everything goes back to the parent, which decides
            try:
                payload = pickle.dumps((False, exc))
            except Exception:
                payload = pickle.dumps((False, ChildProcessFailed(f"failed: {type(exc).__name__}: {exc}")))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
