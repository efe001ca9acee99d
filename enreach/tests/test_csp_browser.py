"""The strict Content-Security-Policy holds in a real browser: the pages and the admin work with no violation.

Debian's Chromium through Playwright (see accounts/tests/test_browser.py). A violation is recorded from the page's
``securitypolicyviolation`` events and Chromium's console.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.services import user_create
from accounts.tests.test_browser import ADMIN_PASSWORD, browser  # noqa: F401 (the fixture)
from suggestions.models import Suggestion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = (e.blockedURI || "inline") + " " + e.sourceFile + ":" + e.lineNumber;
  window.__cspViolations.push(e.violatedDirective + " " + where);
});
"""


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:  # noqa: F811
    user_create(username="root", password=ADMIN_PASSWORD, role="admin")
    browser.clear_cookies()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.console_messages = console
    yield page
    page.close()


def violations(page: Any) -> list[str]:
    found = list(page.evaluate("window.__cspViolations || []"))
    found += [text for text in page.console_messages if "Content Security Policy" in text]
    page.console_messages.clear()
    return found


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    assert violations(page) == []
    page.fill("#id_username", "root")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_pages_and_the_admin_work_under_the_policy(page, live_server, settings):
    base = live_server.url
    sign_in(page, base)
    suggestion = Suggestion.objects.create(title="Faster exports", classification=Suggestion.Classification.MUST)
    user_id = user_create(username="someone", password=ADMIN_PASSWORD, role="viewer").pk
    paths = [
        "/accounts/profile/",
        "/suggestions/",
        f"/suggestions/{suggestion.pk}/",
        "/suggestions/new/",
        "/admin/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{user_id}/change/",
        f"/admin/accounts/user/{user_id}/password/",
        "/admin/accounts/user/add/",
        "/admin/exports/exportrun/",
        "/admin/suggestions/suggestion/",
        f"/admin/suggestions/suggestion/{suggestion.pk}/change/",
    ]
    problems = {}
    for path in paths:
        response = page.goto(base + path)
        assert response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
        if found := violations(page):
            problems[path] = found
    assert problems == {}
    # Screenshots of the pages whose inline style moved to static files (var/ is not committed).
    shots = Path(settings.VAR_DIR) / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for name, path in [
        ("suggestions", "/suggestions/"),
        ("suggestion-detail", f"/suggestions/{suggestion.pk}/"),
        ("admin-exportruns", "/admin/exports/exportrun/"),
        ("admin-suggestions", "/admin/suggestions/suggestion/"),
    ]:
        for width in (1366, 375):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(base + path)
            page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    # The badges get their colours from the stylesheet, not from style attributes.
    page.goto(f"{base}/suggestions/")
    colour = page.eval_on_selector(".letter-badge.badge-must-have", "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(124, 58, 237)"
    # The admin's JavaScript runs: the user list's "select all" checkbox selects the rows.
    page.goto(f"{base}/admin/accounts/user/")
    page.check("#action-toggle")
    assert page.eval_on_selector_all("input.action-select", "boxes => boxes.every(b => b.checked)")


def test_the_api_docs_render_under_the_policy(page, live_server):
    base = live_server.url
    sign_in(page, base)
    response = page.goto(f"{base}/api/docs/")
    html = page.content()
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html  # Swagger UI is served by the app itself
    assert response.status == 200
    page.wait_for_selector(".opblock", timeout=30_000)
    assert violations(page) == []


def test_deleting_a_suggestion_still_asks_first(page, live_server):
    base = live_server.url
    sign_in(page, base)
    suggestion = Suggestion.objects.create(title="Keep me")
    page.goto(f"{base}/suggestions/{suggestion.pk}/")
    questions: list[str] = []

    def dismiss(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.click("form[data-confirm] button[type=submit]")
    page.wait_for_timeout(300)
    assert questions == ["Delete this suggestion with its comments and likes?"]
    assert Suggestion.objects.filter(pk=suggestion.pk).exists()
    assert violations(page) == []
