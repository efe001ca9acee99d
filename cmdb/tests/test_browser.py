"""The CMDB page in a real browser (Debian's Chromium through Playwright) at 1366 and 375 px wide.

Filter by site and status, sort by two columns, hide a column, reload and find the same view, open a row, download
the rows as CSV and as a workbook and compare them with what the grid shows. Screenshots go to
``var/screenshots/cmdb-<width>.png`` (and ``cmdb-detail-<width>.png``).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from openpyxl import load_workbook

from accounts.models import User
from accounts.services import user_create
from accounts.tests.test_browser import ARGS, chromium_path
from exports import selectors as export_selectors
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Browser-viewer-passphrase-19"
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import os

    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=executable, args=ARGS, headless=True)
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def export_run(netbox) -> ExportRun:
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    return run


def viewer_may_download() -> None:
    """The viewer role with its export.download, whatever earlier transactional tests left of the seeded roles
    (a flush recreates permissions with new ids, which the serialized role groups no longer point at)."""
    permission, _ = Permission.objects.get_or_create(
        content_type=ContentType.objects.get_for_model(User), codename="export_download",
        defaults={"name": "Download exports"},
    )  # fmt: skip
    Group.objects.get_or_create(name="viewer")[0].permissions.add(permission)


def merged_rows(run: ExportRun) -> list[dict[str, str]]:
    artifact = run.artifacts.get(name="netbox_merged_export.csv")
    with export_selectors.artifact_path(artifact).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def expected_order(run: ExportRun) -> list[dict[str, str]]:
    """Site contains "fra1", Status equals "active"; sorted by Tenant (blank last), then ID descending."""
    rows = [r for r in merged_rows(run) if "fra1" in r["Site"].casefold() and r["Status"].casefold() == "active"]
    rows.sort(key=lambda r: -int(r["ID"]))
    rows.sort(key=lambda r: (r["Tenant"] == "", r["Tenant"].casefold()))
    return rows


def grid_column(page: Any, key: str) -> list[str]:
    return page.locator(f"#cmdb-grid tbody td[data-key='{key}']").all_inner_texts()


def header_labels(page: Any) -> list[str]:
    return [text.strip() for text in page.locator("#cmdb-grid tr.cmdb-labels .cmdb-label").all_inner_texts()]


def wait_js(page: Any, expression: str, arg: Any = None, timeout: float = 20.0) -> None:
    """Wait until a JavaScript expression (or a function of ``arg``) is truthy. Playwright's ``wait_for_function``
    compiles its predicate with eval inside the page, which the app's Content-Security-Policy forbids; ``evaluate``
    goes through the DevTools protocol instead."""
    deadline = time.monotonic() + timeout
    while not (page.evaluate(expression, arg) if arg is not None else page.evaluate(expression)):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(50)


def wait_for_count(page: Any, count: int) -> None:
    wait_js(
        page,
        "n => (document.getElementById('cmdb-count').textContent || '')"
        ".endsWith(' of ' + n.toLocaleString('en') + ' rows')",
        arg=count,
    )


def wait_saved(page: Any) -> None:
    wait_js(page, "document.getElementById('cmdb').dataset.saved === 'yes'")


@pytest.mark.parametrize("width", [1366, 375])
def test_filter_sort_hide_reload_open_and_download_in_the_browser(browser, live_server, export_run, netbox, width):
    viewer_may_download()
    user_create(username="vera", password=PASSWORD, role="viewer")
    context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None,
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{live_server.url}/accounts/login/?next=/cmdb/")
        page.fill("#id_username", "vera")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/cmdb/")
        wait_for_count(page, 100)
        assert "export #" in page.locator("#cmdb-source").inner_text()

        # Filter by site (contains) and status (equals).
        page.fill("#cmdb-grid th[data-key='site'] input.cmdb-value", "FRA1")
        page.select_option("#cmdb-grid th[data-key='status'] select.cmdb-op", "eq")
        page.fill("#cmdb-grid th[data-key='status'] input.cmdb-value", "active")
        expected = expected_order(export_run)
        assert 1 < len(expected) < 50
        wait_for_count(page, len(expected))

        # Sort by tenant, then (shift-click twice) by ID descending.
        page.click("#cmdb-grid th[data-key='tenant'] button.cmdb-sort")
        page.click("#cmdb-grid th[data-key='id'] button.cmdb-sort", modifiers=["Shift"])
        page.click("#cmdb-grid th[data-key='id'] button.cmdb-sort", modifiers=["Shift"])
        wait_js(page, "document.querySelector(\"th[data-key='id']\").getAttribute('aria-sort') === 'descending'")
        want_names = [r["Name"] for r in expected]
        wait_js(
            page,
            "names => [...document.querySelectorAll(\"#cmdb-grid tbody td[data-key='name']\")]"
            ".map(td => td.textContent).join('\\n') === names.join('\\n')",
            arg=want_names,
        )

        # Hide a column.
        page.click("#cmdb-columns-toggle")
        page.uncheck("#cmdb-columns-list input[data-key='rack']")
        wait_js(page, "!document.querySelector(\"#cmdb-grid th[data-key='rack']\")")
        page.click("#cmdb-columns-toggle")
        assert "Rack" not in header_labels(page)
        wait_saved(page)
        wait_js(page, "!document.querySelector(\"#cmdb-grid tbody td[data-key='rack']\")")

        # Reload: the same view comes back from the server.
        page.reload()
        wait_for_count(page, len(expected))
        assert page.input_value("#cmdb-grid th[data-key='site'] input.cmdb-value") == "FRA1"
        assert page.input_value("#cmdb-grid th[data-key='status'] select.cmdb-op") == "eq"
        assert "Rack" not in header_labels(page)
        assert page.get_attribute("#cmdb-grid th[data-key='tenant']", "aria-sort") == "ascending"
        assert page.get_attribute("#cmdb-grid th[data-key='id']", "aria-sort") == "descending"
        assert grid_column(page, "name") == want_names
        shown = header_labels(page)
        grid_rows = [
            page.locator(f"#cmdb-grid tbody tr:nth-child({n}) td").all_text_contents()
            for n in range(1, len(expected) + 1)
        ]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"cmdb-{width}.png"), full_page=True)

        # Open a row: every column and the NetBox link.
        first = expected[0]
        page.click("#cmdb-grid tbody tr:first-child td[data-key='name']")
        page.wait_for_selector("#cmdb-detail:not([hidden])")
        assert page.inner_text("#cmdb-detail-title") == first["Name"]
        kind_path = "dcim/devices" if first["netbox_type"] == "devices" else "virtualization/virtual-machines"
        assert page.get_attribute("#cmdb-detail-netbox", "href") == f"{netbox.url}/{kind_path}/{first['ID']}/"
        labels = page.locator("#cmdb-detail-list dt").all_inner_texts()
        assert labels == list(first.keys())  # every merged column, the hidden Rack included
        assert page.inner_text("#cmdb-detail-list dd[data-key='rack']") == first["Rack"]
        page.screenshot(path=str(SCREENSHOTS / f"cmdb-detail-{width}.png"))
        page.click("#cmdb-detail-close")

        # Download these rows: the same rows, order and columns as the grid.
        with page.expect_download() as download:
            page.click("#cmdb-download-csv")
        text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        records = list(csv.reader(io.StringIO(text)))
        assert records[0] == shown
        assert records[1:] == grid_rows
        with page.expect_download() as download:
            page.click("#cmdb-download-xlsx")
        sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()), read_only=True).worksheets[0]
        cells = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        assert cells[0] == shown
        assert cells[1:] == grid_rows
        assert errors == []  # no failed request (4xx/5xx) and no script error on the way
    finally:
        context.close()


def test_density_order_width_and_reset_are_remembered(browser, live_server, export_run):
    viewer_may_download()
    user_create(username="rhea", password=PASSWORD, role="viewer")
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{live_server.url}/accounts/login/?next=/cmdb/")
        page.fill("#id_username", "rhea")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/cmdb/")
        page.click(".cmdb-tab[data-dataset='vms']")
        wait_for_count(page, 60)
        assert header_labels(page)[:3] == ["Name", "Status", "Site"]

        page.select_option("#cmdb-density", "compact")
        page.click("#cmdb-columns-toggle")
        page.click("#cmdb-columns-list li[data-key='site'] button[aria-label='Move up Site']")
        wait_js(page, "document.querySelectorAll('#cmdb-grid tr.cmdb-labels th')[1].dataset.key === 'site'")
        wait_saved(page)  # the grid has settled: a late re-render during the drag would measure another header
        handle = page.locator("#cmdb-grid th[data-key='name'] .cmdb-resize").bounding_box()
        page.mouse.move(handle["x"] + 3, handle["y"] + 5)
        page.mouse.down()
        page.mouse.move(handle["x"] + 163, handle["y"] + 5, steps=5)
        page.mouse.up()
        width = page.locator("#cmdb-grid tr.cmdb-labels th[data-key='name']").bounding_box()["width"]
        wait_saved(page)

        page.reload()
        wait_for_count(page, 60)
        assert page.get_attribute(".cmdb-tab[data-dataset='vms']", "aria-selected") == "true"  # the last tab
        assert page.input_value("#cmdb-density") == "compact"
        assert "cmdb-compact" in page.get_attribute("#cmdb-grid", "class")
        assert header_labels(page)[:3] == ["Name", "Site", "Status"]
        assert abs(page.locator("#cmdb-grid tr.cmdb-labels th[data-key='name']").bounding_box()["width"] - width) < 2
        assert width > 200

        page.click("#cmdb-reset")
        wait_js(page, "document.getElementById('cmdb-density').value === 'comfortable'")
        assert header_labels(page)[:3] == ["Name", "Status", "Site"]
        page.reload()
        wait_for_count(page, 60)
        assert page.input_value("#cmdb-density") == "comfortable"
    finally:
        context.close()
