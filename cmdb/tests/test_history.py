"""An object's history: its columns now and every stored change across exports, from the API and the page."""

from __future__ import annotations

import pytest

from exports.models import ExportChange, ExportRun
from exports.services import export_run_execute, export_run_request


def export_now() -> ExportRun:
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    return run


@pytest.fixture
def viewer(client_for):
    return client_for("viewer")


def test_two_changes_between_exports_show_in_order_with_the_run_and_time(export, netbox, viewer):
    device = netbox.devices[3]
    old_serial = device["serial"]
    netbox.update_device(device["id"], serial="HIST-1")
    second = export_now()
    netbox.update_device(device["id"], serial="HIST-2", description="moved to rack 7")
    third = export_now()

    body = viewer.get(f"/api/cmdb/devices/rows/devices-{device['id']}/history/").json()
    assert body["row_id"] == f"devices-{device['id']}" and body["kind"] == "device"
    assert body["name"] == device["name"] and body["row"]["serial_number"] == "HIST-2"
    assert body["netbox_url"] == f"{netbox.url}/dcim/devices/{device['id']}/"
    assert [(e["run"], e["change"]) for e in body["timeline"]] == [(second.pk, "changed"), (third.pk, "changed")]
    first, last = body["timeline"]
    assert first["columns"]["Serial number"] == [old_serial, "HIST-1"]
    assert last["columns"]["Serial number"] == ["HIST-1", "HIST-2"]
    assert last["columns"]["Description"][1] == "moved to rack 7"
    assert first["finished"] < last["finished"]
    # The bare NetBox id and the merged dataset find the same object.
    assert viewer.get(f"/api/cmdb/merged/rows/devices-{device['id']}/history/").json()["timeline"] == body["timeline"]
    assert viewer.get(f"/api/cmdb/devices/rows/{device['id']}/history/").json()["timeline"] == body["timeline"]

    page = viewer.get(f"/cmdb/devices/devices-{device['id']}/")
    html = page.content.decode()
    assert page.status_code == 200 and device["name"] in html
    assert html.index("HIST-1") < html.index("HIST-2")
    assert f"Export #{second.pk}" in html and f"Export #{third.pk}" in html


def test_added_and_removed_objects_have_their_history(export, netbox, viewer):
    new_id = netbox.add_vm(name="hist-new-vm")
    added = export_now()
    netbox.delete_vm(new_id)
    removed = export_now()
    body = viewer.get(f"/api/cmdb/vms/rows/vms-{new_id}/history/").json()
    assert [(e["run"], e["change"]) for e in body["timeline"]] == [(added.pk, "added"), (removed.pk, "removed")]
    assert body["row"] is None and body["name"] == "hist-new-vm"
    page = viewer.get(f"/cmdb/vms/vms-{new_id}/").content.decode()
    assert "not in the newest export" in page and "Removed" in page and "Added" in page


def test_history_errors(export, viewer):
    assert viewer.get("/api/cmdb/devices/rows/devices-999999/history/").status_code == 404
    assert viewer.get("/api/cmdb/devices/rows/vms-1/history/").status_code == 400
    assert viewer.get("/api/cmdb/devices/rows/not-an-id/history/").status_code == 400
    assert viewer.get("/api/cmdb/nope/rows/devices-1/history/").status_code == 404
    assert viewer.get("/cmdb/devices/devices-999999/").status_code == 404


def test_history_needs_export_download(export, client_for, api_client):
    assert api_client.get("/api/cmdb/devices/rows/1/history/").status_code in (401, 403)
    member = client_for("member")
    from django.contrib.auth.models import Group

    Group.objects.get(name="member").permissions.clear()
    assert member.get("/api/cmdb/devices/rows/1/history/").status_code == 403


def test_changes_are_kept_for_the_retention_then_pruned(export, netbox, settings):
    from datetime import timedelta

    from django.utils import timezone

    from exports.changes import export_changes_prune

    netbox.update_device(netbox.devices[0]["id"], serial="KEEP-1")
    old = export_now()
    netbox.update_device(netbox.devices[0]["id"], serial="KEEP-2")
    recent = export_now()
    ExportRun.objects.filter(pk=old.pk).update(finished=timezone.now() - timedelta(days=400))
    settings.EXPORT_CHANGES_KEEP_DAYS = 0  # 0: kept for ever
    assert export_changes_prune() == 0
    settings.EXPORT_CHANGES_KEEP_DAYS = 365
    assert export_changes_prune() == 1
    assert not ExportChange.objects.filter(run=old).exists() and ExportChange.objects.filter(run=recent).exists()
    assert ExportRun.objects.filter(pk=old.pk).exists()  # the run's record stays: only its changes go
