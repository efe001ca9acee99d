"""The CMDB page in a real browser (Debian's Chromium through Playwright) at 1366 and 375 px wide.

Filter (a typed filter and a picked value), sort by two columns, hide a column, reload and find the same view, open
a row, download the rows; walk the grid by keyboard from the top of the page; the row dialog keeps and returns
focus; a copied URL shows the same rows in another browser; a named shared view reaches another user; a facet
narrows to its count; columns are found, shown, hidden and reordered by keyboard and by dragging. Screenshots go to
``var/screenshots/cmdb-*.png``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from openpyxl import load_workbook

from accounts.models import User
from accounts.services import user_create
from accounts.tests.test_browser import chromium_launched
from cmdb.models import CmdbNamedView
from exports import selectors as export_selectors
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Browser-viewer-passphrase-19"
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_launched() as launched:
        yield launched


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
    """Site contains "fra1", Status is "Active"; sorted by Tenant (blank last), then ID descending."""
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
        ".endsWith(' of ' + n.toLocaleString('en') + ' rows') && !document.getElementById('cmdb')"
        ".classList.contains('cmdb-loading')",
        arg=count,
    )


def wait_saved(page: Any) -> None:
    wait_js(page, "document.getElementById('cmdb').dataset.saved === 'yes'")


def active(page: Any) -> str:
    """The focused element, described: ``TD[key] row N`` for a grid cell, else tag#id."""
    return page.evaluate(
        """() => { const e = document.activeElement; if (!e) return '';
           const tr = e.closest('tr'); const row = tr ? tr.getAttribute('aria-rowindex') : '';
           return e.tagName + (e.dataset.key ? '[' + e.dataset.key + ']' : '') + (e.id ? '#' + e.id : '')
                  + (row ? ' row ' + row : ''); }"""
    )


def sign_in(browser: Any, base: str, username: str, width: int = 1366, path: str = "/cmdb/", **context: Any) -> Any:
    ctx = browser.new_context(viewport={"width": width, "height": 900}, **context)
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/accounts/login/?next={quote(path)}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/cmdb/**")
    return page


def shot(page: Any, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def filter_with(page: Any, key: str, op: str, value: str) -> None:
    page.click(f"#cmdb-grid th[data-key='{key}'] button.cmdb-funnel")
    page.wait_for_selector("#cmdb-filter[open]")
    page.select_option("#cmdb-filter-op", op)
    page.fill("#cmdb-filter-value", value)
    page.click("#cmdb-filter-apply")
    page.wait_for_selector("#cmdb-filter:not([open])", state="attached")


def pick_value(page: Any, key: str, value: str) -> int:
    """Open the column's filter, tick one value and apply; returns the count shown beside the value."""
    page.click(f"#cmdb-grid th[data-key='{key}'] button.cmdb-funnel")
    page.wait_for_selector("#cmdb-facets:not([hidden]) li")
    item = page.locator("#cmdb-facet-list li", has=page.locator(f"input[value='{value}']"))
    count = int(item.locator(".cmdb-facet-count").inner_text().replace(",", ""))
    item.locator("input").check()
    page.click("#cmdb-filter-apply")
    return count


@pytest.mark.parametrize("width", [1366, 375])
def test_filter_sort_hide_reload_open_and_download_in_the_browser(browser, live_server, export_run, netbox, width):
    viewer_may_download()
    user_create(username="vera", password=PASSWORD, role="viewer")
    page = sign_in(browser, live_server.url, "vera", width, accept_downloads=True)
    errors: list[str] = []
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None,
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        wait_for_count(page, 100)
        assert "export #" in page.locator("#cmdb-source").inner_text()
        if width < 720:  # the toolbar leaves most of the first screen to the rows
            toolbar = page.locator("#cmdb-toolbar").bounding_box()
            assert toolbar["height"] < 150 and not page.locator("#cmdb-density").is_visible()
            first_row = page.locator("#cmdb-grid tbody tr").first.bounding_box()
            assert first_row["y"] < 450
            page.click("#cmdb-more-toggle")
            assert page.locator("#cmdb-density").is_visible()
            shot(page, "cmdb-more-375")
            page.click("#cmdb-more-toggle")

        # Filter by site (contains, typed) and status (a value picked with its count).
        filter_with(page, "site", "contains", "FRA1")
        expected = expected_order(export_run)
        assert 1 < len(expected) < 50
        pick_value(page, "status", "Active")
        wait_for_count(page, len(expected))
        chips = page.locator("#cmdb-chip-list li").all_inner_texts()
        assert any("Site contains FRA1" in c for c in chips) and any("Status is Active" in c for c in chips)

        # Sort by tenant, then (shift-click twice) by ID descending.
        page.click("#cmdb-grid th[data-key='tenant'] .cmdb-label")
        wait_js(page, "document.querySelector(\"th[data-key='tenant']\").getAttribute('aria-sort') === 'ascending'")
        page.click("#cmdb-grid th[data-key='id'] .cmdb-label", modifiers=["Shift"])
        page.click("#cmdb-grid th[data-key='id'] .cmdb-label", modifiers=["Shift"])
        wait_js(page, "document.querySelector(\"th[data-key='id']\").getAttribute('aria-sort') === 'descending'")
        want_names = [r["Name"] for r in expected]
        wait_js(
            page,
            "names => [...document.querySelectorAll(\"#cmdb-grid tbody td[data-key='name']\")]"
            ".map(td => td.textContent).join('\\n') === names.join('\\n')",
            arg=want_names,
        )

        # Hide a column in the chooser.
        page.click("#cmdb-columns-toggle")
        page.fill("#cmdb-columns-search", "rack")
        found = page.locator("#cmdb-columns-list li:not([hidden]) label").all_inner_texts()
        assert len(found) >= 2 and all("rack" in label.lower() for label in found), found
        page.uncheck("#cmdb-columns-list input[data-key='rack']")
        page.click("#cmdb-columns-close")
        wait_js(page, "!document.querySelector(\"#cmdb-grid th[data-key='rack']\")")
        assert "Rack" not in header_labels(page)
        wait_saved(page)

        # Reload: the same view comes back (from the URL and the server).
        page.reload()
        wait_for_count(page, len(expected))
        assert "Rack" not in header_labels(page)
        assert page.get_attribute("#cmdb-grid th[data-key='tenant']", "aria-sort") == "ascending"
        assert page.get_attribute("#cmdb-grid th[data-key='id']", "aria-sort") == "descending"
        assert grid_column(page, "name") == want_names
        shown = header_labels(page)
        grid_rows = [
            [t.strip() for t in page.locator(f"#cmdb-grid tbody tr:nth-child({n}) td").all_text_contents()]
            for n in range(1, len(expected) + 1)
        ]
        shot(page, f"cmdb-{width}", full_page=True)

        # Open a row: every column, NetBox and the history.
        first = expected[0]
        page.click("#cmdb-grid tbody tr:first-child td[data-key='status']")
        page.wait_for_selector("#cmdb-detail[open]")
        assert page.inner_text("#cmdb-detail-title") == first["Name"]
        kind_path = "dcim/devices" if first["netbox_type"] == "devices" else "virtualization/virtual-machines"
        netbox_page = f"{netbox.url}/{kind_path}/{first['ID']}/"
        assert page.get_attribute("#cmdb-detail-netbox", "href") == netbox_page
        assert (
            page.get_attribute("#cmdb-detail-history", "href") == f"/cmdb/merged/{first['netbox_type']}-{first['ID']}/"
        )
        labels = page.locator("#cmdb-detail-list dt").all_inner_texts()
        assert labels == list(first.keys())  # every merged column, the hidden Rack included
        assert page.inner_text("#cmdb-detail-list dd[data-key='rack']") == first["Rack"]
        shot(page, f"cmdb-detail-{width}")
        page.click("#cmdb-detail-close")
        # The name links to NetBox.
        assert page.get_attribute("#cmdb-grid tbody tr:first-child td[data-key='name'] a", "href") == netbox_page

        # Download these rows: the same rows, order and columns as the grid.
        if width < 720:
            page.click("#cmdb-more-toggle")
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
        page.context.close()


@pytest.mark.parametrize("width", [1366, 375])
def test_keyboard_reaches_the_rows_walks_them_and_the_dialog_keeps_focus(browser, live_server, export_run, width):
    viewer_may_download()
    user_create(username="kay", password=PASSWORD, role="viewer")
    page = sign_in(browser, live_server.url, "kay", width)
    try:
        wait_for_count(page, 100)
        page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
        page.goto(page.url)  # the top of a fresh page, focus on the document
        wait_for_count(page, 100)
        presses = 0
        while not active(page).startswith("TD"):
            page.keyboard.press("Tab")
            presses += 1
            if active(page).startswith("A#skip-grid"):
                page.keyboard.press("Enter")
            assert presses <= 5, f"still not in the grid after 5 Tab presses: {active(page)}"
        assert active(page) == "TD[name] row 2"
        # One Tab stop: the next Tab leaves the grid.
        assert page.locator("#cmdb-grid [tabindex='0']").count() == 1

        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        assert active(page) == "TD[name] row 4"
        page.keyboard.press("ArrowRight")
        assert active(page) == "TD[status] row 4"
        page.keyboard.press("End")
        last_key = page.evaluate("[...document.querySelectorAll('#cmdb-grid thead th')].pop().dataset.key")
        assert active(page) == f"TD[{last_key}] row 4"
        # The focused cell is scrolled into view, clear of the frozen Name column.
        assert page.evaluate(
            "(() => { const c = document.activeElement.getBoundingClientRect();"
            " const w = document.getElementById('cmdb-grid-wrap').getBoundingClientRect();"
            " const n = document.querySelector('#cmdb-grid thead th.cmdb-frozen').getBoundingClientRect();"
            " return c.right <= w.right + 1 && c.left >= n.right - 1; })()"
        )
        page.keyboard.press("Home")
        assert active(page) == "TD[name] row 4"
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowUp")
        assert active(page) == "TH[name] row 1"
        page.keyboard.press("ArrowDown")
        page.keyboard.press("PageDown")
        assert int(active(page).rsplit(" ", 1)[1]) > 3
        page.keyboard.press("Control+End")
        assert active(page) == f"TD[{last_key}] row 51"
        page.keyboard.press("PageDown")  # the last row: on to the next page
        wait_js(page, "document.getElementById('cmdb-page').textContent.startsWith('Page 2')")
        wait_js(page, "document.activeElement.closest('tr') && document.activeElement.closest('tr')"
                      ".getAttribute('aria-rowindex') === '52'")  # fmt: skip
        page.keyboard.press("Control+Home")
        assert active(page) == "TD[name] row 52"

        # Enter opens the row as a modal dialog: Tab and Shift+Tab stay inside, Escape gives the focus back.
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Enter")
        page.wait_for_selector("#cmdb-detail[open]")
        assert active(page) == "BUTTON#cmdb-detail-close"
        inside = []
        for _ in range(6):
            page.keyboard.press("Tab")
            inside.append(page.evaluate("document.getElementById('cmdb-detail').contains(document.activeElement)"))
        page.keyboard.press("Shift+Tab")
        inside.append(page.evaluate("document.getElementById('cmdb-detail').contains(document.activeElement)"))
        assert all(inside)
        shot(page, f"cmdb-dialog-{width}")
        box = page.locator("#cmdb-detail").bounding_box()
        assert box["x"] + box["width"] <= width + 1 and box["width"] >= min(width, 400) - 1
        page.keyboard.press("Escape")
        page.wait_for_selector("#cmdb-detail:not([open])", state="attached")
        assert active(page) == "TD[status] row 52"

        # A header sorts with Enter and filters with Alt+Down.
        page.keyboard.press("Control+Home")
        page.keyboard.press("ArrowUp")
        assert active(page) == "TH[name] row 1"
        page.keyboard.press("Enter")
        wait_js(page, "document.querySelector(\"th[data-key='name']\").getAttribute('aria-sort') === 'ascending'")
        assert active(page) == "TH[name] row 1"
        page.keyboard.press("Alt+ArrowDown")
        page.wait_for_selector("#cmdb-filter[open]")
        page.keyboard.press("Escape")
        assert active(page) == "TH[name] row 1"
    finally:
        page.context.close()


def test_a_copied_link_shows_a_colleague_the_same_rows(browser, live_server, export_run):
    viewer_may_download()
    user_create(username="ada", password=PASSWORD, role="viewer")
    user_create(username="bo", password=PASSWORD, role="viewer")
    page = sign_in(browser, live_server.url, "ada", permissions=["clipboard-read", "clipboard-write"])
    other = None
    try:
        wait_for_count(page, 100)
        page.click(".cmdb-tab[data-dataset='vms']")
        wait_for_count(page, 60)
        filter_with(page, "site", "contains", "fra")
        page.fill("#cmdb-q", "a")
        page.click("#cmdb-grid th[data-key='vcpus'] .cmdb-label")
        page.click("#cmdb-grid th[data-key='vcpus'] .cmdb-label")
        wait_js(page, "document.querySelector(\"th[data-key='vcpus']\").getAttribute('aria-sort') === 'descending'")
        page.click("#cmdb-columns-toggle")
        page.uncheck("#cmdb-columns-list input[data-key='status']")
        page.click("#cmdb-columns-close")
        wait_js(page, "!document.querySelector(\"#cmdb-grid th[data-key='status']\")")
        wait_saved(page)
        count = page.inner_text("#cmdb-count")
        names = grid_column(page, "name")
        headers = header_labels(page)
        assert 0 < len(names) < 60

        page.click("#cmdb-views-toggle")
        page.click("#cmdb-copy-link")
        wait_js(page, "document.getElementById('cmdb-views-message').textContent !== ''")
        assert "Link copied" in page.inner_text("#cmdb-views-message")
        link = page.evaluate("navigator.clipboard.readText()")
        assert link == page.url and "dataset=vms" in link and "site=fra" in link

        other = sign_in(browser, live_server.url, "bo", path="/cmdb/")
        other.goto(link)
        wait_js(other, "n => document.getElementById('cmdb-count').textContent === n", arg=count)
        assert grid_column(other, "name") == names
        assert header_labels(other) == headers
        assert other.get_attribute(".cmdb-tab[data-dataset='vms']", "aria-selected") == "true"
        assert other.get_attribute("#cmdb-grid th[data-key='vcpus']", "aria-sort") == "descending"
        shot(other, "cmdb-shared-link-1366")
    finally:
        page.context.close()
        if other is not None:
            other.context.close()


def test_a_named_shared_view_reaches_another_user_and_a_facet_narrows_to_its_count(browser, live_server, export_run):
    viewer_may_download()
    user_create(username="nina", password=PASSWORD, role="viewer")
    user_create(username="otto", password=PASSWORD, role="viewer")
    rows = merged_rows(export_run)
    page = sign_in(browser, live_server.url, "nina")
    other = None
    try:
        wait_for_count(page, 100)
        count = pick_value(page, "status", "Planned")
        assert count == sum(1 for r in rows if r["Status"].casefold() == "planned")
        wait_for_count(page, count)
        # The other columns' facets count under this filter.
        page.click("#cmdb-grid th[data-key='site'] button.cmdb-funnel")
        page.wait_for_selector("#cmdb-facets:not([hidden]) li")
        shown = sum(int(c) for c in page.locator("#cmdb-facet-list .cmdb-facet-count").all_inner_texts())
        assert shown == count
        shot(page, "cmdb-filter-1366")
        page.keyboard.press("Escape")
        names = grid_column(page, "name")

        page.click("#cmdb-views-toggle")
        page.fill("#cmdb-views-name", "Planned kit")
        page.check("#cmdb-views-shared")
        page.click("#cmdb-views-save")
        page.wait_for_selector("#cmdb-views-list li button:text('Planned kit')")
        shot(page, "cmdb-views-1366")
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # the menu stays on screen
        box = page.locator("#cmdb-views").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1366
        named = CmdbNamedView.objects.get()
        assert named.shared and named.state["filters"]["status"]["values"] == ["Planned"]

        other = sign_in(browser, live_server.url, "otto")
        wait_for_count(other, 100)
        other.click("#cmdb-views-toggle")
        item = other.locator("#cmdb-views-list li", has_text="Planned kit")
        assert "shared by nina" in item.inner_text() and item.locator("text=delete").count() == 0
        item.locator("button.cmdb-view-pick").click()
        wait_for_count(other, count)
        assert grid_column(other, "name") == names
        # The named view's own link works too.
        other.goto(f"{live_server.url}/cmdb/?view={named.pk}")
        wait_for_count(other, count)
    finally:
        page.context.close()
        if other is not None:
            other.context.close()


def test_columns_are_found_reordered_by_keyboard_and_drag_and_remembered(browser, live_server, export_run):
    viewer_may_download()
    user_create(username="rhea", password=PASSWORD, role="viewer")
    page = sign_in(browser, live_server.url, "rhea")
    try:
        page.click(".cmdb-tab[data-dataset='vms']")
        wait_for_count(page, 60)
        assert header_labels(page)[:3] == ["Name", "Status", "Site"]
        page.click("#cmdb-more-toggle") if page.locator("#cmdb-more-toggle").is_visible() else None
        page.select_option("#cmdb-density", "compact")

        page.click("#cmdb-columns-toggle")
        move = page.locator("#cmdb-columns-list li[data-key='site'] button[data-move='up']")
        move.focus()
        page.keyboard.press("Enter")
        wait_js(page, "document.querySelectorAll('#cmdb-grid tr.cmdb-labels th')[1].dataset.key === 'site'")
        # The focus stays on the moved column's button, so pressing again moves it again.
        assert page.evaluate("document.activeElement.closest('li').dataset.key") == "site"
        assert "moved to position 2" in page.inner_text("#cmdb-columns-live")
        box = page.locator("#cmdb-columns-list input[data-key='cluster']")
        box.focus()
        page.keyboard.press("Alt+ArrowUp")
        assert page.evaluate("document.activeElement.dataset.key") == "cluster"
        # Drag Tenant above Site.
        handle = page.locator("#cmdb-columns-list li[data-key='tenant'] .cmdb-drag").bounding_box()
        target = page.locator("#cmdb-columns-list li[data-key='site']").bounding_box()
        page.mouse.move(handle["x"] + 4, handle["y"] + 4)
        page.mouse.down()
        page.mouse.move(target["x"] + 20, target["y"] + 3, steps=6)
        page.mouse.up()
        wait_js(page, "document.querySelectorAll('#cmdb-grid tr.cmdb-labels th')[1].dataset.key === 'tenant'")
        shot(page, "cmdb-columns-1366")
        page.click("#cmdb-columns-none")
        wait_js(page, "document.querySelectorAll('#cmdb-grid tr.cmdb-labels th').length === 1")
        page.click("#cmdb-columns-all")
        wait_js(page, "n => document.querySelectorAll('#cmdb-grid tr.cmdb-labels th').length === n", arg=31)
        page.keyboard.press("Escape")
        wait_saved(page)
        order = header_labels(page)[:4]
        assert order == ["Name", "Tenant", "Site", "Cluster"]

        handle = page.locator("#cmdb-grid th[data-key='name'] .cmdb-resize").bounding_box()
        page.mouse.move(handle["x"] + 3, handle["y"] + 5)
        page.mouse.down()
        page.mouse.move(handle["x"] + 163, handle["y"] + 5, steps=5)
        page.mouse.up()
        width = page.locator("#cmdb-grid tr.cmdb-labels th[data-key='name']").bounding_box()["width"]
        wait_saved(page)

        page.goto(f"{live_server.url}/cmdb/")  # no view in the URL: the saved one
        wait_for_count(page, 60)
        assert page.get_attribute(".cmdb-tab[data-dataset='vms']", "aria-selected") == "true"  # the last tab
        assert page.input_value("#cmdb-density") == "compact"
        assert "cmdb-compact" in page.get_attribute("#cmdb-grid", "class")
        assert header_labels(page)[:4] == order
        assert abs(page.locator("#cmdb-grid tr.cmdb-labels th[data-key='name']").bounding_box()["width"] - width) < 2
        assert width > 200

        page.click("#cmdb-reset")
        wait_js(page, "document.getElementById('cmdb-density').value === 'comfortable'")
        wait_js(page, "document.querySelectorAll('#cmdb-grid tr.cmdb-labels th')[1].dataset.key === 'status'")
    finally:
        page.context.close()


def test_history_page_after_two_changes_shows_both_in_order(browser, live_server, export_run, netbox):
    viewer_may_download()
    user_create(username="hugo", password=PASSWORD, role="viewer")
    device = netbox.devices[5]
    netbox.update_device(device["id"], serial="FIRST-CHANGE")
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    second = export_run_execute(run=run)
    netbox.update_device(device["id"], serial="SECOND-CHANGE")
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    third = export_run_execute(run=run)
    page = sign_in(browser, live_server.url, "hugo", path=f"/cmdb/?dataset=devices&q={device['name']}")
    try:
        wait_js(page, "n => [...document.querySelectorAll(\"#cmdb-grid td[data-key='name']\")]"
                      ".some(td => td.textContent === n)", arg=device["name"])  # fmt: skip
        index = grid_column(page, "name").index(device["name"])
        page.locator("#cmdb-grid tbody tr").nth(index).locator("td[data-key='status']").click()
        page.wait_for_selector("#cmdb-detail[open]")
        page.click("#cmdb-detail-history")
        page.wait_for_url(f"{live_server.url}/cmdb/devices/devices-{device['id']}/")
        entries = page.locator(".timeline li").all_inner_texts()
        assert len(entries) == 2
        assert f"Export #{second.pk}" in entries[0] and "FIRST-CHANGE" in entries[0]
        assert f"Export #{third.pk}" in entries[1] and "FIRST-CHANGE" in entries[1] and "SECOND-CHANGE" in entries[1]
        assert page.inner_text("#history-now dd[data-key='serial_number']") == "SECOND-CHANGE"
        for width in (1366, 375):
            page.set_viewport_size({"width": width, "height": 900})
            shot(page, f"cmdb-history-{width}", full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    finally:
        page.context.close()
