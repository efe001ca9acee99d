"""Start fast: loading the project (apps, admin, URL configuration) imports no vendor SDK it does not need yet.

Every command, gunicorn worker and queue worker pays for what ``django.setup()`` and the URLconf import; the chat
model's client, Confluence's, SFTP's and pandas are imported on first use instead.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAZY = ("openai", "atlassian", "paramiko", "pandas")

PROBE = f"""
import json, sys
import django
django.setup()
import enreach.urls
print(json.dumps(sorted(name for name in {LAZY!r} if name in sys.modules)))
"""


def test_importing_the_url_configuration_loads_no_lazy_vendor_sdk():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(DJANGO_SETTINGS_MODULE="enreach.settings", DEBUG="true", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
