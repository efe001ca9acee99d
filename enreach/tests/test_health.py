import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_health_is_public_and_reports_each_component():
    response = APIClient().get("/api/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "cache": "ok",
        "broker": "ok",
        "queue": "ok",
    }
    assert body["checks"]["queue"] == {
        "status": "ok",
        "workers": 0,
        "clusters": 0,
        "queued_runs": 0,
        "oldest_queued_seconds": 0.0,
    }


def test_health_reports_a_broken_database_as_503(tmp_path):
    # A real process whose database is a PostgreSQL port nobody listens on.
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/api/health/'); print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enreach.settings",
        "DEBUG": "true",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/nothing",
        "ENREACH_VAR_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 503
    assert outcome["body"]["status"] == "down"
    assert outcome["body"]["checks"]["database"] == {"status": "down", "backend": "postgresql"}
    assert "database" in outcome["body"]["down"]  # the public sees what is down, never the error text
    assert "error" not in json.dumps(outcome["body"])


@pytest.mark.django_db
def test_metrics_are_served(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "django_http_requests" in response.content.decode()


@pytest.mark.django_db
def test_metrics_token_is_enforced(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_migrate_alone_makes_a_healthy_site_with_the_database_cache(tmp_path):
    """`migrate` is the only schema step of a deploy: it creates the database cache's table too."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enreach.settings",
        "DEBUG": "true",
        "ENREACH_VAR_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/api/health/'); print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["body"]["checks"]["cache"] == {"status": "ok", "backend": "database"}
    assert outcome["status"] == 200


def _cluster_reports(workers: int, status: str = "Idle") -> str:
    """Write a cluster's status into the broker as a django-q2 cluster does (twice a second, living 3 s)."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage
    from django_q.status import Stat, Status

    cluster = Status(pid=4242, cluster_id=f"cluster-{workers}-{status}")
    cluster.status = status
    cluster.workers = list(range(1000, 1000 + workers))
    get_broker().set_stat(Stat.get_key(cluster.cluster_id), SignedPackage.dumps(cluster, True), 60)
    return cluster.cluster_id


@pytest.mark.django_db
def test_a_queued_run_with_no_worker_alive_makes_the_health_degraded_but_200():
    from datetime import timedelta

    from django.utils import timezone

    from exports.models import ExportRun

    run = ExportRun.objects.create(trigger="api")
    ExportRun.objects.filter(pk=run.pk).update(created=timezone.now() - timedelta(seconds=95))

    response = APIClient().get("/api/health/")

    assert response.status_code == 200  # the site serves: a load balancer must not take it out
    body = response.json()
    assert body["status"] == "degraded" and body["degraded"] == ["queue"] and body["down"] == []
    queue = body["checks"]["queue"]
    assert queue["status"] == "degraded" and queue["workers"] == 0 and queue["queued_runs"] == 1
    assert 95 <= queue["oldest_queued_seconds"] < 120

    _cluster_reports(workers=2)
    _cluster_reports(workers=3, status="Stopping")  # a cluster on its way out takes no task
    queue = APIClient().get("/api/health/").json()["checks"]["queue"]
    assert queue["status"] == "ok" and queue["workers"] == 2 and queue["clusters"] == 1


@pytest.mark.django_db
def test_the_queue_metrics_say_how_many_workers_and_how_long_a_run_waits(client):
    from datetime import timedelta

    from django.utils import timezone
    from prometheus_client.parser import text_string_to_metric_families

    from exports.models import ExportRun

    def scrape() -> dict[str, float]:
        text = client.get("/metrics").content.decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name in ("enreach_queue_workers", "enreach_export_queue_age_seconds")
        }

    assert scrape() == {"enreach_queue_workers": 0, "enreach_export_queue_age_seconds": 0}
    run = ExportRun.objects.create(trigger="api")
    ExportRun.objects.filter(pk=run.pk).update(created=timezone.now() - timedelta(seconds=400))
    _cluster_reports(workers=4)
    figures = scrape()
    assert figures["enreach_queue_workers"] == 4 and 400 <= figures["enreach_export_queue_age_seconds"] < 430
