"""Start fast: loading the project (apps, admin, URL configuration) imports no vendor SDK it does not need yet.

Every command, gunicorn worker and queue worker pays for what ``django.setup()`` and the URLconf import; the chat
model's client, Confluence's, SFTP's, pandas, pyarrow (the CMDB table) and the directory sign-in libraries
(python-ldap, django-auth-ldap, Authlib) are imported on first use instead. A queue worker no longer imports pandas
as it starts: the data-quality report needs it only for dates in forms NetBox does not write (it imports numpy,
which the project's setup has already loaded).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAZY = ("openai", "atlassian", "paramiko", "pandas", "pyarrow", "ldap", "django_auth_ldap", "authlib")

PROBE = f"""
import json, sys
import django
django.setup()
{{code}}
print(json.dumps(sorted(name for name in {LAZY!r} if name in sys.modules)))
"""


def probe(code: str, **env_vars: str) -> list[str]:
    """The lazy SDKs loaded once ``code`` ran after ``django.setup()``, in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EXPORT_"))}
    env.update(DJANGO_SETTINGS_MODULE="enreach.settings", DEBUG="true", PYTHONPATH=str(ROOT), **env_vars)
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_the_url_configuration_loads_no_lazy_vendor_sdk():
    assert probe("import enreach.urls") == []


def test_a_queue_worker_imports_no_pandas_as_it_starts():
    # django-q2 sends post_spawn in each worker process before it takes its first task.
    spawned = "from django_q.signals import post_spawn; post_spawn.send(sender='django_q', proc_name='Process-1')"
    assert probe(spawned) == []
    assert probe(spawned, EXPORT_QUALITY="false") == []
