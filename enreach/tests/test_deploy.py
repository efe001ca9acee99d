"""The production deploy of the README, tried for real: PostgreSQL, Redis, gunicorn with 2 workers and 2 qcluster
processes, DEBUG=false, against a (slow) NetBox test server on loopback.

- 10 concurrent export requests give one run;
- a request without an id gets one, in the X-Request-ID header and in the JSON access log; a download's access-log
  line counts its real bytes;
- ``kill -9`` of the cluster executing a run: the run is failed (naming host and pid) within 90 s and its retry
  succeeds, with nobody asking;
- PostgreSQL stopped for 20 s under a loop of requests: no 500, 503s with Retry-After, the outage logged once per
  process, and the export running meanwhile finishes without being abandoned or retried;
- Redis stopped: no 500 on a fixed list of endpoints (token auth, lists, downloads, pages), health names Redis,
  starting an export is a 503 with the reason; everything is back once Redis restarts, nothing else restarted;
- two consecutive ``/metrics`` scrapes (with METRICS_TOKEN) served by different gunicorn workers agree on every
  counter;
- gunicorn started from a copy of the code with nothing but the shipped ``deploy/enreach.env`` as its ``.env`` binds
  where that file says and answers loopback probes of the health check and the metrics (plain HTTP, loopback Host)
  under its production settings;
- every queue worker stopped: health says "degraded" and ``enreach_queue_workers`` 0 within 60 s; Redis then
  restarted without persistence under the queued run: the run is queued again and the next export runs within two
  minutes;
- 100 export starts in a minute by one user: 429s with Retry-After, and no file of a young run is pruned;
- schemathesis (response_schema_conformance, every phase) over the runs endpoints, with the real queue.

Run with ``make test-deploy`` (``make test`` does); it is excluded from the SQLite and PostgreSQL runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from enreach.tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
PASSWORD = "deploy-Admin-pass-4711"
METRICS_TOKEN = "deploy-metrics-token-0123456789"
FIGURES: dict[str, Any] = {}
# 700 objects at 20 ms each: a run spends a few seconds fetching, so it is in flight when its cluster is killed.
NETBOX_OPTIONS = ["--devices", "300", "--vms", "400", "--seconds-per-object", "0.02"]


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, step: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(step)


class Deployment:
    """The processes of one deployment and ways to talk to them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.redis = RedisServer(base / "redis")
        self.database_url = ""
        self.url = ""
        self.token = ""
        self.env: dict[str, str] = {}
        self.queued_run = 0

    # --- starting and stopping ---

    def start(self) -> None:
        self.database_url = subprocess.run(
            [str(ROOT / "scripts" / "pgtest.sh"), "start", str(self.base / "pg")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.redis.start()
        netbox_port = free_port()
        netbox = self._spawn(
            "netbox",
            [PYTHON, "-m", "devtools.netbox", "--port", str(netbox_port), *NETBOX_OPTIONS],
            env=dict(os.environ),
        )
        wait_for(lambda: _listening(netbox_port), timeout=30, what="the NetBox test server")
        from devtools.netbox import DEFAULT_TOKEN

        assert netbox.poll() is None
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")},
            "DJANGO_SETTINGS_MODULE": "enreach.settings",
            "DEBUG": "false",
            "SECRET_KEY": "k" + secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "ENREACH_VAR_DIR": str(self.base / "var"),
            "STATIC_ROOT": str(self.base / "static"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.base / "prometheus"),
            "NETBOX_URL": f"http://127.0.0.1:{netbox_port}",
            "NETBOX_TOKEN": DEFAULT_TOKEN,
            "NETBOX_PAGE_SIZE": "50",
            "NETBOX_BACKOFF": "0.1",
            # Short, so that a killed worker is noticed in seconds; the schedule still sweeps once a minute.
            "EXPORT_HEARTBEAT": "1",
            "EXPORT_STALE_AFTER": "5",
            "METRICS_TOKEN": METRICS_TOKEN,
            # The limits the throttling test meets (other tests start fewer runs); three runs' files kept by count.
            "EXPORT_START_LIMIT_USER": "5/minute",
            "EXPORT_START_LIMIT_GLOBAL": "300/hour",
            "EXPORT_KEEP_RUNS": "3",
            "Q_WORKERS": "1",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        # The README's deploy steps.
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        self.manage("users", "create", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
        self.token = self.manage("users", "token-create", "admin").strip().splitlines()[-1]
        self.start_web()
        for name in ("cluster-a", "cluster-b"):
            self._spawn(name, [PYTHON, "manage.py", "qcluster"])
        wait_for(lambda: self._clusters_up() >= 2, timeout=60, what="two queue clusters")

    def start_web(self) -> None:
        self._spawn("web", [GUNICORN, "-c", "gunicorn.conf.py", "--workers", "2", "--bind", "127.0.0.1:0"])
        errors = self.base / "web.err"
        match = wait_for(
            lambda: re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", errors.read_text()),
            timeout=60,
            what="gunicorn",
        )
        self.url = match.group(1)
        wait_for(lambda: errors.read_text().count("Booting worker") >= 2, timeout=60, what="two gunicorn workers")
        wait_for(lambda: self._get_status("/api/health/") == 200, timeout=60, what="a healthy deployment")

    def stop(self) -> None:
        # As systemd does with KillMode=mixed (deploy/*.service): SIGTERM to the main process, what is left of the
        # group is killed after the grace period.
        stopped_in: dict[str, float | str] = {}
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                continue
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
                stopped_in[name] = round(time.monotonic() - started, 1)
            except subprocess.TimeoutExpired:
                stopped_in[name] = "still running after 30 s"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        FIGURES["seconds to stop after SIGTERM"] = stopped_in
        self.redis.stop()
        if self.database_url:
            subprocess.run([str(ROOT / "scripts" / "pgtest.sh"), "stop", str(self.base / "pg")], check=False)

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or self.env,
            stdout=(self.base / f"{name}.out").open("wb"),
            stderr=(self.base / f"{name}.err").open("wb"),
            start_new_session=True,  # its own process group: killed whole, as systemd or the OOM killer would
        )
        self.processes[name] = proc
        return proc

    def manage(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, input=stdin, capture_output=True, text=True
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout

    def _clusters_up(self, names: tuple[str, ...] = ("cluster-a", "cluster-b")) -> int:
        return sum("running" in (self.base / f"{name}.err").read_text() for name in names)

    def start_clusters(self, *names: str) -> None:
        for name in names:
            self._spawn(name, [PYTHON, "manage.py", "qcluster"])
        wait_for(lambda: self._clusters_up(names) >= len(names), timeout=60, what=f"queue clusters {names}")

    def stop_clusters(self) -> list[str]:
        """SIGTERM every queue cluster still running (systemctl stop) and wait for them; returns their names."""
        stopped = []
        for name, proc in self.processes.items():
            if name.startswith("cluster-") and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                stopped.append(name)
        for name in stopped:
            self.processes[name].wait(timeout=40)
        return stopped

    def postgres(self, command: str) -> None:
        """``halt`` or ``resume`` the deployment's PostgreSQL (scripts/pgtest.sh)."""
        subprocess.run([str(ROOT / "scripts" / "pgtest.sh"), command, str(self.base / "pg")], check=True)

    @property
    def metrics_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {METRICS_TOKEN}"}

    def metric(self, name: str) -> float | None:
        text = requests.get(f"{self.url}/metrics", headers=self.metrics_headers, timeout=30).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        return None

    def access_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.base / "web.out").read_text().splitlines() if line.startswith("{")]

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    # --- talking to it ---

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def _get_status(self, path: str) -> int:
        try:
            return requests.get(self.url + path, timeout=5).status_code
        except requests.RequestException:
            return 0

    def run_row(self, run_id: int) -> dict[str, Any]:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT status, worker, error, attempt FROM exports_exportrun WHERE id = %s", (run_id,)
            ).fetchone()
        assert row is not None
        return dict(zip(("status", "worker", "error", "attempt"), row, strict=True))

    def retry_of(self, run_id: int) -> int | None:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT id FROM exports_exportrun WHERE retry_of_id = %s", (run_id,)).fetchone()
        return row[0] if row else None

    def wait_finished(self, run_id: int, timeout: float = 120) -> dict[str, Any]:
        return wait_for(
            lambda: (row := self.run_row(run_id))["status"] in ("succeeded", "failed") and row,
            timeout=timeout,
            what=f"export run {run_id} to finish",
        )

    def access_pid(self, request_id: str) -> int | None:
        for line in (self.base / "web.out").read_text().splitlines():
            if request_id in line:
                return int(json.loads(line)["pid"])
        return None


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    # Under var/ (ignored by git), and kept until the next run: the processes' logs are there to read.
    base = ROOT / "var" / "deploy-test"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    deployment = Deployment(base)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        print(f"\nDeploy test figures: {json.dumps(FIGURES)}")


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def test_ten_concurrent_requests_give_one_run_done_by_one_cluster(deployment: Deployment) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: deployment.api("post", "/api/exports/runs/", json={}), range(10)))
    codes = sorted(response.status_code for response in responses)
    assert codes == [202] + [409] * 9, codes
    assert len({response.json()["id"] for response in responses}) == 1
    run = deployment.wait_finished(responses[0].json()["id"])
    assert run["status"] == "succeeded", run


def test_a_request_without_an_id_gets_one_in_the_header_and_the_access_log(deployment: Deployment) -> None:
    response = requests.get(f"{deployment.url}/api/health/", timeout=30)
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    line = wait_for(
        lambda: next((row for row in deployment.access_lines() if row["request_id"] == request_id), None),
        timeout=10,
        what="the access-log line",
    )
    assert line["path"] == "/api/health/" and line["status"] == 200
    # A download's line counts the bytes really sent (gunicorn's sendfile() path counted none).
    download = deployment.api("get", "/api/exports/latest/Systems CMDB.xlsx")
    assert download.status_code == 200 and len(download.content) > 1000
    line = wait_for(
        lambda: next(
            (row for row in deployment.access_lines() if row["request_id"] == download.headers["X-Request-ID"]), None
        ),
        timeout=10,
        what="the download's access-log line",
    )
    assert line["bytes"] == len(download.content)
    FIGURES["download bytes in the access log"] = line["bytes"]


def test_a_run_whose_cluster_is_killed_is_failed_and_retried_by_itself(deployment: Deployment) -> None:
    response = deployment.api("post", "/api/exports/runs/", json={"force": True})
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    row = wait_for(
        lambda: (r := deployment.run_row(run_id))["status"] == "running" and r["worker"] and r,
        timeout=60,
        what="the run to start",
        step=0.1,
    )
    host, pid = row["worker"].rsplit(":", 1)
    group = os.getpgid(int(pid))
    victim = next(name for name, proc in deployment.processes.items() if proc.pid == group)
    assert victim.startswith("cluster-")

    os.killpg(group, signal.SIGKILL)
    killed = time.monotonic()

    failed = wait_for(
        lambda: (r := deployment.run_row(run_id))["status"] != "running" and r, timeout=90, what="the run to fail"
    )
    failed_after = time.monotonic() - killed
    assert failed["status"] == "failed" and "Abandoned" in failed["error"]
    assert f"{host}:{pid}" in failed["error"]
    retry_id = wait_for(lambda: deployment.retry_of(run_id), timeout=30, what="the retry")
    retry = deployment.wait_finished(retry_id)
    recovered_after = time.monotonic() - killed
    assert retry["status"] == "succeeded" and retry["attempt"] == 2, retry
    FIGURES["kill -9 -> run failed (s)"] = round(failed_after, 1)
    FIGURES["kill -9 -> retried run succeeded (s)"] = round(recovered_after, 1)
    # What the dead run left on disk is gone; its record and log stay.
    runs_dir = deployment.base / "var" / "data" / "runs"
    assert not (runs_dir / f"{run_id:06d}").exists()
    assert not list(runs_dir.glob("*/.*.tmp"))
    assert "Abandoned" in deployment.api("get", f"/api/exports/runs/{run_id}/").json()["log"]


def _signed_in_session(deployment: Deployment) -> requests.Session:
    session = requests.Session()
    session.get(f"{deployment.url}/accounts/login/", timeout=10)
    response = session.post(
        f"{deployment.url}/accounts/login/",
        data={"username": "admin", "password": PASSWORD, "next": "/exports/"},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{deployment.url}/accounts/login/"},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.status_code
    return session


def _outage_loop(
    deployment: Deployment,
    session: requests.Session,
    run_id: int,
    starter: str,
    stop: threading.Event,
    results: list[dict[str, Any]],
    index: int,
) -> None:
    """One user's requests, over and over: API reads with a token, a start, pages with a session, health, metrics."""
    calls: list[tuple[str, Callable[[], requests.Response]]] = [
        ("/api/exports/runs/", lambda: deployment.api("get", "/api/exports/runs/")),
        (f"/api/exports/runs/{run_id}/", lambda: deployment.api("get", f"/api/exports/runs/{run_id}/")),
        ("/api/exports/latest/…", lambda: deployment.api("get", "/api/exports/latest/netbox_vms_export.csv")),
        ("/api/auth/me", lambda: deployment.api("get", "/api/auth/me")),
        ("POST /api/exports/runs/", lambda: deployment.api("post", "/api/exports/runs/", token=starter, json={})),
        ("/exports/", lambda: session.get(f"{deployment.url}/exports/", timeout=30)),
        ("/", lambda: session.get(f"{deployment.url}/", timeout=30)),
        ("/api/health/", lambda: requests.get(f"{deployment.url}/api/health/", timeout=30)),
        ("/metrics", lambda: requests.get(f"{deployment.url}/metrics", headers=deployment.metrics_headers, timeout=30)),
    ]
    position = index
    while not stop.is_set():
        name, call = calls[position % len(calls)]
        position += 1
        at = time.monotonic()
        try:
            response = call()
            results.append(
                {
                    "at": at,
                    "name": name,
                    "status": response.status_code,
                    "retry_after": response.headers.get("Retry-After"),
                    "type": response.headers.get("Content-Type", ""),
                    "body": response.text[:300] if response.status_code >= 500 else "",
                }
            )
        except requests.RequestException as exc:  # gunicorn itself must stay up: counted as a failure
            results.append({"at": at, "name": name, "status": 0, "retry_after": None, "type": "", "body": str(exc)})
        time.sleep(0.1)


def test_a_postgresql_outage_answers_503_never_500_and_the_running_export_finishes(deployment: Deployment) -> None:
    # Ready before the run starts, so that the outage begins while it fetches: sessions, a run to read, and a user of
    # its own who asks for exports in the loop (the admin's starts are left for the other tests).
    sessions = [_signed_in_session(deployment) for _ in range(4)]
    done = deployment.api("get", "/api/exports/runs/?status=succeeded").json()["results"][0]["id"]
    deployment.manage("users", "create", "looper", "--role", "operator", "--password-stdin", stdin=PASSWORD + "z\n")
    starter = deployment.manage("users", "token-create", "looper").strip().splitlines()[-1]
    response = deployment.api("post", "/api/exports/runs/", json={"force": True})
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    wait_for(lambda: deployment.run_row(run_id)["status"] == "running", timeout=60, what="the run to start", step=0.1)

    results: list[dict[str, Any]] = []
    stop = threading.Event()
    users = [
        threading.Thread(target=_outage_loop, args=(deployment, sessions[i], done, starter, stop, results, i))
        for i in range(4)
    ]
    for user in users:
        user.start()
    try:
        time.sleep(0.5)
        assert deployment.run_row(run_id)["status"] == "running"  # the outage begins in the middle of the run
        halted = time.monotonic()
        deployment.postgres("halt")
        time.sleep(20)
        deployment.postgres("resume")
        resumed = time.monotonic()
        wait_for(
            lambda: any(
                r["at"] > resumed and r["name"] == "/api/exports/runs/" and r["status"] == 200 for r in results
            ),
            timeout=60,
            what="the API to answer again",
        )
        time.sleep(2)
    finally:
        stop.set()
        for user in users:
            user.join(timeout=60)
    during = [r for r in results if r["at"] >= halted]
    recovered = min(r["at"] for r in during if r["at"] > resumed and r["status"] == 200 and r["name"] != "/metrics")
    server_errors = [r for r in during if (r["status"] >= 500 and r["status"] != 503) or r["status"] == 0]
    unavailable = [r for r in during if r["status"] == 503 and r["name"] != "/api/health/"]
    FIGURES["PostgreSQL outage (20 s)"] = {
        "requests": len(during),
        "500s": len([r for r in during if r["status"] == 500]),
        "other failures": len(server_errors),
        "503s": len(unavailable),
        "health 503s": len([r for r in during if r["status"] == 503 and r["name"] == "/api/health/"]),
        "seconds to recover after PostgreSQL is back": round(recovered - resumed, 1),
    }
    assert server_errors == [], server_errors[:5]
    assert len(unavailable) > 20
    assert all(r["retry_after"] == "10" for r in unavailable), [r for r in unavailable if r["retry_after"] != "10"][:3]
    for r in unavailable:  # JSON under /api/, a plain page for the web
        assert r["type"].startswith("application/json" if r["name"].startswith(("/api/", "POST")) else "text/html"), r
    assert {r["name"] for r in unavailable} >= {"/api/exports/runs/", "POST /api/exports/runs/", "/exports/", "/"}

    # The export went on through the outage: finished by itself, not abandoned, its retry unspent.
    finished = deployment.wait_finished(run_id, timeout=180)
    assert finished["status"] == "succeeded" and finished["attempt"] == 1, finished
    assert deployment.retry_of(run_id) is None
    # Logged once per process and outage, not once per request.
    web_lines = (deployment.base / "web.out").read_text() + (deployment.base / "web.err").read_text()
    workers = {line["pid"] for line in deployment.access_lines() if "pid" in line}
    unreachable = web_lines.count("database unreachable")
    FIGURES["PostgreSQL outage (20 s)"]["'database unreachable' lines (web)"] = unreachable
    assert 1 <= unreachable <= len(workers), (unreachable, workers)
    assert "Internal Server Error" not in web_lines and "Service Unavailable" not in web_lines


def test_a_redis_outage_gives_no_500_and_everything_comes_back_by_itself(deployment: Deployment) -> None:
    latest = deployment.api("get", "/api/exports/latest/netbox_devices_export.csv")
    assert latest.status_code == 200
    run_id = deployment.api("get", "/api/exports/runs/?status=succeeded").json()["results"][0]["id"]
    endpoints = [
        "/api/auth/me",
        "/api/profile/",
        "/api/profile/tokens/",
        "/api/exports/runs/",
        f"/api/exports/runs/{run_id}/",
        "/api/exports/latest/netbox_devices_export.csv",
        f"/api/exports/runs/{run_id}/artifacts/Systems CMDB.xlsx",
        "/api/suggestions/",
        "/api/chat/sessions/",
        "/api/integrations/netbox/status/",
        "/api/schema/",
    ]
    pages = ["/", "/exports/", "/suggestions/", "/accounts/profile/", "/admin/", "/admin/exports/exportrun/"]

    deployment.redis.stop()
    statuses: list[tuple[str, int]] = []
    try:
        for _ in range(3):  # both gunicorn workers, more than once
            for path in endpoints:
                response = deployment.api("get", path)
                statuses.append((path, response.status_code))
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                if path.startswith("/api/exports/latest/"):
                    assert response.content == latest.content
            bad_token = deployment.api("get", "/api/exports/runs/", token="ent_not-a-real-token")
            statuses.append(("bad token", bad_token.status_code))
            assert bad_token.status_code == 401
            session = _signed_in_session(deployment)  # sign-in works: sessions live in the database
            for path in pages:
                response = session.get(deployment.url + path, timeout=30)
                statuses.append((path, response.status_code))
                assert response.status_code == 200, (path, response.status_code)
            health = requests.get(f"{deployment.url}/api/health/", timeout=30)
            assert health.status_code == 503
            body = health.json()
            # The queue's workers report through the broker: it cannot be judged either.
            assert set(body["down"]) == {"cache", "broker", "queue"} and body["checks"]["database"]["status"] == "ok"
            assert body["checks"]["cache"]["backend"] == body["checks"]["broker"]["backend"] == "redis"
            metrics = requests.get(f"{deployment.url}/metrics", headers=deployment.metrics_headers, timeout=30)
            statuses.append(("/metrics", metrics.status_code))
            assert metrics.status_code == 200
            start = deployment.api("post", "/api/exports/runs/", json={})
            assert start.status_code == 503 and start.json()["reason"] == "queue_unavailable", start.text
    finally:
        server_errors = [(path, code) for path, code in statuses if code >= 500]
        FIGURES["500s during the Redis outage"] = len(server_errors)
        FIGURES["requests during the Redis outage"] = len(statuses)
        deployment.redis.start()  # same port, empty; nothing else is restarted
    assert server_errors == []

    wait_for(lambda: deployment._get_status("/api/health/") == 200, timeout=60, what="health after Redis is back")
    response = wait_for(
        lambda: (r := deployment.api("post", "/api/exports/runs/", json={})).status_code == 202 and r,
        timeout=60,
        what="an export to be accepted again",
        step=1,
    )
    assert deployment.wait_finished(response.json()["id"])["status"] == "succeeded"


def _counters(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _scrape(deployment: Deployment) -> tuple[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    request_id = uuid.uuid4().hex
    response = requests.get(
        f"{deployment.url}/metrics", headers={"X-Request-ID": request_id, **deployment.metrics_headers}, timeout=30
    )
    assert response.status_code == 200
    pid = wait_for(lambda: deployment.access_pid(request_id), timeout=10, what="the access-log line")
    return pid, _counters(response.text)


def test_consecutive_scrapes_from_different_workers_agree_on_every_counter(deployment: Deployment) -> None:
    for _ in range(20):
        first_pid, first = _scrape(deployment)
        second_pid, second = _scrape(deployment)
        if first_pid != second_pid:
            break
    else:
        pytest.fail("twenty pairs of scrapes were all served by one worker")
    assert set(first) <= set(second)
    differences = {}
    for key, value in first.items():
        name, labels = key
        change = second[key] - value
        scraped = name.startswith("django_http_") and (
            "view" not in dict(labels) or dict(labels)["view"] in ("metrics", "enreach.views.metrics")
        )
        if scraped:  # the first scrape's own request, counted once it was answered
            allowed = change in (0, 1)
        elif name.startswith("django_db_"):  # the first scrape's own queries (runs and queue figures)
            allowed = 0 <= change <= 50
        else:
            allowed = change == 0
        if not allowed:
            differences[f"{name}{dict(labels)}"] = (value, second[key])
    assert differences == {}
    # Counted by the queue workers, served by a web worker: the processes' counts are summed.
    netbox_requests = sum(v for (name, _), v in second.items() if name == "enreach_netbox_requests_total")
    assert netbox_requests > 0
    FIGURES["consecutive scrapes agree"] = {
        "workers": [first_pid, second_pid],
        "counters compared": len(first),
        "enreach_netbox_requests_total": netbox_requests,
    }


def test_gunicorn_with_only_the_shipped_env_file_binds_where_it_says_and_answers_loopback_probes(
    deployment: Deployment,
) -> None:
    """A copy of the code with deploy/enreach.env, filled in, as its .env; gunicorn started with nothing else."""
    # Outside the checkout (mypy and pytest would meet the copy's modules twice); its logs stay in the base.
    app = Path(tempfile.mkdtemp(prefix="enreach-env-only-"))
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (app / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, app / name)
    port = free_port()
    var = deployment.base / "env-only-var"
    filled = {
        "SECRET_KEY": "k" + secrets.token_urlsafe(64),
        "DATABASE_URL": deployment.database_url,
        "REDIS_URL": deployment.redis.url,
        "ENREACH_VAR_DIR": str(var),
        "ENREACH_DATA_DIR": str(deployment.base / "var" / "data"),
        "STATIC_ROOT": str(deployment.base / "static"),
        "PROMETHEUS_MULTIPROC_DIR": str(var / "prometheus"),
        "METRICS_TOKEN": METRICS_TOKEN,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "NETBOX_URL": deployment.env["NETBOX_URL"],
        "NETBOX_TOKEN": deployment.env["NETBOX_TOKEN"],
    }
    lines = []
    for line in (ROOT / "deploy" / "enreach.env").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={filled[name]}" if not line.startswith("#") and name in filled else line)
    (app / ".env").write_text("\n".join(lines) + "\n")
    errors = deployment.base / "env-only.err"
    started = time.monotonic()
    proc = subprocess.Popen(
        [GUNICORN, "-c", "gunicorn.conf.py"],
        cwd=app,
        env={"PATH": os.environ["PATH"], "HOME": str(deployment.base), "LANG": "C.UTF-8"},
        stdout=(deployment.base / "env-only.out").open("wb"),
        stderr=errors.open("wb"),
        start_new_session=True,
    )
    deployment.processes["env-only-web"] = proc
    try:
        wait_for(lambda: f"Listening at: http://127.0.0.1:{port}" in errors.read_text(), timeout=60, what="gunicorn")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _status(f"{url}/api/health/") == 200, timeout=60, what="a healthy env-only gunicorn")
        FIGURES["gunicorn from .env alone: start to healthy (s)"] = round(time.monotonic() - started, 1)
        assert errors.read_text().count("Booting worker") == 2  # GUNICORN_WORKERS from the file
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):  # a probe on the host itself
            health = requests.get(f"{url}/api/health/", headers={"Host": host}, timeout=30, allow_redirects=False)
            assert health.status_code == 200 and health.json()["status"] == "ok", (host, health.status_code)
            scrape = requests.get(
                f"{url}/metrics",
                headers={"Host": host, **deployment.metrics_headers},
                timeout=30,
                allow_redirects=False,
            )
            assert scrape.status_code == 200 and "enreach_queue_workers" in scrape.text, (host, scrape.status_code)
        assert requests.get(f"{url}/metrics", timeout=30, allow_redirects=False).status_code == 401
        page = requests.get(f"{url}/accounts/login/", timeout=30, allow_redirects=False)
        assert page.status_code == 301 and page.headers["Location"].startswith("https://")  # the rest is HTTPS
        assert list((var / "prometheus").glob("*.db"))  # PROMETHEUS_MULTIPROC_DIR from the file
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        shutil.rmtree(app, ignore_errors=True)


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=5, allow_redirects=False).status_code
    except requests.RequestException:
        return 0


def test_with_every_queue_worker_stopped_health_and_the_metric_say_so_within_60_s(deployment: Deployment) -> None:
    stopped = deployment.stop_clusters()
    assert stopped
    stopped_at = time.monotonic()
    response = deployment.api("post", "/api/exports/runs/", json={})
    assert response.status_code == 202, response.text
    deployment.queued_run = response.json()["id"]

    def said() -> bool:
        health = requests.get(f"{deployment.url}/api/health/", timeout=30)
        queue = health.json()["checks"]["queue"]
        return (
            health.status_code == 200
            and health.json()["status"] == "degraded"
            and queue["workers"] == 0
            and queue["queued_runs"] == 1
            and deployment.metric("enreach_queue_workers") == 0
            and (deployment.metric("enreach_export_queue_age_seconds") or 0) > 0
        )

    wait_for(said, timeout=60, what="health and metrics to say no worker is alive", step=1)
    FIGURES["queue workers stopped -> health and metric say so (s)"] = round(time.monotonic() - stopped_at, 1)


def test_redis_restarted_without_persistence_under_a_queued_run_the_next_export_runs_within_2_minutes(
    deployment: Deployment,
) -> None:
    run_id = deployment.queued_run
    assert deployment.run_row(run_id)["status"] == "queued"
    deployment.redis.stop()
    deployment.redis.start()  # empty: the run's task is gone, the run is still "queued"
    restarted = time.monotonic()
    deployment.start_clusters("cluster-c", "cluster-d")
    answers: list[int] = []

    def accepted() -> requests.Response | None:  # somebody asks for an export every few seconds
        response = deployment.api("post", "/api/exports/runs/", json={})
        answers.append(response.status_code)
        return response if response.status_code == 202 else None

    response = wait_for(accepted, timeout=120, what="a new export to be accepted", step=3)
    accepted_after = time.monotonic() - restarted
    lost = deployment.run_row(run_id)
    assert lost["status"] == "succeeded", lost  # sent again by the sweeper, then run
    assert deployment.wait_finished(response.json()["id"], timeout=120)["status"] == "succeeded"
    ran_after = time.monotonic() - restarted
    FIGURES["Redis restarted under a queued run"] = {
        "new export accepted after (s)": round(accepted_after, 1),
        "next export finished after (s)": round(ran_after, 1),
        "answers meanwhile": answers,
    }
    assert ran_after <= 120
    assert "no longer in the queue's broker" in deployment.api("get", f"/api/exports/runs/{run_id}/").json()["log"]


def test_a_hundred_starts_in_a_minute_by_one_user_meet_429s_and_prune_no_young_file(deployment: Deployment) -> None:
    deployment.manage("users", "create", "eager", "--role", "operator", "--password-stdin", stdin=PASSWORD + "x\n")
    token = deployment.manage("users", "token-create", "eager").strip().splitlines()[-1]
    answers: list[tuple[int, str | None]] = []
    started = time.monotonic()
    for index in range(100):
        response = deployment.api("post", "/api/exports/runs/", token=token, json={})
        answers.append((response.status_code, response.headers.get("Retry-After")))
        time.sleep(max(0.0, started + (index + 1) * 0.3 - time.monotonic()))  # 100 starts in 30 s
    elapsed = time.monotonic() - started
    codes = [code for code, _ in answers]
    counts = {code: codes.count(code) for code in sorted(set(codes))}
    FIGURES["100 starts by one user"] = {"seconds": round(elapsed, 1), "answers": counts}
    assert elapsed <= 60
    assert set(codes) <= {202, 409, 429}, counts
    assert counts.get(429, 0) > 0 and 1 <= counts.get(202, 0) <= 5, counts  # EXPORT_START_LIMIT_USER=5/minute
    assert all(wait and int(wait) > 0 for code, wait in answers if code == 429)
    wait_for(lambda: not deployment.sql("SELECT id FROM exports_exportrun WHERE active"), timeout=120, what="idle")
    # Retention: every successful run is younger than EXPORT_KEEP_HOURS, so none lost its files, although there are
    # more of them than EXPORT_KEEP_RUNS (3).
    files = deployment.sql(
        "SELECT r.id, a.path FROM exports_exportartifact a JOIN exports_exportrun r ON r.id = a.run_id"
        " WHERE r.status = 'succeeded'"
    )
    succeeded = deployment.sql("SELECT id FROM exports_exportrun WHERE status = 'succeeded'")
    assert len(succeeded) > 3 and {run for run, _ in files} == {run for (run,) in succeeded}
    data = deployment.base / "var" / "data"
    assert all((data / path).is_file() for _, path in files)


def test_the_runs_endpoints_answer_as_the_schema_says_with_the_real_queue(deployment: Deployment) -> None:
    """schemathesis: every phase (stateful too), server errors and response schema conformance, on the runs
    endpoints, where runs really wait in the queue (a queued run's empty mode)."""
    executable = shutil.which("st", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is missing: pip install -r requirements-dev.txt"
    deployment.manage("users", "create", "fuzzer", "--role", "member", "--password-stdin", stdin=PASSWORD + "y\n")
    token = deployment.manage("users", "token-create", "fuzzer").strip().splitlines()[-1]
    report = deployment.base / "schemathesis-runs.json"
    command = [
        executable, "run", f"{deployment.url}/api/schema/", "--url", deployment.url,
        "-H", f"Authorization: Bearer {token}",
        "--include-path-regex", "^/api/exports/runs",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", "8", "--max-time", "45", "--seed", "28", "--workers", "1", "--request-timeout", "20",
        "--no-shrink", "--suppress-health-check", "all",
        "--report", "json", "--report-json-path", str(report), "--output-truncate", "false",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=deployment.base)
    output = result.stdout + result.stderr
    (deployment.base / "schemathesis-runs.txt").write_text(output)
    assert result.returncode == 0, output[-6000:]
    queued = deployment.sql(
        "SELECT count(*) FROM exports_exportrun r JOIN accounts_user u ON u.id = r.requested_by_id"
        " WHERE u.username = 'fuzzer'"
    )[0][0]
    FIGURES["schemathesis on the runs endpoints"] = {"exit": result.returncode, "runs it started": queued}
    assert queued >= 1
