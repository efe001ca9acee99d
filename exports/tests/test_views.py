import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from accounts.global_keys import global_key_set
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


def test_page_lists_latest_files_and_history(netbox, client_for):
    run, _ = export_run_request(trigger="web")
    export_run_execute(run=run)
    response = client_for("viewer").get("/exports/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Systems CMDB.xlsx" in page and "/api/exports/latest/Systems%20CMDB.xlsx" in page
    assert f'<a href="/exports/runs/{run.pk}/">#{run.pk}</a>' in page
    assert "Run export now" not in page


def test_run_button_for_users_with_export_run(netbox, client_for, django_capture_on_commit_callbacks):
    client = client_for("operator")
    assert "Run export now" in client.get("/exports/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/exports/run/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("exports:index")
    run = ExportRun.objects.get()
    assert run.trigger == "web" and run.status == "succeeded"
    assert f"Export #{run.pk} queued." in response.content.decode()


def test_viewer_cannot_run(client_for):
    assert client_for("viewer").post("/exports/run/").status_code == 403
    assert not ExportRun.objects.exists()


def test_page_shows_live_status_of_active_run(client_for):
    run, _ = export_run_request(trigger="api")
    page = client_for("viewer").get("/exports/").content.decode()
    assert f'data-run="{run.pk}"' in page


def test_demo_mode_is_announced(client_for, settings):
    settings.NETBOX_DEMO = True
    settings.NETBOX_URL = "http://127.0.0.1:8765"
    assert "Demo mode" in client_for("viewer").get("/exports/").content.decode()


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/exports/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def run_export(**kwargs) -> ExportRun:
    run, _ = export_run_request(trigger="command", **kwargs)
    run = export_run_execute(run=run)
    assert run.status == "succeeded", run.error
    return run


def test_while_a_run_is_queued_the_button_is_disabled_and_names_it(netbox, client_for):
    run, _ = export_run_request(trigger="api")
    page = client_for("operator").get("/exports/").content.decode()
    assert re.search(rf'<button type="submit" id="run-now" disabled[^>]*>#{run.pk} queued</button>', page)
    assert "No successful export yet" not in page
    assert 'id="progress-bar"' in page and 'id="progress-config"' in page


def test_history_gives_exact_change_counts_and_links_to_the_run_page(netbox, client_for):
    run_export()
    for device in netbox.devices[:3]:
        netbox.update_device(device["id"], serial=f"S-{device['id']}")
    second = run_export()
    page = client_for("viewer").get("/exports/").content.decode()
    assert 'title="changed">~3</span>' in page
    assert f'href="/exports/runs/{second.pk}/#changes"' in page
    assert "50+" not in page


def test_run_page_shows_files_timings_log_and_what_changed(netbox, client_for):
    run_export()
    device = netbox.devices[2]
    netbox.update_device(device["id"], serial="NEW-SERIAL-9")
    run = run_export()
    page = client_for("viewer").get(f"/exports/runs/{run.pk}/").content.decode()
    for artifact in run.artifacts.all():
        assert artifact.sha256 in page
        assert f"/api/exports/runs/{run.pk}/artifacts/{artifact.name.replace(' ', '%20')}" in page
    assert "Fetching devices and VMs from NetBox" in page and "<svg" in page and ">save<" not in page
    assert "Compared with export" in page  # the log
    # A name with markup in it, escaped; linked to its history in the CMDB and its page in NetBox.
    history = f"/cmdb/devices/devices-{device['id']}/"
    assert f'<strong><a href="{history}">{escape(device["name"])}</a></strong>' in page
    assert f'href="{netbox.url}/dcim/devices/{device["id"]}/"' in page
    assert "<dt>Last updated</dt>" not in page  # NetBox bumps it on every edit: not repeated under each change
    assert "<dt>Serial number</dt>" in page and "<ins>NEW-SERIAL-9</ins>" in page


def test_run_page_searches_and_filters_the_changes(netbox, client_for):
    run_export()
    netbox.update_device(netbox.devices[0]["id"], serial="S-A")
    netbox.delete_vm(netbox.vms[0]["id"])
    run = run_export()
    client = client_for("viewer")
    by_column = client.get(f"/exports/runs/{run.pk}/", {"q": "serial"}).content.decode()
    assert by_column.count('<tr class="change-') == 1 and "change-changed" in by_column
    removed = client.get(f"/exports/runs/{run.pk}/", {"change": "removed", "kind": "vm"}).content.decode()
    assert removed.count('<tr class="change-') == 1 and "change-removed" in removed
    nothing = client.get(f"/exports/runs/{run.pk}/", {"q": "no-such-thing"}).content.decode()
    assert "Nothing matches these filters." in nothing


def test_run_page_of_a_first_export_says_it_was_not_compared(netbox, client_for):
    run = run_export()
    page = client_for("viewer").get(f"/exports/runs/{run.pk}/").content.decode()
    assert "Not compared: this was the first export" in page


def test_run_page_of_an_unknown_run_is_a_404_and_anonymous_signs_in(client_for, client):
    assert client_for("viewer").get("/exports/runs/999/").status_code == 404
    assert client.get("/exports/runs/1/").status_code == 302


def test_page_names_the_netbox_of_the_global_key_not_the_demo(client_for, settings):
    settings.NETBOX_DEMO = True
    settings.NETBOX_URL = "http://127.0.0.1:8765"
    global_key_set(name="netbox", value="a-token-for-elsewhere-1234", url="https://netbox.example.net")
    page = client_for("viewer").get("/exports/").content.decode()
    assert "Demo mode" not in page
    assert '<code id="netbox-url">https://netbox.example.net</code>' in page
    assert "127.0.0.1:8765" not in page


def test_page_offers_the_users_preferred_dataset_first(netbox, make_user, client):
    run, _ = export_run_request(trigger="api")
    export_run_execute(run=run)
    user = make_user("viewer")
    user.preferences = {"export_dataset": "vms"}
    user.save()
    client.force_login(user)
    page = client.get(reverse("exports:index")).content.decode()
    names = re.findall(r"(netbox_\w+_export\.csv|Systems CMDB\.xlsx|data_quality\.csv)", page)
    assert names[0] == "netbox_vms_export.csv"
