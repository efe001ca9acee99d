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
