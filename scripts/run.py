"""Start Enreach tools locally: migrate, make sure an admin exists, then run the web server and a django-q2
cluster side by side until Ctrl-C. Used by `make run`.

With no NETBOX_URL configured it also starts a demo NetBox (the NetBox-shaped server the tests use, with a few
hundred generated devices and VMs) on a loopback port and points the app at it, so a newcomer sees the whole flow.

Each child runs in its own process group. On Ctrl-C (or SIGTERM) both groups get SIGTERM; a group still alive
after a grace period gets SIGKILL, because qcluster can hang on stop. No process is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
GRACE_SECONDS = float(os.environ.get("ENREACH_STOP_GRACE", "8"))


DEMO_DEVICES, DEMO_VMS = "300", "400"


def configured(name: str) -> str:
    """A setting from the environment or the .env file, as the settings will see it."""
    import environ

    env = environ.Env()
    environ.Env.read_env(ROOT / ".env", overwrite=False)
    return str(env.str(name, default=""))


def configured_netbox_url() -> str:
    """NETBOX_URL from the environment or the .env file, as the settings will see it."""
    return configured("NETBOX_URL")


def start_demo_llm() -> tuple[subprocess.Popen[bytes], str]:
    """Start the demo chat provider (devtools/llm.py --demo: it looks up what a question names) on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [PYTHON, "-m", "devtools.llm", "--port", str(port), "--demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"The demo chat provider did not start: {line.strip() or 'no output'}")
    return proc, f"http://127.0.0.1:{port}/v1"


def start_demo_netbox() -> tuple[subprocess.Popen[bytes], str]:
    """Start the demo NetBox on a free loopback port; returns the process and its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "devtools.netbox",
            "--port",
            str(port),
            "--devices",
            DEMO_DEVICES,
            "--vms",
            DEMO_VMS,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"The demo NetBox did not start: {line.strip() or 'no output'}")
    return proc, f"http://127.0.0.1:{port}"


def mail_note() -> str:
    url = os.environ.get("EMAIL_URL", "")
    if url.startswith("filemail://"):
        return f"written to files in {Path(ROOT, url.removeprefix('filemail://')[1:])}/"
    return "sent through EMAIL_URL"


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
    # The web server and the queue cluster are separate processes: share their metrics (see gunicorn.conf.py).
    metrics_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(ROOT / "var" / "prometheus")))
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # Notifications by e-mail go to files a newcomer can open (one per message) unless EMAIL_URL says otherwise.
    mail_dir = ROOT / "var" / "mail"
    os.environ.setdefault("EMAIL_URL", configured("EMAIL_URL") or f"filemail:///{mail_dir}")
    os.environ.setdefault("ENREACH_BASE_URL", configured("ENREACH_BASE_URL") or f"http://{address}")
    manage("migrate", "--noinput")
    manage("ensure_admin")
    processes: list[subprocess.Popen[bytes]] = []
    demo_note = ""

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicit, because a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not configured_netbox_url():
            from devtools.netbox import DEFAULT_TOKEN

            demo, url = start_demo_netbox()
            processes.append(demo)
            os.environ.update(NETBOX_URL=url, NETBOX_TOKEN=DEFAULT_TOKEN, ENREACH_DEMO_NETBOX="true")
            demo_note = (
                f"NETBOX_URL is not set: exporting from a DEMO NetBox at {url} with {DEMO_DEVICES} devices and "
                f"{DEMO_VMS} VMs.\nSet NETBOX_URL and NETBOX_TOKEN (environment or .env) to use your NetBox.\n"
            )
        if not configured("CHAT_API_BASE_URL") and not configured("CHAT_API_KEY"):
            llm, llm_url = start_demo_llm()
            processes.append(llm)
            os.environ.update(CHAT_API_BASE_URL=llm_url, CHAT_MODEL="demo")
            demo_note += (
                f"No chat provider is set: the chat uses a DEMO assistant at {llm_url} that looks up what a "
                "question names (a site, a device, an address).\nSet CHAT_API_BASE_URL / CHAT_API_KEY to use a "
                "real model.\n"
            )
        processes.append(start("manage.py", "qcluster"))
        processes.append(start("manage.py", "runserver", "--noreload", address))
        print(
            f"\nEnreach tools is running on http://{address}/ (exports: /exports/, admin: /admin/, "
            f"API docs: /api/docs/). Press Ctrl-C to stop.\n{demo_note}"
            f"Notification e-mails: {mail_note()}\n",
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
