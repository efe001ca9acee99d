"""The production deploy of the README, tried for real: PostgreSQL, Redis, gunicorn with 2 workers and 2 qcluster
processes, DEBUG=false, against a (slow) NetBox test server on loopback.

- 10 concurrent export requests give one run;
- ``kill -9`` of the cluster executing a run: the run is failed (naming host and pid) within 90 s and its retry
  succeeds, with nobody asking;
- Redis stopped: no 500 on a fixed list of endpoints (token auth, lists, downloads, pages), health names Redis,
  starting an export is a 503 with the reason; everything is back once Redis restarts, nothing else restarted;
- two consecutive ``/metrics`` scrapes served by different gunicorn workers agree on every counter.

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

    def _clusters_up(self) -> int:
        return sum("running" in (self.base / f"{name}.err").read_text() for name in ("cluster-a", "cluster-b"))

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
            assert set(body["down"]) == {"cache", "broker"} and body["checks"]["database"]["status"] == "ok"
            assert body["checks"]["cache"]["backend"] == body["checks"]["broker"]["backend"] == "redis"
            metrics = requests.get(f"{deployment.url}/metrics", timeout=30)
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
    response = requests.get(f"{deployment.url}/metrics", headers={"X-Request-ID": request_id}, timeout=30)
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
