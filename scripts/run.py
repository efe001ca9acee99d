"""Start Enreach tools locally: migrate, make sure an admin exists, then run the web server and a django-q2
cluster side by side until Ctrl-C. Used by `make run`.

Each child runs in its own process group. On Ctrl-C (or SIGTERM) both groups get SIGTERM; a group still alive
after a grace period gets SIGKILL, because qcluster can hang on stop. No process is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GRACE_SECONDS = float(os.environ.get("ENREACH_STOP_GRACE", "8"))


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PYTHON, *args], cwd=ROOT, start_new_session=True)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in processes:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for proc in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        # The group may hold workers even after its leader exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    address = os.environ.get("ENREACH_ADDRESS", "127.0.0.1:8000")
    manage("migrate", "--noinput")
    manage("createcachetable")
    manage("ensure_admin")
    processes: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicit, because a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        processes.append(start("manage.py", "qcluster"))
        processes.append(start("manage.py", "runserver", "--noreload", address))
        print(
            f"\nEnreach tools is running on http://{address}/ (admin: /admin/, API docs: /api/docs/). "
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while all(proc.poll() is None for proc in processes):
            time.sleep(0.5)
        print("A process exited; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
