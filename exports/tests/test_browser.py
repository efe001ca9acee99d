"""The exports page and a run page in a real browser (Debian's Chromium driven by Playwright) at 1366 and 375 px.

An export runs against the NetBox test server while the page watches its bar reach 100 %; the server then changes a
device, a second export runs from the page's button, and the run page shows the changed column old → new. Every
page is checked for horizontal scrolling and console errors, and saved to ``var/screenshots/<page>-<width>.png``.
Select these tests with ``-m browser``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from accounts.services import user_create
from accounts.tests.test_browser import browser  # noqa: F401  (the module-scoped Chromium fixture)
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Browser-operator-passphrase-77"
WIDTHS = (1366, 375)
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


class Watched:
    """A signed-in page of a given width that collects console errors and uncaught exceptions."""

    def __init__(self, page: Any, base: str, width: int) -> None:
        self.page, self.base, self.width = page, base, width
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # Which resource failed: the console only says that one did.
        page.on(
            "response",
            lambda response: response.status >= 400 and self.errors.append(f"{response.status} {response.url}"),
        )

    def _console(self, message: Any) -> None:
        # The favicon is the base layout's (issue 16's other half); its 404 is not these pages' error.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(f"{message.text} {message.location.get('url', '')}")

    def check(self, name: str) -> None:
        """Nothing of the page's content reaches past the viewport (wide tables scroll inside their own box) and no
        console error so far; saves the screenshot.

        The content is ``main``: the header and its navigation belong to the base layout (and its own tests).
        """
        outside = self.page.evaluate(OUTSIDE_VIEWPORT)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{self.width}.png"), full_page=True)
        assert not outside, f"{name} at {self.width} px: content past the right edge: {outside}"
        assert not self.errors, f"console errors on {name} at {self.width} px: {self.errors}"


# Elements of main whose right edge is past the viewport's, except inside a box that scrolls on its own.
OUTSIDE_VIEWPORT = """() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const el of [document.querySelector("main"), ...document.querySelectorAll("main *")]) {
    const scroller = el.parentElement && el.parentElement.closest(".table-scroll, .run-log");
    if (scroller) continue;
    const right = el.getBoundingClientRect().right;
    if (right > width + 0.5) found.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className} ends at ${right}`);
  }
  return found.slice(0, 5);
}"""


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def watched(request: pytest.FixtureRequest, browser: Any, live_server: Any, netbox: Any) -> Iterator[Watched]:  # noqa: F811
    user_create(username="olivia", password=PASSWORD, role="operator")
    browser.clear_cookies()
    page = browser.new_page()
    page.set_viewport_size({"width": request.param, "height": 900})
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/accounts/login/?next=/exports/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/exports/")
    yield Watched(page, live_server.url, request.param)
    page.close()


def _execute_in_background(run: ExportRun) -> threading.Thread:
    """Execute a queued run in another thread, as a queue worker would, while the page watches it."""

    def work() -> None:
        try:
            export_run_execute(run=run)
        finally:
            connection.close()

    thread = threading.Thread(target=work, name=f"export-{run.pk}", daemon=True)
    thread.start()
    return thread


def test_export_progress_reaches_100_and_the_run_page_shows_the_changed_column(watched, netbox, settings):
    page, base = watched.page, watched.base
    # Small pages and a little latency: the run lasts long enough for the bar to move.
    settings.NETBOX_PAGE_SIZE = 5
    settings.NETBOX_WORKERS = 1
    netbox.latency = 0.2

    run, _ = export_run_request(trigger=ExportRun.Trigger.WEB, publish=False)
    page.goto(f"{base}/exports/")
    button = page.locator("#run-now")
    assert button.is_disabled() and button.inner_text() == f"#{run.pk} queued"
    assert "No successful export yet" not in page.inner_text("main")
    assert page.locator("#progress-bar").is_visible()

    worker = _execute_in_background(run)
    # The bar moves while the run fetches (the totals come from NetBox's counts), then reaches 100 %.
    page.wait_for_function("() => /of 40 devices/.test(document.getElementById('progress-detail')?.textContent)")
    page.wait_for_selector("#progress-bar[value='100']")
    assert page.inner_text("#progress-percent") == "100 %"
    # The button says the run finished at once, not "running" until the page reloads.
    assert button.inner_text() == f"#{run.pk} succeeded"
    assert "Finished: 40 devices, 60 VMs." in page.inner_text("#progress-detail")
    worker.join(timeout=60)
    # The page reloads itself to show the new files; the Run button is back.
    page.wait_for_selector("#latest-files")
    page.wait_for_function("() => document.getElementById('netbox-status').textContent.startsWith('NetBox ')")
    assert page.locator("#run-now").inner_text() == "Run export now"
    watched.check("exports")

    # NetBox changes a device; the operator runs the second export from the page.
    netbox.latency = 0
    device = netbox.devices[4]
    old_serial = device["serial"]  # the dict is NetBox's live object: read before the change
    netbox.update_device(device["id"], serial="SERIAL-CHANGED-42")
    page.click("#run-now")
    page.wait_for_selector(".message.success")
    second = ExportRun.objects.exclude(pk=run.pk).get()
    assert second.status == "succeeded", second.error
    page.click(f"#history a[href='/exports/runs/{second.pk}/#changes']")
    page.wait_for_url(f"{base}/exports/runs/{second.pk}/#changes")

    row = page.locator("#change-list tr.change-changed", has_text=f"#{device['id']}")
    assert row.count() == 1 and device["name"] in row.inner_text()
    # The object links to its history in the CMDB and to NetBox; NetBox's "Last updated" is not repeated.
    assert row.locator("strong a").get_attribute("href") == f"/cmdb/devices/devices-{device['id']}/"
    assert row.locator(".change-links a").get_attribute("href") == f"{netbox.url}/dcim/devices/{device['id']}/"
    assert row.locator("dt", has_text="Last updated").count() == 0
    serial = row.locator(".field-changes div", has=page.locator("dt", has_text="Serial number"))
    assert serial.locator("del").inner_text() == (old_serial or "(empty)")
    assert serial.locator("ins").inner_text() == "SERIAL-CHANGED-42"
    # Searchable: a column's name finds the object.
    page.fill("#id_q", "serial")
    page.click(".change-filters button")
    page.wait_for_url("**q=serial**")
    assert page.locator("#change-list tr.change-changed").count() == 1
    assert page.locator(".step-bars li").count() >= 4
    assert f"from {second.netbox_url}" in page.inner_text("#log")
    watched.check("export-run")


def test_admin_run_list_keeps_its_columns_at_1366_and_the_run_page_has_tables(browser, live_server, netbox):  # noqa: F811
    user_create(username="ada", password=PASSWORD, role="admin")
    first, _ = export_run_request(trigger=ExportRun.Trigger.ADMIN, publish=False)
    export_run_execute(run=first)
    netbox.update_device(netbox.devices[1]["id"], serial="ADMIN-BROWSER-1")
    second, _ = export_run_request(trigger=ExportRun.Trigger.ADMIN, publish=False)
    second = export_run_execute(run=second)
    failed, _ = export_run_request(trigger=ExportRun.Trigger.WEB, publish=False)
    ExportRun.objects.filter(pk=failed.pk).update(
        status="failed", active=None, error="NetBox at https://netbox.example.net is unavailable: " + "x" * 200
    )

    browser.clear_cookies()
    page = browser.new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    watched = Watched(page, live_server.url, 1366)
    page.goto(f"{live_server.url}/accounts/login/?next=/admin/exports/exportrun/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#result_list")
    # Every column header is on screen: the table fits beside the filters without scrolling inside its box.
    headers = page.eval_on_selector_all(
        "#result_list thead th",
        "(ths) => ths.map((th) => [th.textContent.trim(), th.getBoundingClientRect().right])",
    )
    visible = page.evaluate("() => document.querySelector('#changelist .results').getBoundingClientRect().right")
    assert len(headers) >= 9
    assert all(right <= visible + 0.5 for _, right in headers), (visible, headers)
    watched.check("admin-export-runs")

    page.goto(f"{live_server.url}/admin/exports/exportrun/{second.pk}/change/")
    assert page.locator(".run-table").count() >= 3
    assert page.locator(".run-table td", has_text="Devices to fetch").count() == 1
    assert page.locator(".run-table strong", has_text="Serial number").count() == 1
    watched.check("admin-export-run")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_admin_run_page_fits_the_screen_with_its_internals_open(browser, live_server, netbox, width):  # noqa: F811
    user_create(username="ada", password=PASSWORD, role="admin")
    run, _ = export_run_request(trigger=ExportRun.Trigger.ADMIN, publish=False)
    run = export_run_execute(run=run)
    browser.clear_cookies()
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    watched = Watched(page, live_server.url, width)
    page.goto(f"{live_server.url}/accounts/login/?next=/admin/exports/exportrun/{run.pk}/change/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(".run-table")
    page.locator("fieldset.collapse summary", has_text="Internals").click()
    assert page.locator(f"text={run.files_digest}").is_visible()
    # The inlines' tables scroll inside the admin's own box; the page itself never scrolls sideways.
    assert not page.evaluate("() => document.documentElement.scrollWidth > document.documentElement.clientWidth")
    log = page.locator("pre.run-log").bounding_box()
    assert log is not None and log["x"] + log["width"] <= width  # the log, whole, not cut at the edge
    assert not watched.errors, watched.errors
    page.screenshot(path=str(SCREENSHOTS / f"admin-export-run-internals-{width}.png"), full_page=True)
    page.close()
