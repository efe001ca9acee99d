"""`make run`'s launcher: serves the app with a queue cluster, a demo NetBox and a demo chat assistant, exports
through the real django-q2 cluster, answers a question with a real look-up, and leaves no process behind on
Ctrl-C."""

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def export_through_the_api(base: str) -> dict:
    """Sign in as the bootstrap admin, request an export and wait for the cluster to finish it."""
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=10)
    login = session.post(
        f"{base}/accounts/login/",
        data={"username": "admin", "password": "first-Admin-pass-123", "next": "/exports/"},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{base}/accounts/login/"},
        timeout=10,
    )
    assert login.status_code == 200 and "Demo mode" in login.text
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{base}/exports/"}
    response = session.post(f"{base}/api/exports/runs/", json={}, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    deadline = time.monotonic() + 60
    run: dict = {}
    while time.monotonic() < deadline:
        run = session.get(f"{base}/api/exports/runs/{run_id}/", timeout=10).json()
        if run["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    download = session.get(f"{base}/api/exports/latest/netbox_merged_export.csv", timeout=10)
    run["merged_rows"] = len(list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))) if download.ok else 0
    # The demo assistant looks up what a question names, for real, and answers from the look-up.
    chat = session.post(f"{base}/api/chat/sessions/", json={}, headers=headers, timeout=10).json()
    answer = session.post(
        f"{base}/api/chat/sessions/{chat['id']}/messages/",
        json={"content": "Which VMs run in FRA1?"},
        headers=headers,
        timeout=30,
    ).json()
    run["chat_answer"] = answer
    return run


def test_run_serves_the_app_and_stops_everything_on_ctrl_c(tmp_path):
    port = free_port()
    ignored = {
        "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "NETBOX_URL", "NETBOX_TOKEN", "CHAT_API_BASE_URL",
        "CHAT_API_KEY",
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env.update(
        DEBUG="true",
        ENREACH_VAR_DIR=str(tmp_path),
        ENREACH_ADDRESS=f"127.0.0.1:{port}",
        ENREACH_ADMIN_PASSWORD="first-Admin-pass-123",
        ENREACH_STOP_GRACE="3",
    )
    proc = subprocess.Popen(
        [sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        body = b""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=2) as response:
                    body = response.read()
                    break
            except OSError:
                time.sleep(0.5)
        assert b'"status":"ok"' in body
        run = export_through_the_api(f"http://127.0.0.1:{port}")
        assert run["status"] == "succeeded", run.get("error")
        assert (run["devices"], run["vms"], run["merged_rows"]) == (300, 400, 701)
        answer = run["chat_answer"]
        [lookup] = answer["grounding"]["lookups"]
        assert lookup["tool"] == "search_inventory" and lookup["arguments"] == {"site": "FRA1", "type": "vm"}
        assert lookup["total"] > 0 and f"I found **{lookup['total']}**" in answer["content"]
        assert answer["grounding"]["export"]["id"] == run["id"]
        spawned = descendants(proc.pid)
        assert len(spawned) >= 5  # demo NetBox, demo assistant, runserver, qcluster and its workers
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Created admin account 'admin'" in output
    assert "DEMO NetBox" in output and "DEMO assistant" in output
    assert "first-Admin-pass-123" not in output
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in spawned) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in spawned if alive(pid)]
