"""Single sign-on in a real browser (Debian's Chromium through Playwright): from the "Sign in with …" button, through
the provider's own sign-in page (django-oauth-toolkit on loopback), to the dashboard, and out again through the
provider's logout. Screenshots of the sign-in and error pages at 1366 and 375 px go to ``SIGN_IN_SCREENSHOTS`` (a
folder) when it is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.models import AuditEntry, User
from accounts.services import user_create
from devtools.ldap_server import free_port
from devtools.oidc_provider import OidcProvider, shape

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "provider-browser-passphrase-2"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium through Playwright. Missing, the test fails (make test-deps installs it)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install the Debian package chromium"
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django would then refuse the tests' ORM calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-sso")), executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            yield context
            context.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def provider(live_server: Any) -> Iterator[OidcProvider]:
    with OidcProvider(redirect_uris=[f"{live_server.url}/accounts/oidc/callback/"]) as server:
        yield server


@pytest.fixture
def sso(settings, provider: OidcProvider) -> OidcProvider:
    settings.OIDC_DISCOVERY_URL = provider.discovery_url
    settings.OIDC_CLIENT_ID = provider.client_id
    settings.OIDC_CLIENT_SECRET = provider.client_secret
    settings.OIDC_ROLES_CLAIM = "groups"
    settings.OIDC_ROLE_GROUPS = "member=cmdb-members;admin=cmdb-admins"
    settings.OIDC_NAME = "Authentik"
    return provider


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    browser.clear_cookies()
    page = browser.new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    page.set_default_timeout(20_000)
    errors: list[str] = []
    # Our pages' errors only: the test provider's own pages have no favicon.
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.location.get('url')}: {message.text}")
            if message.type == "error" and "127.0.0.1" not in str(message.location.get("url"))
            else None
        ),
    )
    page.console_errors = errors
    yield page
    page.close()


def look(page: Any, name: str) -> None:
    """No sideways scroll at 1366 and 375 px; a screenshot of each when SIGN_IN_SCREENSHOTS names a folder."""
    folder = os.environ.get("SIGN_IN_SCREENSHOTS")
    for width in (1366, 375):
        page.set_viewport_size({"width": width, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), width
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def test_single_sign_on_from_the_button_to_the_dashboard_and_out(sso, page, live_server):
    sso.user("amara", PASSWORD, claims=shape("authentik", "amara", groups=["cmdb-members"]))

    page.goto(f"{live_server.url}/accounts/login/")
    look(page, "sign-in")
    page.click("text=Sign in with Authentik")
    page.wait_for_url(f"{sso.url}/login/**")
    page.fill("#id_username", "amara")
    page.fill("#id_password", PASSWORD)
    page.click("#provider-sign-in")
    page.wait_for_url(f"{live_server.url}/")

    assert "Sign out Ada Authentik" in page.content()
    user = User.objects.get(username="amara")
    assert (user.role, user.source) == ("member", "oidc")
    assert AuditEntry.objects.get(action="user.sign_in", target="user:amara").detail["method"] == "oidc"

    page.click("button.nav-signout")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    # The provider's session ended too: the button leads to its sign-in page again.
    page.click("text=Sign in with Authentik")
    page.wait_for_url(f"{sso.url}/login/**")
    assert page.console_errors == []


def test_the_provider_down_shows_a_clear_page_and_the_local_form_still_signs_in(settings, sso, page, live_server):
    settings.OIDC_DISCOVERY_URL = f"http://127.0.0.1:{free_port()}/o/.well-known/openid-configuration"
    user_create(username="keeper", password="Local-keeper-passphrase-9", role="admin")

    page.goto(f"{live_server.url}/accounts/login/")
    page.click("text=Sign in with Authentik")
    assert "Authentik cannot be reached right now" in page.content()
    look(page, "sign-in-error")
    page.click("text=Back to the sign-in page")
    page.fill("#id_username", "keeper")
    page.fill("#id_password", "Local-keeper-passphrase-9")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert "Sign out keeper" in page.content()
