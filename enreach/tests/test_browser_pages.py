"""Every page outside /exports/ in a real browser at 1366 and 375 px: no sideways scroll, no console error.

Debian's Chromium driven by Playwright against a live server (see accounts/tests/test_browser.py for how Chromium
is found or installed). Each page is saved as var/screenshots/<page>-<width>.png. Select with ``-m browser``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from accounts.models import ApiToken
from accounts.services import user_create
from accounts.tests.test_browser import chromium_launched
from accounts.tokens import api_token_create
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request
from integrations.caching import named_cache
from notifications.services import channel_save, channel_test_send, subscription_save
from suggestions.services import suggestion_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Browser-pages-passphrase-31"
WIDTHS = (1366, 375)
# The self-only Content-Security-Policy issue #13 brings, put on this branch's own pages by the browser itself: a
# violation (an inline script or style, a CDN asset) is a console error and fails the page.
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
CSP_PAGES = re.compile(r"^https?://[^/]+(/|/accounts/login/|/accounts/profile/|/api/docs/)(\?.*)?$")
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with chromium_launched() as launched:
        yield launched


class Tab:
    """A page at one width that records console errors and failed requests, and checks the layout."""

    def __init__(self, chromium: Any, base: str, width: int, **context: Any) -> None:
        self.base, self.width = base, width
        self.context = chromium.new_context(viewport={"width": width, "height": 900}, **context)
        self.context.route(CSP_PAGES, self._with_csp)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        # A request the browser abandons because the page navigated on (net::ERR_ABORTED) is no failure of the page.
        self.page.on(
            "requestfailed",
            lambda r: r.failure != "net::ERR_ABORTED" and self.errors.append(f"failed {r.method} {r.url}: {r.failure}"),
        )
        self.page.on(
            "response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status} {r.request.method} {r.url}")
        )

    @staticmethod
    def _with_csp(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})

    def goto(self, path: str) -> Any:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def check(self, name: str, full_page: bool = True) -> None:
        """No horizontal scroll, no console error so far; then a screenshot."""
        scroll, inner = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{self.width}.png"), full_page=full_page)
        wide = self.page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => !e.closest('.table-wrap, .card table, pre'))"
            ".filter(e => e.getBoundingClientRect().right > innerWidth + 1)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + e.getBoundingClientRect().right)"
        )
        assert scroll <= inner, f"{name} at {self.width}px scrolls sideways: {scroll} > {inner}: {wide}"
        assert not self.errors, f"{name} at {self.width}px: {self.errors}"

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        self.goto("/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("main button[type=submit]")
        self.page.wait_for_url(self.base + "/")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(chromium: Any, live_server: Any) -> Iterator[Any]:
    tabs: list[Tab] = []

    def make(width: int, **context: Any) -> Tab:
        tabs.append(Tab(chromium, live_server.url, width, **context))
        return tabs[-1]

    yield make
    for t in tabs:
        t.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_width_without_console_errors(tab, netbox, width):
    root = user_create(username="root", password=PASSWORD, role="admin", email="root@example.test")
    run, _ = export_run_request(trigger="web")
    export_run_execute(run=run)
    api_token_create(user=root, label="laptop")
    subscription_save(
        by=root, event="export.changes", flt={"site": "AMS1", "change": ["changed"], "columns": ["Status", "Tenant"]}
    )
    channel_test_send(channel=channel_save(name="Team mail", kind="email", target="team@example.test"), by=root)
    idea = suggestion_create(author=root, title="Show the rack elevation", summary="A picture of each rack.")
    t = tab(width)

    t.goto("/accounts/login/")
    t.check("sign-in")
    t.sign_in("root")
    page = t.page
    page.wait_for_selector("#netbox-status.ok")
    assert page.locator("#latest-files tbody tr").count() == ExportRun.objects.get().artifacts.count()
    assert page.locator("#netbox-url").inner_text() == netbox.url
    t.check("home")

    # The menu: collapsed behind a "Menu" toggle at phone width, a plain row of links on a desktop.
    profile_link = page.locator("nav a", has_text="Profile")
    if width < 720:
        assert not profile_link.is_visible()
        page.click("#nav-toggle")
        assert profile_link.is_visible()
        t.check("home-menu")
        page.click("#nav-toggle")
    else:
        assert profile_link.is_visible() and not page.locator("#nav-toggle").is_visible()

    for name, path in [
        ("profile", "/accounts/profile/"),
        ("suggestions", "/suggestions/"),
        ("suggestion-new", "/suggestions/new/"),
        ("suggestion-detail", f"/suggestions/{idea.pk}/"),
        ("admin", "/admin/"),
        ("admin-roles", "/admin/accounts/rolegroup/"),
        ("admin-users", "/admin/accounts/user/"),
        ("admin-channels", "/admin/notifications/channel/"),
        ("admin-deliveries", "/admin/notifications/delivery/"),
    ]:
        t.goto(path)
        t.check(name)
    operator = Group.objects.get(name="operator")
    t.goto(f"/admin/accounts/rolegroup/{operator.pk}/change/")
    assert t.page.locator("input[name=capabilities]").count() == 6
    t.check("admin-role")

    t.goto("/api/docs/")
    t.page.wait_for_selector(".opblock-summary-path")
    t.check("api-docs", full_page=False)

    # Sign out: back on the sign-in page, told so.
    t.goto("/")
    if width < 720:
        t.page.click("#nav-toggle")
    t.page.click("button.nav-signout")
    t.page.wait_for_selector("text=You have been signed out.")
    t.check("signed-out")


def test_swagger_try_it_out_calls_auth_me(tab):
    user_create(username="tess", password=PASSWORD, role="viewer")
    t = tab(1366)
    t.sign_in("tess")
    page = t.goto("/api/docs/")
    operation = page.locator(".opblock-get", has=page.locator(".opblock-summary-path[data-path='/api/auth/me/']"))
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    live = operation.locator(".live-responses-table tr.response .response-col_status").first
    live.wait_for()
    assert live.inner_text().strip().startswith("200")
    assert '"username": "tess"' in operation.locator(".live-responses-table .microlight").first.inner_text()
    operation.scroll_into_view_if_needed()
    t.check("api-docs-try-it-out", full_page=False)


def test_time_zone_and_dark_theme_preferences_change_the_page(tab):
    user = user_create(username="pia", password=PASSWORD, role="viewer")
    token, _ = api_token_create(user=user, label="tz")
    ApiToken.objects.filter(pk=token.pk).update(created=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    t = tab(375, color_scheme="light")
    t.sign_in("pia")
    page = t.goto("/accounts/profile/")
    assert page.locator("#tokens tbody tr td").nth(3).inner_text() == "2026-06-01 12:00"
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")

    page.select_option("#id_time_zone", "Asia/Tokyo")
    page.select_option("#id_theme", "dark")
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("text=Profile saved.")
    assert page.locator("#tokens tbody tr td").nth(3).inner_text() == "2026-06-01 21:00"
    assert page.get_attribute("html", "data-theme") == "dark"
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark != light and _luminance(dark) < 0.1 < _luminance(light)
    t.check("profile-dark")

    # "System" follows the browser: dark when the browser prefers dark, light otherwise.
    page.select_option("#id_theme", "system")
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("text=Profile saved.")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == light
    page.emulate_media(color_scheme="dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark
    t.goto("/")
    t.check("home-system-dark")


def test_home_shows_an_unreachable_netbox_in_red(tab, settings):
    user_create(username="una", password=PASSWORD, role="viewer")
    settings.NETBOX_URL, settings.NETBOX_TOKEN = "http://127.0.0.1:9", "token"  # discard port: nothing answers
    settings.NETBOX_RETRIES, settings.NETBOX_TIMEOUT = 0, 2
    named_cache("netbox").invalidate()  # a status cached by an earlier test would hide the outage
    t = tab(375)
    t.sign_in("una")
    alert = t.page.locator("#alert-netbox")
    alert.wait_for(state="visible")
    assert "NetBox is unreachable" in alert.inner_text()
    color = t.page.evaluate("getComputedStyle(document.querySelector('#alert-netbox')).borderLeftColor")
    assert _is_red(color)
    # The status API's 503 is the page's expected signal, not an error of the page.
    t.errors = [e for e in t.errors if "/api/integrations/netbox/status/" not in e and "503" not in e]
    t.check("home-netbox-down")


def _rgb(css: str) -> tuple[int, ...]:
    return tuple(int(float(v)) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])


def _luminance(css: str) -> float:
    r, g, b = _rgb(css)
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def _is_red(css: str) -> bool:
    r, g, b = _rgb(css)
    return r > 150 and g < 100 and b < 100


@pytest.mark.parametrize("width", WIDTHS)
def test_redoc_renders_the_operations_under_its_own_policy_without_remote_requests(tab, width):
    user_create(username="rita", password=PASSWORD, role="viewer")
    t = tab(width)
    t.sign_in("rita")
    requests: list[str] = []
    t.page.on("request", lambda r: requests.append(r.url))
    # /api/redoc/ is not in CSP_PAGES: the browser enforces the policy the app itself sends for this page.
    page = t.goto("/api/redoc/")
    # The operation's section (ReDoc names it by tag and operation id) shows its method and path.
    operation = page.locator("[data-section-id='tag/auth/operation/auth_me_retrieve']")
    operation.wait_for()
    assert "/api/auth/me/" in operation.inner_text()
    assert page.locator("[role=menuitem]").count() > 10
    if width >= 720:  # the search runs in ReDoc's blob: worker; at phone width it sits in the folded menu
        page.fill("[role=search] input", "auth_me_retrieve")
        result = page.locator("[data-role='search:results'] [role=menuitem]", has_text="auth_me_retrieve")
        result.click()
        page.wait_for_url(re.compile(r"#tag/auth/operation/auth_me_retrieve$"))
    page.wait_for_load_state("networkidle")
    remote = [url for url in requests if not url.startswith((t.base, "data:", "blob:"))]
    assert remote == []
    assert page.locator("img[alt='redocly logo']:not([hidden])").count() == 0
    t.check("api-redoc", full_page=False)


def test_deleting_a_comment_asks_for_confirmation(tab):
    from suggestions.models import SuggestionComment
    from suggestions.services import suggestion_comment_create

    author = user_create(username="cora", password=PASSWORD, role="member")
    idea = suggestion_create(author=author, title="Confirm deletions", summary="")
    suggestion_comment_create(suggestion=idea, author=author, text="Keep me unless I say so.")
    t = tab(1366)
    t.sign_in("cora")
    page = t.goto(f"/suggestions/{idea.pk}/")
    asked: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.click("button.danger-link")
    page.wait_for_timeout(300)
    assert asked == ["Delete this comment?"] and SuggestionComment.objects.count() == 1
    page.once("dialog", lambda dialog: answer(dialog, True))
    page.click("button.danger-link")
    page.wait_for_selector("text=No comments yet.")
    assert SuggestionComment.objects.count() == 0
