"""Schemathesis over the whole OpenAPI schema against a live server: no 500s, every response as documented.

The API is fuzzed in groups of operations (``GROUPS``, one pytest test each, so pytest-xdist spreads them over its
workers); ``test_the_groups_cover_every_operation_once`` fails when an operation of the schema is in no group or in
two. Each group runs schemathesis's CLI (pinned in requirements-dev.txt) against pytest-django's live server, as an
admin with a personal token of its own (an operation that revokes it, such as a password change, blinds only its own
group), with the rate limits raised for the run. Outbound systems are the loopback test servers (NetBox, the LLM;
Confluence and the backup are not configured, so publishing answers at once) with short timeouts, so no operation can
hang the run.

The budget is per operation, not a time: FUZZ_MAX_EXAMPLES cases per operation in the fuzzing phase (each generation
mode) and as many stateful scenarios, besides the coverage phase's boundary cases, which are as many as the schema
has. No ``--max-time``: schemathesis 4 treats it as a budget to spend, repeating the fuzzing and stateful phases until
it is gone (every run took exactly its 900 s), not as a limit. FUZZ_TIMEOUT (seconds per group) only stops a run that
hangs, and fails the test when it does.

Marked ``fuzz``: it runs once, on SQLite (``make test-postgres`` selects ``-m postgres``, which it is not).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import Client

from accounts.models import User
from accounts.services import user_set_role
from accounts.tokens import api_token_create
from devtools.llm import FakeLlm
from devtools.netbox import FakeNetbox

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12"))
TIMEOUT = int(os.environ.get("FUZZ_TIMEOUT", "1200"))
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
# The admin's id is far from the small ids the fuzzer tries first: resetting the fuzzing admin's own password would
# revoke the token the run uses.
ADMIN_ID = 7_340_033
# The operations of the schema in groups of about twenty, by path; each group is one test (and one schemathesis run).
# Stateful testing chains operations through links, which stay within a resource, so within a group.
GROUPS = {
    "accounts": r"^/api/(admin|auth|profile)/",
    "exports-cmdb": r"^/api/(exports|cmdb|health|integrations)/",
    "notifications": r"^/api/notifications/",
    "chat-suggestions": r"^/api/(chat|suggestions)/",
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _st() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed: `make .venv/.installed` installs requirements-dev.txt")
    return found


def _admin() -> User:
    return user_set_role(user=User.objects.create_user(id=ADMIN_ID, username="fuzzer"), role="admin")


def _operations(admin: User) -> list[str]:
    """Every operation of the schema, as ``METHOD /path``. Generating the schema also warms its per-process cache."""
    client = Client()
    client.force_login(admin)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    return [f"{method.upper()} {path}" for path, item in paths.items() for method in item if method in METHODS]


def _group(operation: str) -> list[str]:
    path = operation.split(" ", 1)[1]
    return [name for name, pattern in GROUPS.items() if re.search(pattern, path)]


def test_the_groups_cover_every_operation_once():
    operations = _operations(_admin())
    assert len(operations) >= 40
    assert {operation: _group(operation) for operation in operations if len(_group(operation)) != 1} == {}
    assert all(any(_group(operation) == [name] for operation in operations) for name in GROUPS)


@pytest.mark.parametrize("group", list(GROUPS))
def test_the_api_matches_its_schema_and_never_answers_500(group, settings, live_server, tmp_path):
    executable = _st()
    admin = _admin()
    _, secret = api_token_create(user=admin, label="schemathesis")
    # Raised for the run: the fuzzer sends thousands of requests, some with bad credentials on purpose.
    settings.TOKEN_FAILURE_LIMIT = settings.LOGIN_FAILURE_LIMIT = settings.LOGIN_ADDRESS_FAILURE_LIMIT = 1_000_000
    settings.DATA_DIR = tmp_path / "data"
    settings.NETBOX_TIMEOUT = settings.CHAT_TIMEOUT = settings.ATLASSIAN_TIMEOUT = 2.0
    settings.NETBOX_RETRIES = settings.CHAT_MAX_RETRIES = settings.ATLASSIAN_RETRIES = 0
    settings.NETBOX_BACKOFF = 0.01
    settings.NOTIFY_TIMEOUT = 2.0  # a channel test to whatever URL the fuzzer made up answers quickly
    # The schema is generated once per process (enreach.views.SchemaView): here, in the live server's process, before
    # schemathesis loads it with its 10 s timeout, which a loaded machine can need for generating it.
    selected = [operation for operation in _operations(admin) if _group(operation) == [group]]
    with FakeNetbox(devices=3, vms=3) as netbox, FakeLlm(api_key="") as llm:
        settings.NETBOX_URL, settings.NETBOX_TOKEN = netbox.url, netbox.token
        settings.CHAT_API_BASE_URL, settings.CHAT_API_KEY = llm.url, ""
        report = tmp_path / "report.json"
        command = [
            executable,
            "run",
            f"{live_server.url}/api/schema/",
            "--url",
            live_server.url,
            "-H",
            f"Authorization: Bearer {secret}",
            "--include-path-regex",
            GROUPS[group],
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            os.environ.get("FUZZ_SEED", "13"),
            "--phases",
            "examples,coverage,fuzzing,stateful",
            # One worker: Python 3.11's ast.parse is not thread-safe, and Hypothesis parses lambdas to describe them.
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-shrink",
            "--suppress-health-check",
            "all",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            "--output-truncate",
            "false",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
        except subprocess.TimeoutExpired as hung:
            pytest.fail(f"schemathesis over {group} ran past FUZZ_TIMEOUT ({TIMEOUT} s): {hung.stdout!r}"[-6000:])
    caches["default"].clear()  # the failures the fuzzer caused are counted in the cache table, which outlives the test
    output = result.stdout + result.stderr
    # Kept for reading after a failure: the whole output and the JSON report (var/ is not committed).
    (Path(settings.VAR_DIR) / f"schemathesis-{group}-output.txt").write_text(output)
    assert report.exists(), output[-6000:]
    (Path(settings.VAR_DIR) / f"schemathesis-{group}-report.json").write_text(report.read_text())
    summary = json.loads(report.read_text())
    operations, cases = summary["operations"], summary["test_cases"]["generated"]
    print(f"\nschemathesis {group}: {operations['tested']} operations, {cases} test cases, exit {result.returncode}")
    assert result.returncode == 0, output[-6000:]
    assert summary["stop_reason"] == "completed", output[-2000:]
    assert operations["selected"] == operations["tested"] == len(selected), output[-2000:]
    assert cases > len(selected), output[-2000:]
