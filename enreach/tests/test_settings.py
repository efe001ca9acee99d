"""Production mode refuses insecure configuration and passes Django's deploy checks when HTTPS is configured."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k" * 20 + "Zq8#xP2@wL5!vN9$rT3%yU6^iO1&aS4*dF7(gH0)jK"


def manage(tmp_path, *args, **env_vars):
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    env.update(DJANGO_SETTINGS_MODULE="enreach.settings", ENREACH_VAR_DIR=str(tmp_path), **env_vars)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = manage(tmp_path, "check", DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_the_development_key(tmp_path):
    result = manage(tmp_path, "check", DEBUG="false", SECRET_KEY="django-insecure-" + "x" * 60)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_timeout_must_stay_below_retry(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true", Q_TIMEOUT="600", Q_RETRY="600")
    assert result.returncode != 0
    assert "Q_TIMEOUT must be lower than Q_RETRY" in result.stderr


def test_deploy_check_passes_with_https_settings(tmp_path):
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="cmdb.example.com",
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        SESSION_COOKIE_SECURE="true",
        CSRF_COOKIE_SECURE="true",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
