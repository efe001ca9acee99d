"""The admin's user and key pages in a real browser: Debian's Chromium driven by Playwright, against a live server.

Chromium comes from the distribution's ``chromium`` package (``make test-deps`` installs it, with the other Debian
packages the tests need), never from ``playwright install``. Without it these tests fail, they never skip. Select them
with ``-m browser``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.models import AuditEntry, GlobalKey, User
from accounts.services import user_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "Browser-admin-passphrase-64"
NEW_PASSWORD = "Browser-made-passphrase-42"
SECRET = "nbt_brows3r.secret-value-for-the-browser-test-QRST"


def chromium_path() -> str:
    """Debian's Chromium; a missing one fails the test (``make test-deps`` installs it before the tests)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test-deps` installs Debian's chromium")
    return CHROMIUM


@contextlib.contextmanager
def chromium_launched() -> Iterator[Any]:
    """Debian's Chromium launched through Playwright, for one module's tests. Playwright's sync API keeps an event
    loop in this thread meanwhile, so Django's refusal of synchronous ORM calls in it is lifted until the end."""
    executable = chromium_path()
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    executable = chromium_path()
    # Playwright's sync API keeps an event loop in this thread for the whole session; Django would then refuse the
    # plain synchronous ORM calls of the tests and of pytest-django's database fixtures.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(executable, tmp_path_factory)
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch(executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            args=ARGS,
            headless=True,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A page signed in as an admin through the real sign-in form."""
    user_create(username="root", password=ADMIN_PASSWORD, role="admin")
    browser.clear_cookies()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    yield page
    page.close()


def test_admin_provisions_a_user_in_the_browser(page, live_server):
    base = live_server.url
    page.goto(f"{base}/admin/accounts/user/add/")
    page.fill("#id_username", "quinn")
    page.select_option("#id_role", "operator")
    page.fill("#id_display_name", "Quinn")
    page.fill("#id_password1", NEW_PASSWORD)
    page.fill("#id_password2", NEW_PASSWORD)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    quinn = User.objects.get(username="quinn")
    assert quinn.role == "operator" and quinn.check_password(NEW_PASSWORD)

    page.goto(f"{base}/admin/accounts/user/{quinn.pk}/change/")
    page.select_option("#id_role", "member")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert User.objects.get(pk=quinn.pk).role == "member"
    assert User.objects.get(pk=quinn.pk).has_capability("chat.use")

    page.goto(f"{base}/admin/accounts/user/{quinn.pk}/change/")
    page.click("text=Reset password")
    page.fill("#id_new_password1", "Another-browser-passphrase-7")
    page.fill("#id_new_password2", "Another-browser-passphrase-7")
    page.click("input[name=_reset]")
    page.wait_for_selector("text=Password of quinn reset;")
    assert User.objects.get(pk=quinn.pk).check_password("Another-browser-passphrase-7")

    page.goto(f"{base}/admin/accounts/user/")
    page.check(f"input[name=_selected_action][value='{quinn.pk}']")
    page.select_option("select[name=action]", "deactivate_users")
    page.click("button[name=index]")
    page.wait_for_selector("text=1 user deactivated;")
    assert not User.objects.get(pk=quinn.pk).is_active

    # The guard rail shows in the form: the admin cannot demote themselves.
    root = User.objects.get(username="root")
    page.goto(f"{base}/admin/accounts/user/{root.pk}/change/")
    page.select_option("#id_role", "viewer")
    page.click("input[name=_save]")
    page.wait_for_selector("text=You cannot remove your own admin role.")
    assert User.objects.get(pk=root.pk).role == "admin"
    assert set(AuditEntry.objects.filter(target="user:quinn").values_list("action", flat=True)) == {
        "user.create", "user.role", "user.password_reset", "user.deactivate",
    }  # fmt: skip


def test_admin_sets_a_global_key_in_the_browser_and_sees_only_a_hint(page, live_server):
    base = live_server.url
    page.goto(f"{base}/admin/accounts/globalkey/add/")
    page.fill("#id_name", "netbox")
    page.fill("#id_label", "NetBox production")
    page.fill("#id_value", SECRET)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    listing = page.content()
    assert "••••QRST" in listing and SECRET not in listing
    key = GlobalKey.objects.get(name="netbox")

    page.goto(f"{base}/admin/accounts/globalkey/{key.pk}/change/")
    assert page.input_value("#id_value") == "" and SECRET not in page.content()
    page.fill("#id_label", "NetBox prod")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    from accounts.keys import secret_get

    assert secret_get("netbox") == SECRET and GlobalKey.objects.get(pk=key.pk).label == "NetBox prod"

    page.goto(f"{base}/admin/accounts/globalkey/{key.pk}/delete/")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert not GlobalKey.objects.exists()
