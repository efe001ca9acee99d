"""Every page of the app through axe-core (WCAG 2 A and AA), light and dark, at 1366 and 375 px.

No page may have a critical or serious violation. One browser for the module, one live server; each width is one
test that loads every page once and runs axe in the light theme, then again in the dark one (the user's theme is
"system", so the browser's colour scheme decides, as for most users). The API docs pages are left out: their
markup is the vendor's (Swagger UI, ReDoc). axe-core is the copy bundled by the PyPI package
``axe-playwright-python`` (see ``enreach/tests/axe.py``).

The counts of every run are written to ``var/axe/<width>.json`` (page -> theme -> critical/serious elements).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from accounts.services import user_create
from accounts.tests.test_browser import chromium_launched
from chat.models import ChatSession
from chat.services import chat_message_post, chat_session_create
from devtools.llm import FakeLlm, text, tool_call
from enreach.tests.axe import axe_version, axe_violations, blocking_count, describe
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request
from suggestions.services import suggestion_comment_create, suggestion_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Axe-pages-passphrase-2604"
REPORTS = Path(settings.BASE_DIR) / "var" / "axe"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with chromium_launched() as launched:
        yield launched


@pytest.fixture
def llm(settings) -> Iterator[FakeLlm]:
    with FakeLlm() as server:
        settings.CHAT_API_BASE_URL = server.url
        settings.CHAT_API_KEY = server.api_key
        settings.CHAT_MODEL = "gpt-test"
        settings.CHAT_MAX_RETRIES = 0
        yield server


def build_site(netbox: Any, llm: FakeLlm) -> dict[str, Any]:
    """An admin, two exports with a change between them, a suggestion with a comment and an answered chat."""
    root = user_create(username="root", password=PASSWORD, role="admin")
    first, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    export_run_execute(run=first)
    device = netbox.devices[0]
    netbox.update_device(device["id"], serial="AXE-SERIAL-2", description="changed for the axe test")
    second, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    second = export_run_execute(run=second)
    assert second.status == ExportRun.Status.SUCCEEDED, second.error
    idea = suggestion_create(author=root, title="Show the rack elevation", summary="A picture of each rack.")
    suggestion_comment_create(suggestion=idea, author=root, text="Yes, with the power feeds.")
    session = chat_session_create(owner=root)
    llm.script(
        tool_call("search_inventory", {"site": "FRA1", "type": "vm"}),
        text("There are **several VMs** in FRA1:\n\n| Name | Site |\n|---|---|\n| vm-1 | FRA1 |\n"),
    )
    chat_message_post(session=session, content="Which VMs run in FRA1?")
    return {"root": root, "run": second, "idea": idea, "session": session, "device": device}


def pages(site: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, path) of every page signed in as an admin, the API docs aside."""
    run, idea, session = site["run"], site["idea"], site["session"]
    root = site["root"]
    return [
        ("home", "/"),
        ("exports", "/exports/"),
        ("run", f"/exports/runs/{run.pk}/"),
        ("quality", "/exports/quality/"),
        ("quality-sorted", "/exports/quality/?severity=warning&ordering=-name"),
        ("cmdb", "/cmdb/"),
        ("cmdb-history", f"/cmdb/devices/devices-{site['device']['id']}/"),
        ("cmdb-dialog-row", "/cmdb/?dataset=merged"),
        ("cmdb-dialog-columns", "/cmdb/?dataset=merged"),
        ("cmdb-dialog-filter", "/cmdb/?dataset=merged"),
        ("chat", f"/chat/{session.pk}/"),
        ("profile", "/accounts/profile/"),
        ("suggestions", "/suggestions/"),
        ("suggestion-detail", f"/suggestions/{idea.pk}/"),
        ("suggestion-new", "/suggestions/new/"),
        ("admin", "/admin/"),
        ("admin-users", "/admin/accounts/user/"),
        ("admin-user", f"/admin/accounts/user/{root.pk}/change/"),
        ("admin-runs", "/admin/exports/exportrun/"),
        ("admin-run", f"/admin/exports/exportrun/{run.pk}/change/"),
        ("admin-channels", "/admin/notifications/channel/"),
        ("admin-channel-new", "/admin/notifications/channel/add/"),
        ("admin-deliveries", "/admin/notifications/delivery/"),
        ("not-found", "/no-such-page/"),
    ]


def _ready(page: Any, name: str) -> None:
    """Wait for what a page's script fills in, so axe sees the page a person sees."""
    page.wait_for_load_state("networkidle")
    if name.startswith("cmdb-dialog"):
        page.wait_for_selector("#cmdb-grid tbody tr td")
        opener = {
            "cmdb-dialog-row": "#cmdb-grid tbody td[data-key='status']",
            "cmdb-dialog-columns": "#cmdb-columns-toggle",
            "cmdb-dialog-filter": "#cmdb-grid th[data-key='status'] .cmdb-funnel",
        }
        page.locator(opener[name]).first.click()
        page.wait_for_selector("dialog[open]")
        page.wait_for_load_state("networkidle")
    elif name == "cmdb":
        page.wait_for_selector("#cmdb-grid tbody tr")
    elif name == "chat":
        page.wait_for_selector(".chat-assistant .chat-grounding")


def settle(page: Any) -> None:
    """Wait for running CSS transitions (a theme switch fades the admin's link colours) to end."""
    for _ in range(100):
        if not page.evaluate("document.getAnimations().some(a => a.playState === 'running')"):
            return
        page.wait_for_timeout(50)


def _audit(page: Any, report: dict[str, Any], failures: list[str], name: str, width: int) -> None:
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        settle(page)
        violations = axe_violations(page)
        counts = blocking_count(violations)
        report.setdefault(name, {})[theme] = counts
        if any(counts.values()):
            failures.append(f"{name} at {width}px, {theme}: {counts}\n{describe(violations)}")


@pytest.mark.parametrize("width", [1366, 375])
def test_no_page_has_a_critical_or_serious_axe_violation(chromium, live_server, netbox, llm, width):
    site = build_site(netbox, llm)
    assert ChatSession.objects.count() == 1
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    report: dict[str, Any] = {"axe": axe_version(), "width": width}
    failures: list[str] = []
    try:
        page.goto(f"{live_server.url}/accounts/login/")
        _audit(page, report, failures, "sign-in", width)
        page.emulate_media(color_scheme="light")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        for name, path in pages(site):
            response = page.goto(live_server.url + path)
            # The page itself, not an error page in its place (axe would pass that too).
            assert response is not None and (response.status == 404) == (name == "not-found"), (name, response)
            assert response.status < 400 or name == "not-found", (name, response.status)
            _ready(page, name)
            _audit(page, report, failures, name, width)
    finally:
        context.close()
        REPORTS.mkdir(parents=True, exist_ok=True)
        (REPORTS / f"{width}.json").write_text(json.dumps(report, indent=1))
    assert not failures, "\n".join(failures)
