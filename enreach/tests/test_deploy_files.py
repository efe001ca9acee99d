"""The shipped deploy files work as the README says: the environment template passes ``check --deploy`` without a
warning and names every setting the README's deploy names, gunicorn reads the same ``.env`` as Django, loopback
probes of the health check and the metrics are answered under those production settings, and the Prometheus alert
rules are valid and fire when they should (promtool)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "enreach.env"


def template_values() -> dict[str, str]:
    """The template's variables, read by django-environ as the app reads a .env file (quotes, comments)."""
    import environ

    class Reader(environ.Env):
        ENVIRON: dict[str, str] = {}  # type: ignore[assignment]

    Reader.read_env(TEMPLATE, overwrite=True)
    return dict(Reader.ENVIRON)


def production_env(tmp_path: Path) -> dict[str, str]:
    """The shipped template as a service gets it, with the placeholders an operator must fill in filled in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
    env.update(template_values())
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "enreach.settings",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "METRICS_TOKEN": "scrape-token-0123456789",
            # Paths under the test's directory instead of /var/lib/enreach.
            "ENREACH_VAR_DIR": str(tmp_path / "var"),
            "ENREACH_DATA_DIR": str(tmp_path / "var" / "data"),
            "STATIC_ROOT": str(tmp_path / "var" / "static"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "var" / "prometheus"),
        }
    )
    return env


def test_check_deploy_with_the_shipped_environment_prints_no_warning(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
    assert "WARNING" not in output


def test_the_template_holds_every_setting_the_readme_deploy_names():
    readme = (ROOT / "README.md").read_text()
    deploy = readme[readme.index("## Deploy") : readme.index("## Architecture")]
    production = readme[readme.index("Production mode is") : readme.index("## Exports")]
    settings_known = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    named = {name for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", deploy + production) if name in settings_known}
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "GUNICORN_BIND", "METRICS_TOKEN"} <= named
    missing = named - set(template_values())
    assert not missing, f"named in the README's deploy, missing from deploy/enreach.env: {sorted(missing)}"


def test_gunicorn_reads_the_env_file_beside_it(tmp_path):
    """gunicorn.conf.py reads .env as Django does: a service started with nothing else binds where it says."""
    shutil.copy(ROOT / "gunicorn.conf.py", tmp_path / "gunicorn.conf.py")
    (tmp_path / ".env").write_text(
        "GUNICORN_BIND=127.0.0.1:18765\nGUNICORN_WORKERS=3\nPROMETHEUS_MULTIPROC_DIR=/srv/metrics-here\n"
        'GUNICORN_TIMEOUT="45"\n'
    )
    script = (
        "import json, runpy; c = runpy.run_path('gunicorn.conf.py');"
        "import os; print(json.dumps({k: c[k] for k in ('bind', 'workers', 'timeout', 'sendfile')} |"
        " {'multiproc': os.environ['PROMETHEUS_MULTIPROC_DIR']}))"
    )
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "bind": "127.0.0.1:18765",
        "workers": 3,
        "timeout": 45,
        "sendfile": False,
        "multiproc": "/srv/metrics-here",
    }
    # What the environment says wins over the file, as for Django.
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**clean, "GUNICORN_BIND": "127.0.0.1:18766"},
        capture_output=True,
        text=True,
    )
    assert json.loads(result.stdout)["bind"] == "127.0.0.1:18766"


def test_loopback_probes_are_answered_under_the_production_settings(tmp_path):
    """Health and metrics from the host itself (plain HTTP, a loopback Host): answered, not 400 or a redirect."""
    env = production_env(tmp_path)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    script = """
import django, json; django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
out = {}
for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "evil.example"):
    health = client.get("/api/health/", HTTP_HOST=host)
    metrics = client.get("/metrics", HTTP_HOST=host, HTTP_AUTHORIZATION="Bearer scrape-token-0123456789")
    page = client.get("/accounts/login/", HTTP_HOST=host)
    out[host] = [health.status_code, metrics.status_code, page.status_code, page.get("Location", "")]
out["no token"] = client.get("/metrics", HTTP_HOST="127.0.0.1:8000").status_code
out["health body"] = client.get("/api/health/", HTTP_HOST="127.0.0.1:8000").json()["checks"]["database"]["status"]
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        health, metrics, page, location = out[host]
        assert health in (200, 503) and metrics == 200, (host, out[host])  # 503: no Redis here, and it says so
        assert page == 301 and location.startswith("https://"), (host, out[host])  # pages still go to HTTPS
    assert out["evil.example"][:3] == [400, 400, 400]  # other hosts are refused as before
    assert out["no token"] == 401 and out["health body"] == "ok"


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test-deps` installs Debian's prometheus package"
    return found


def test_the_alert_rules_are_valid_and_fire_when_they_should():
    promtool = _promtool()
    check = subprocess.run(
        [promtool, "check", "rules", "prometheus-alerts.yml"], cwd=DEPLOY, capture_output=True, text=True
    )
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "prometheus-alerts.test.yml"], cwd=DEPLOY, capture_output=True, text=True
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


@pytest.mark.parametrize("name", ["EnreachQueueNoWorkers", "EnreachExportQueued", "EnreachExportStale"])
def test_the_issue_alerts_are_unit_tested(name):
    """Each alert the README promises has a promtool test that sees it fire."""
    tests = (DEPLOY / "prometheus-alerts.test.yml").read_text()
    assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tests), name
