"""The admin's CMDB columns page in a real browser at 1366 and 375 px: edit, preview, save; no sideways scroll, no
console error (screenshots in var/screenshots/). Select with ``-m browser``."""

from __future__ import annotations

import pytest

from accounts.services import user_create
from enreach.tests.test_browser_pages import PASSWORD, WIDTHS, chromium, tab  # noqa: F401  (fixtures)
from exports.column_sets import column_set_current
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]


@pytest.mark.parametrize("width", WIDTHS)
def test_columns_page_previews_and_saves(tab, netbox, width):  # noqa: F811
    user_create(username="root", password=PASSWORD, role="admin")
    run, _ = export_run_request(trigger=ExportRun.Trigger.WEB)
    export_run_execute(run=run)
    t = tab(width)
    t.sign_in("root")
    page = t.goto("/admin/exports/columnset/")
    t.check("admin-columns")
    devices = page.locator("#id_devices")
    devices.fill(devices.input_value() + "\nCost center | cf:cost_center\nType slug | field:device_type.slug")
    page.click("input[name=_preview]")
    page.wait_for_selector("#preview-devices")
    assert page.locator("#preview-devices thead th", has_text="Cost center").count() == 1
    assert page.locator("#preview-devices tbody tr").count() == 20
    t.check("admin-columns-preview")
    page.locator("#id_devices").fill(devices.input_value() + "\nOwner | cf:owner_team")
    page.click("input[name=_save]")
    page.wait_for_selector("#column-set-problems")
    assert "cost_center" in page.locator("#column-set-problems").inner_text()
    t.check("admin-columns-problem")
    page.locator("#id_devices").fill(devices.input_value().replace("\nOwner | cf:owner_team", ""))
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert column_set_current().devices[-1].source == "field:device_type.slug"
