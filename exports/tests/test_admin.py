import pytest

from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


def test_runs_are_read_only_with_a_run_now_button(netbox, client_for, django_capture_on_commit_callbacks):
    client = client_for("admin")
    run, _ = export_run_request(trigger="web")
    export_run_execute(run=run)
    changelist = client.get("/admin/exports/exportrun/")
    assert changelist.status_code == 200 and "Run export now" in changelist.content.decode()
    detail = client.get(f"/admin/exports/exportrun/{run.pk}/change/")
    assert detail.status_code == 200 and "Systems CMDB.xlsx" in detail.content.decode()
    assert client.get("/admin/exports/exportrun/add/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/exports/exportrun/run-now/")
    assert response.status_code == 302
    newest = ExportRun.objects.latest("id")
    assert newest.trigger == "admin" and newest.status == "succeeded"


def test_admin_action_requests_a_run(client_for):
    client = client_for("admin")
    run, _ = export_run_request(trigger="web")
    ExportRun.objects.filter(pk=run.pk).update(status="failed", active=None)
    response = client.post(
        "/admin/exports/exportrun/", {"action": "run_export_now", "_selected_action": [run.pk]}, follow=True
    )
    assert response.status_code == 200
    assert ExportRun.objects.filter(trigger="admin").count() == 1


def test_run_page_shows_progress_timings_and_changes_as_tables_not_json(netbox, client_for):
    client = client_for("admin")
    first, _ = export_run_request(trigger="web")
    export_run_execute(run=first)
    netbox.update_device(netbox.devices[0]["id"], serial="ADMIN-SEEN-7")
    run, _ = export_run_request(trigger="web")
    run = export_run_execute(run=run)
    page = client.get(f"/admin/exports/exportrun/{run.pk}/change/").content.decode()
    assert '<table class="run-table">' in page
    assert "<td>Devices to fetch</td>" in page and "<td>Files written</td><td>5</td>" in page
    assert "<td>Fetching devices and VMs from NetBox</td>" in page and '<svg class="run-bar"' in page
    assert "<strong>Serial number</strong>: " in page and " → ADMIN-SEEN-7" in page
    assert "devices_total" not in page  # no raw JSON
    assert f'href="/exports/runs/{run.pk}/"' in page


def test_run_list_has_compact_columns(netbox, client_for):
    run, _ = export_run_request(trigger="web")
    export_run_execute(run=run)
    page = client_for("admin").get("/admin/exports/exportrun/").content.decode()
    assert "40 / 60" in page and "+100 ~0 -0" in page
    assert 'style="' not in page.split('id="changelist"')[1].split("</form>")[0]
