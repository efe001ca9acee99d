"""A database outage is a 503 with Retry-After (JSON under /api/, a plain page elsewhere), never a 500, and is logged
once per episode. Against a real unreachable PostgreSQL address (nothing listens on the port) in a production-mode
process, and a real PostgreSQL restart in the deploy test (enreach/tests/test_deploy.py)."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import IntegrityError, InterfaceError, OperationalError
from django.test import RequestFactory

from enreach.api import handler500
from enreach.outage import database_retry, database_unreachable, episode
from enreach.tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_episode():
    """Each test begins and ends outside an outage episode (the episode is per process)."""
    episode.recovered()
    yield
    episode.recovered()


def _psycopg_error(url: str) -> OperationalError:
    """What Django raises when PostgreSQL refuses the connection: its OperationalError, caused by psycopg's."""
    try:
        psycopg.connect(url, connect_timeout=2)
    except psycopg.OperationalError as exc:
        wrapped = OperationalError(str(exc))
        wrapped.__cause__ = exc
        return wrapped
    raise AssertionError("something listens there")


def test_what_counts_as_an_unreachable_database():
    assert database_unreachable(_psycopg_error(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"))
    assert database_unreachable(InterfaceError("connection already closed"))
    try:
        sqlite3.connect(":memory:").execute("SELECT * FROM missing")
    except sqlite3.OperationalError as exc:
        missing_table = OperationalError(str(exc))
        missing_table.__cause__ = exc
    assert not database_unreachable(missing_table)  # a broken query is a bug: a 500, logged as such
    locked = OperationalError("database is locked")
    locked.__cause__ = sqlite3.OperationalError("database is locked")
    assert database_unreachable(locked)
    assert not database_unreachable(IntegrityError("duplicate key"))
    assert not database_unreachable(ValueError("no"))


def test_handler500_turns_an_escaped_outage_into_a_503():
    request = RequestFactory().get("/api/exports/runs/")
    try:
        raise _psycopg_error(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    except OperationalError:
        response = handler500(request)
    assert response.status_code == 503 and response["Retry-After"] == "10"
    assert json.loads(response.content)["reason"] == "database_unavailable"
    try:
        raise RuntimeError("a plain bug")
    except RuntimeError:
        assert handler500(request).status_code == 500


def test_work_that_must_not_be_lost_waits_for_the_database(caplog):
    error = _psycopg_error(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    attempts = []

    def save() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise error
        return "saved"

    with caplog.at_level("INFO", logger="enreach.outage"):
        assert database_retry(save, wait=30, where="test", pause=0.01) == "saved"
        episode.recovered()  # what the next connection to the database does
    assert len(attempts) == 3
    messages = [record.getMessage() for record in caplog.records if record.name == "enreach.outage"]
    assert len(messages) == 2 and "database unreachable" in messages[0], messages  # one line as it begins...
    assert "reachable again" in messages[1] and "2 failed attempts" in messages[1]  # ...and one as it ends
    with pytest.raises(OperationalError):  # beyond the wait, the error is raised
        database_retry(lambda: (_ for _ in ()).throw(error), wait=0.05, where="test", pause=0.01)


OUTAGE_SCRIPT = """
import django, json, logging; django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
out = []
def record(name, response):
    out.append({"name": name, "status": response.status_code, "retry_after": response.get("Retry-After"),
                "type": response.get("Content-Type", ""), "body": response.content.decode()[:400]})
for _ in range(3):
    record("api token", client.get("/api/exports/runs/", HTTP_AUTHORIZATION="Bearer ent_abcdefghijklmnopqrstuvwx"))
    record("api start", client.post("/api/exports/runs/", {}, content_type="application/json",
                                    HTTP_AUTHORIZATION="Bearer ent_abcdefghijklmnopqrstuvwx"))
    client.cookies["sessionid"] = "a" * 32
    record("page signed in", client.get("/exports/"))
    record("admin signed in", client.get("/admin/"))
    record("health signed in", client.get("/api/health/"))
    client.cookies.pop("sessionid")
    record("api anonymous", client.get("/api/exports/runs/"))
    record("health", client.get("/api/health/"))
    record("metrics", client.get("/metrics"))
print("RESULT " + json.dumps(out))
"""


def test_every_request_during_an_outage_answers_503_with_retry_after_and_logs_it_once(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DJANGO_SETTINGS_MODULE="enreach.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="testserver",
        ENREACH_VAR_DIR=str(tmp_path),
        # A PostgreSQL address nobody listens on: every connection is refused, as while the server is stopped.
        DATABASE_URL=f"postgres://enreach@127.0.0.1:{free_port()}/enreach",
        DATABASE_RETRY_AFTER="7",
        LOG_FORMAT="json",
    )
    result = subprocess.run(
        [sys.executable, "-c", OUTAGE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.split("RESULT ", 1)[1])
    by_name: dict[str, list[dict]] = {}
    for answer in answers:
        by_name.setdefault(answer["name"], []).append(answer)

    assert all(answer["status"] != 500 for answer in answers), answers
    for name in ("api token", "api start"):
        for answer in by_name[name]:
            assert answer["status"] == 503 and answer["retry_after"] == "7", answer
            body = json.loads(answer["body"])
            assert body["reason"] == "database_unavailable" and "try again in 7 seconds" in body["detail"]
    for name in ("page signed in", "admin signed in"):
        for answer in by_name[name]:
            assert answer["status"] == 503 and answer["retry_after"] == "7", answer
            assert answer["type"].startswith("text/html") and "Back in a moment" in answer["body"]
    for name in ("health", "health signed in"):  # the health check reports the database as a component
        for answer in by_name[name]:
            body = json.loads(answer["body"])
            assert answer["status"] == 503 and body["checks"]["database"]["status"] == "down", answer
    assert {answer["status"] for answer in by_name["api anonymous"]} == {401}  # no database needed to say so
    assert {answer["status"] for answer in by_name["metrics"]} == {200}

    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [line for line in lines if "database unreachable" in line["message"]].__len__() == 1, result.stderr
    # Not once per request: no "Service Unavailable" (nor "Internal Server Error") line from django.request.
    assert not [line for line in lines if line["logger"] == "django.request" and line["level"] == "ERROR"]
    assert not [line for line in lines if line["level"] == "WARNING" and "Connection refused" in line["message"]]
