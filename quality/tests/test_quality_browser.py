"""The data-quality panel and findings page in a real browser (Debian's Chromium driven by Playwright), at a desktop
and a phone width, with screenshots in var/screenshots/. Select these tests with ``-m browser``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from accounts.services import user_create
from accounts.tests.test_browser import browser  # noqa: F401  (the module-scoped Chromium fixture)
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Quality-browser-passphrase-18"
WIDTHS = (1366, 375)
SCREENSHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots"


def export() -> ExportRun:
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert run.status == "succeeded", run.error
    return run


@pytest.fixture
def history(netbox) -> ExportRun:
    """Three exports whose counts change: a trend for every chart."""
    devices = netbox.devices
    export()
    netbox.update_device(devices[6]["id"], serial="")
    netbox.update_device(devices[7]["id"], custom_fields={**devices[7]["custom_fields"], "DTAP_state": "staging"})
    export()
    netbox.update_device(devices[8]["id"], serial="", rack=None)
    netbox.update_device(
        devices[9]["id"], custom_fields={**devices[9]["custom_fields"], "HW_warranty_expiration": "2001-01-31"}
    )
    return export()


@pytest.fixture
def page(browser: Any, live_server: Any, history: ExportRun) -> Iterator[Any]:  # noqa: F811
    # An admin, as in accounts' browser test: a superuser needs no role rows, which earlier transactional tests of a
    # full run may have flushed.
    user_create(username="quality-admin", password=PASSWORD, role="admin")
    browser.clear_cookies()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.goto(f"{live_server.url}/accounts/login/?next=/exports/")
    page.fill("#id_username", "quality-admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/exports/")
    page.console_errors = errors
    page.failed_requests = failed
    yield page
    page.close()


def shoot(page: Any, name: str, width: int) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.mark.parametrize("width", WIDTHS)
def test_panel_shows_counts_changes_and_trends(page, live_server, history, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/exports/")
    panel = page.locator("#quality-panel")
    panel.wait_for()
    serial = panel.locator('tr[data-rule="device_no_serial"]')
    count = history.quality_counts.get(rule="device_no_serial").count
    assert serial.locator("td.num").first.inner_text() == str(count)
    assert serial.locator(".change-up").inner_text() == "▲ +1"
    assert serial.locator("svg.spark polyline").count() == 1
    # The stylesheet applied (served by the app, no CDN): the chart is drawn as a line, not filled.
    fill = serial.locator("svg.spark polyline").evaluate("el => getComputedStyle(el).fill")
    assert fill == "none"
    panel.scroll_into_view_if_needed()
    assert shoot(page, "quality-panel", width).stat().st_size > 0
    assert [url for url in page.failed_requests if not url.endswith("/favicon.ico")] == []
    # The panel fits the screen (the page's own header and history table are the layout's business).
    assert panel.evaluate("el => el.getBoundingClientRect().right") <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_findings_page_filters_and_fits_the_screen(page, live_server, netbox, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/exports/quality/")
    page.select_option("#f-rule", "warranty_expired")
    page.select_option("#f-kind", "device")
    page.click("#quality-filters button[type=submit]")
    page.wait_for_url("**rule=warranty_expired**")
    rows = page.locator("#quality-findings tbody tr")
    device = netbox.devices[9]
    link = rows.locator(f'a[href$="/dcim/devices/{device["id"]}/"]')
    assert link.count() == 1 and link.inner_text() == device["name"]
    assert "2001-01-31" in rows.first.inner_text() or "2001-01-31" in page.locator("#quality-findings").inner_text()
    assert shoot(page, "quality-findings", width).stat().st_size > 0
    # The page's card is no wider than the screen: the table scrolls inside its own box.
    card = page.locator("main .card").first
    assert card.evaluate("el => el.getBoundingClientRect().right") <= width
    assert card.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert [url for url in page.failed_requests if not url.endswith("/favicon.ico")] == []


def test_findings_sort_by_a_header_and_the_csv_holds_what_the_page_shows(browser, live_server, history):  # noqa: F811
    import csv
    import io

    user_create(username="csv-viewer", password=PASSWORD, role="admin")
    browser.clear_cookies()
    page = browser.new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{live_server.url}/accounts/login/?next=/exports/quality/")
        page.fill("#id_username", "csv-viewer")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live_server.url}/exports/quality/")
        # Errors first by default.
        first = page.locator("#quality-findings tbody tr").first.locator(".badge").inner_text()
        assert first == "error"
        page.select_option("#f-severity", "warning")
        page.click("#quality-filters button[type=submit]")
        page.wait_for_url("**severity=warning**")
        page.click("#quality-findings th[data-column='name'] a")
        page.wait_for_url("**ordering=name**")
        assert page.get_attribute("#quality-findings th[data-column='name']", "aria-sort") == "ascending"
        total = int(page.inner_text("#quality-total").split()[0])
        shown = page.locator("#quality-findings tbody td:first-child").all_inner_texts()
        with page.expect_download() as download:
            page.click("#quality-csv")
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
        assert len(rows) == total and {row["severity"] for row in rows} == {"warning"}
        assert [row["name"] or row["id"] for row in rows][: len(shown)] == shown
        shoot(page, "quality-sorted", 1366)
    finally:
        page.close()
