"""The home dashboard: latest export, what changed, failures in red, NetBox's effective URL, quick actions."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from accounts.global_keys import global_key_set
from exports.dashboard import dashboard_get
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


def _run(netbox) -> ExportRun:
    run, _ = export_run_request(trigger="web")
    return export_run_execute(run=run)


def test_home_shows_the_latest_export_with_its_files_and_counts(netbox, client_for):
    run = _run(netbox)
    page = client_for("viewer").get("/").content.decode()
    assert run.status == "succeeded"
    assert f"Export #{run.pk}" in page and 'id="latest-files"' in page
    assert "/api/exports/latest/Systems%20CMDB.xlsx" in page
    assert f'<span class="value">{run.devices}</span>' in page and f'<span class="value">{run.vms}</span>' in page
    assert 'id="alert-run-failed"' not in page


def test_home_shows_how_counts_changed_since_the_export_before(netbox, client_for):
    _run(netbox)
    netbox.add_device(name="dash-new-1")
    netbox.add_device(name="dash-new-2")
    second = _run(netbox)
    board = dashboard_get()
    devices = next(c for c in board.counts if c.label == "Devices")
    assert board.last_success == second and devices.delta == 2
    assert '<span class="delta-up">+2</span>' in client_for("viewer").get("/").content.decode()


def test_home_offers_the_preferred_dataset_first(netbox, client_for, make_user):
    _run(netbox)
    user = make_user("viewer", username="vic")
    user.preferences = {"export_dataset": "vms"}
    user.save()
    client = Client()
    client.force_login(user)
    page = client.get("/").content.decode()
    body = page[page.index("<tbody>", page.index('id="latest-files"')) :]
    first_row = body[: body.index("</tr>")]
    assert "netbox_vms_export.csv" in first_row
    assert "your default" in first_row


def test_a_failed_last_run_is_a_red_alert_until_a_run_succeeds(netbox, client_for):
    good = _run(netbox)
    netbox.fail("/api/dcim/devices/", status=500, times=50)
    failed = _run(netbox)
    assert failed.status == "failed"
    page = client_for("viewer").get("/").content.decode()
    assert 'class="alert-error" id="alert-run-failed"' in page and f"Export #{failed.pk} failed" in page
    assert f"The files of export #{good.pk} are still offered." in page
    netbox.clear_faults()
    _run(netbox)
    assert 'id="alert-run-failed"' not in client_for("viewer").get("/").content.decode()


def test_netbox_url_shown_is_the_global_keys_when_set(client_for, settings):
    settings.NETBOX_URL = "http://netbox.from-env.example"
    assert dashboard_get().netbox_url == "http://netbox.from-env.example"
    global_key_set(name="netbox", value="tok", url="https://netbox.from-key.example")
    page = client_for("viewer").get("/").content.decode()
    assert 'id="netbox-url" rel="noopener">https://netbox.from-key.example<' in page


def test_unconfigured_netbox_is_a_red_alert(client_for, settings):
    settings.NETBOX_URL = ""
    page = client_for("viewer").get("/").content.decode()
    assert "NetBox is not configured." in page and 'class="alert-error" id="alert-netbox"' in page


def test_no_export_yet_and_an_active_run_disables_the_run_button(client_for):
    client = client_for("operator")
    assert 'id="no-export"' in client.get("/").content.decode()
    run, _ = export_run_request(trigger="api")
    page = client.get("/").content.decode()
    assert f"Export #{run.pk} queued" in page and 'id="run-now" disabled' in page


def test_times_on_the_dashboard_are_in_the_users_time_zone(netbox, make_user):
    run = _run(netbox)
    ExportRun.objects.filter(pk=run.pk).update(finished=datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    user = make_user("viewer", username="tokyo")
    user.preferences = {"time_zone": "Asia/Tokyo"}
    user.save()
    client = Client()
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "2026-01-15 21:00 JST" in page


def test_home_shows_the_data_quality_panel_of_the_latest_export(netbox, client_for):
    assert "No data-quality report yet" in client_for("viewer").get("/").content.decode()
    run = _run(netbox)
    page = client_for("viewer").get("/").content.decode()
    assert 'id="quality-panel"' in page and f"After export #{run.pk}" in page


def test_home_has_no_quality_panel_for_users_who_may_not_download(client, make_user):
    user = make_user("viewer")
    user.groups.clear()
    client.force_login(user)
    assert 'id="quality-panel"' not in client.get("/").content.decode()
