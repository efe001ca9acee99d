"""``enreach.forked``: a function run in a forked child, its result or exception brought back."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enreach.forked import FORK_AVAILABLE, ChildProcessFailed, Mailbox, forked

pytestmark = pytest.mark.skipif(not FORK_AVAILABLE, reason="needs os.fork")


def test_the_child_sees_the_parents_objects_and_returns_its_result() -> None:
    rows = [(number, f"row {number}") for number in range(10_000)]
    parent = os.getpid()

    with forked(lambda: (os.getpid(), len(rows), rows[-1])) as result:
        child, count, last = result()

    assert child != parent
    assert (count, last) == (10_000, (9_999, "row 9999"))


def test_work_in_the_child_runs_while_the_parent_works() -> None:
    # A hand-shake instead of a stopwatch: the child says it runs, then waits for the parent's answer. Were the
    # child only started by result(), the parent would never hear from it before asking.
    parent_reads_child, child_writes = os.pipe()
    child_reads_parent, parent_writes = os.pipe()

    def child() -> bytes:
        os.write(child_writes, b"running")
        ready, _, _ = select.select([child_reads_parent], [], [], 10)
        return os.read(child_reads_parent, 100) if ready else b"no answer"

    try:
        with forked(child) as result:
            ready, _, _ = select.select([parent_reads_child], [], [], 10)
            assert ready, "the child did not run while the parent worked"
            assert os.read(parent_reads_child, 100) == b"running"
            os.write(parent_writes, b"carry on")
            assert result() == b"carry on"
    finally:
        for fd in (parent_reads_child, child_writes, child_reads_parent, parent_writes):
            os.close(fd)


def test_the_childs_exception_is_raised_in_the_parent_with_its_type() -> None:
    def fail() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/runs/000001/Systems CMDB.xlsx")

    with forked(fail) as result, pytest.raises(OSError) as caught:
        result()
    assert caught.value.errno == errno.ENOSPC
    assert "No space left on device" in str(caught.value)


class TwoArguments(Exception):
    def __init__(self, first: str, second: str) -> None:  # pickles, but cannot be unpickled
        super().__init__(f"{first}/{second}")


def test_an_exception_that_cannot_be_read_back_is_a_clear_error() -> None:
    def fail() -> None:
        raise TwoArguments("a", "b")

    with forked(fail) as result, pytest.raises(ChildProcessFailed, match="could not be read back"):
        result()


def test_an_exception_that_cannot_be_pickled_is_reported_by_name() -> None:
    class Local(Exception):  # a local class cannot be pickled at all
        pass

    def fail() -> None:
        raise Local("details")

    with forked(fail) as result, pytest.raises(ChildProcessFailed, match=r"failed: Local: details"):
        result()


def test_a_child_that_dies_is_a_clear_error() -> None:
    with forked(lambda: os._exit(3)) as result, pytest.raises(ChildProcessFailed, match="exit code 3"):
        result()


def test_leaving_the_block_early_kills_the_child(tmp_path: Path) -> None:
    marker = tmp_path / "pid"

    def linger() -> None:
        marker.write_text(str(os.getpid()))
        time.sleep(60)

    with pytest.raises(RuntimeError, match="the parent's own work failed"), forked(linger):
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("the parent's own work failed")

    child = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # killed and reaped: no such process any more


def test_disabled_runs_the_function_in_the_caller() -> None:
    with forked(os.getpid, enabled=False) as result:
        assert result() == os.getpid()


def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    """A kill -9 of the exporting process must not leave its writer child writing into the run folder."""
    import signal
    import subprocess
    import sys

    child_pid_file = tmp_path / "child.pid"
    script = (
        "import os, time\n"
        "from enreach.forked import forked\n"
        "def work():\n"
        f"    open({str(child_pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "with forked(work) as result:\n"
        "    result()\n"
    )
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=root)
    try:
        deadline = time.monotonic() + 30
        while not child_pid_file.exists() or not child_pid_file.read_text():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        child = int(child_pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    deadline = time.monotonic() + 30
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- Mailbox: one message from the parent to a child forked before it was sent --------------------------------------


def test_the_child_receives_what_the_parent_sends_after_the_fork() -> None:
    with Mailbox() as mailbox, forked(lambda: (os.getpid(), mailbox.receive())) as result:
        mailbox.send({"rules": 13, "error": ""})
        child, message = result()
    assert child != os.getpid()
    assert message == {"rules": 13, "error": ""}


def test_a_child_that_asks_early_waits_for_the_message() -> None:
    # The child says it is about to receive, the parent sends only then: the child blocked in receive(), not failed.
    asking, child_asks = os.pipe()

    def child() -> object:
        os.write(child_asks, b"asking")
        return mailbox.receive()

    with Mailbox() as mailbox, forked(child) as result:
        ready, _, _ = select.select([asking], [], [], 10)
        assert ready, "the child never got to receive()"
        time.sleep(0.05)  # let it block in the read
        mailbox.send("late")
        assert result() == "late"
    os.close(asking)
    os.close(child_asks)


def test_a_parent_that_closes_the_mailbox_unsent_makes_the_child_fail_not_hang() -> None:
    mailbox = Mailbox()
    with forked(mailbox.receive) as result:
        mailbox.close()
        with pytest.raises(ChildProcessFailed, match="closed the mailbox without a message"):
            result()


def test_unforked_the_function_receives_the_value_sent_before_it_runs() -> None:
    with Mailbox() as mailbox, forked(mailbox.receive, enabled=False) as result:
        mailbox.send(("summary", 1))
        assert result() == ("summary", 1)
        with pytest.raises(RuntimeError, match="one message"):
            mailbox.send("again")


def test_a_mailbox_closes_its_pipe() -> None:
    def pipes() -> int:  # the pipes this process holds (sockets and files come and go with other work)
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
        return count

    before = pipes()
    for _ in range(20):
        with Mailbox() as mailbox, forked(mailbox.receive) as result:
            mailbox.send(1)
            result()
    assert pipes() == before


_HEAP_SCRIPT = """
import ctypes, sys
from enreach.forked import heap_bounded

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
bounded = heap_bounded() if sys.argv[1] == "bounded" else None
big = bytes(16 << 20)  # mapped on its own (above the default threshold); freeing it raises glibc's threshold
del big
before = libc.mallinfo2().hblkhd
block = bytes(2 << 20)
print(bounded, libc.mallinfo2().hblkhd - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize(("mode", "expected"), [("default", ("None", False)), ("bounded", ("True", True))])
def test_a_bounded_heap_maps_large_blocks_on_their_own(mode: str, expected: tuple[str, bool]) -> None:
    # By default a 2 MiB block, asked after a 16 MiB one was freed, comes from the heap (glibc's threshold followed
    # the freed block up): its pages would stay resident once it is freed. Bounded, it is a mapping of its own.
    done = subprocess.run(
        [sys.executable, "-c", _HEAP_SCRIPT, mode],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    bounded, mapped = done.stdout.split()
    assert (bounded, int(mapped) >= 2 << 20) == expected
