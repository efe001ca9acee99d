"""Two real queue clusters (``manage.py qcluster``, the django-q2 database broker on the test database) deliver
each notification exactly once, even with every task queued twice."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django_q.conf import Conf

from exports.models import ExportRun
from notifications import services
from notifications.models import Delivery
from notifications.tests.conftest import SECRET

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
RUNS, SUBSCRIPTIONS = 3, 12


def database_url() -> str:
    """The test database, for other processes."""
    db = connection.settings_dict
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}{port}/{db['NAME']}"


def test_two_queue_clusters_deliver_each_notification_once(
    settings, monkeypatch, seeded_roles, make_user, receiver, tmp_path
):
    key = Fernet.generate_key().decode()
    settings.ENREACH_ENCRYPTION_KEY = key
    receiver.delay = 0.05
    admin = make_user("admin", email="admin@example.test")
    channel = services.channel_save(name="hook", kind="webhook", target=receiver.url, secret=SECRET)
    for _ in range(SUBSCRIPTIONS):
        services.subscription_save(by=admin, event="export.failed", channel=channel)

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DJANGO_SETTINGS_MODULE="enreach.settings",
        DEBUG="true",
        DATABASE_URL=database_url(),
        ENREACH_ENCRYPTION_KEY=key,
        ENREACH_VAR_DIR=str(tmp_path),
        Q_WORKERS="2",
        NOTIFY_TIMEOUT="5",
        PYTHONUNBUFFERED="1",
    )
    clusters = []
    logs = [tmp_path / "cluster-a.log", tmp_path / "cluster-b.log"]
    try:
        for log in logs:
            clusters.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=ROOT,
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        # Tasks go to the database broker, where the clusters take them (the tests otherwise run tasks inline).
        monkeypatch.setattr(Conf, "SYNC", False)
        runs = [
            ExportRun.objects.create(trigger="api", status="failed", error=f"failure {n}", active=None)
            for n in range(RUNS)
        ]
        for run in runs:
            services.run_finished(run=run)
        ids = list(Delivery.objects.values_list("pk", flat=True))
        assert len(ids) == RUNS * SUBSCRIPTIONS
        services._send_to_queue(ids)  # every task a second time, as a double sweep or a retried step would

        deadline = time.monotonic() + 120
        while Delivery.objects.exclude(status="delivered").exists():
            assert all(c.poll() is None for c in clusters), [log.read_text()[-2000:] for log in logs]
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            time.sleep(0.25)
        time.sleep(1)  # a second sending of anything would arrive by now
    finally:
        for cluster in clusters:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cluster.pid, signal.SIGTERM)
        for cluster in clusters:
            with contextlib.suppress(subprocess.TimeoutExpired):
                cluster.wait(timeout=5)  # qcluster can hang on stop (scripts/run.py says so too)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()

    calls = receiver.received
    assert len(calls) == RUNS * SUBSCRIPTIONS
    assert sorted(call.delivery for call in calls) == sorted(str(pk) for pk in ids)
    assert all(call.signature_ok and call.status == 200 for call in calls)
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
    sent = [log.read_text().count("): delivered") for log in logs]
    assert sum(sent) == RUNS * SUBSCRIPTIONS, sent
    print(f"deliveries sent per cluster: {sent} (each task was queued twice)")
