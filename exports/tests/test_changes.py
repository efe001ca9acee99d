"""What changed per run: computed at export time from the previous and new rows, stored, and served by the API."""

import csv
from pathlib import Path

import pytest
from django.conf import settings

from accounts.global_keys import global_key_set
from devtools.netbox import FakeNetbox
from exports import changes
from exports.models import ExportChange, ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


def run_export(**kwargs) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, **kwargs)
    assert created
    run = export_run_execute(run=run)
    assert run.status == "succeeded", run.error
    return run


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_a_first_export_lists_no_changes_and_says_why(netbox):
    run = run_export()
    assert run.compared is False and not run.object_changes.exists()
    assert "First export: nothing to compare with." in run.log


@pytest.mark.parametrize("force", [False, True], ids=["incremental", "full"])
def test_an_edited_device_is_listed_with_its_changed_columns_old_and_new(netbox, force):
    run_export()
    device = netbox.devices[3]
    old_serial = device["serial"]
    netbox.update_device(device["id"], serial="SERIAL-NEW-1", description="edited in NetBox")
    run = run_export(force=force)
    assert run.mode == ("full" if force else "incremental") and run.compared
    change = ExportChange.objects.get(run=run, kind="device", change="changed")
    assert (change.netbox_id, change.name) == (device["id"], device["name"])
    assert change.fields["Serial number"] == [old_serial, "SERIAL-NEW-1"]
    assert change.fields["Description"][1] == "edited in NetBox"
    assert "Serial number" in change.columns and "Description" in change.columns
    assert "Compared with export" in run.log and "0 added, 1 changed, 0 removed" in run.log


def test_added_and_removed_objects_are_listed_by_name(netbox):
    run_export()
    gone = netbox.vms[5]
    netbox.delete_vm(gone["id"])
    new_id = netbox.add_device(name="zz-brand-new")
    run = run_export()
    listed = {(c.kind, c.change, c.name) for c in run.object_changes.all()}
    assert listed == {("device", "added", "zz-brand-new"), ("vm", "removed", gone["name"])}
    assert run.object_changes.get(change="added").netbox_id == new_id


def test_a_renamed_site_changes_the_rows_of_its_devices_though_netbox_did_not_touch_them(netbox):
    run_export()
    site = netbox.devices[0]["site"]
    netbox.rename("sites", site["id"], "Renamed Site")
    run = run_export()
    changed = run.object_changes.filter(change="changed")
    assert changed.exists()
    assert all(c.fields["Site"] == [site["name"], "Renamed Site"] for c in changed)


def test_nothing_changed_reuses_files_and_lists_nothing(netbox):
    run_export()
    run = run_export()
    assert run.reused_files and run.compared and not run.object_changes.exists()


def test_the_comparison_reads_old_rows_in_the_new_columns_when_the_columns_changed(tmp_path):
    old = write_csv(tmp_path / "old.csv", [["ID", "Name", "Gone"], ["1", "a", "x"], ["2", "b", "y"]])
    new = write_csv(tmp_path / "new.csv", [["Name", "ID", "Added"], ["a", "1", ""], ["B", "2", "z"]])
    found = changes.files_compare("device", old, new)
    assert [(c.change, c.netbox_id, c.fields) for c in found] == [
        ("changed", 2, {"Name": ["b", "B"], "Added": ["", "z"]})
    ]


def test_cells_with_line_breaks_quotes_and_a_bom_are_compared_as_the_csv_reads_them(tmp_path):
    header = ["ID", "Name", "Comments"]
    old = write_csv(
        tmp_path / "old.csv", [header, ["1", "a", 'two\r\nlines, "quoted"'], ["2", "b", "x"], ["3", "c", "y"]]
    )
    new = tmp_path / "new.csv"
    rows = [header, ["1", "a", 'two\r\nlines, "quoted"'], ["2", "b", 'now\nthree\r\nlines "q"'], ["4", "d", ""]]
    write_csv(new, rows)
    new.write_bytes(b"\xef\xbb\xbf" + new.read_bytes())  # as the writers do for Excel
    found = changes.files_compare("vm", old, new)
    assert [(c.change, c.netbox_id, c.name, c.fields) for c in found] == [
        ("added", 4, "d", {}),
        ("changed", 2, "b", {"Comments": ["x", 'now\nthree\r\nlines "q"']}),
        ("removed", 3, "c", {}),
    ]


def test_identical_files_list_nothing(tmp_path):
    rows = [["Name", "ID"], *[[f"n{i}", str(i)] for i in range(1, 50)]]
    assert (
        changes.files_compare("device", write_csv(tmp_path / "a.csv", rows), write_csv(tmp_path / "b.csv", rows)) == []
    )


def test_a_switch_of_netbox_forces_a_full_run_said_in_the_log_and_compares_nothing(netbox):
    first = run_export()
    assert first.netbox_url == netbox.url.rstrip("/")
    with FakeNetbox(devices=5, vms=5, seed=7) as other:
        global_key_set(name="netbox", value=other.token, url=other.url)
        run = run_export()
    assert run.mode == "full" and run.netbox_url == other.url.rstrip("/")
    assert f"NetBox changed from {first.netbox_url} to {run.netbox_url}: a full export." in run.log
    assert f"Full export from {run.netbox_url}" in run.log
    assert (run.devices, run.vms, run.compared) == (5, 5, False)
    assert "it came from another NetBox" in run.log


def test_progress_records_the_totals_from_netbox_and_rows_written_once(netbox):
    run = run_export()
    progress = run.progress
    assert (progress["devices_total"], progress["vms_total"]) == (40, 60)
    assert (progress["devices_fetched"], progress["vms_fetched"]) == (40, 60)
    assert progress["rows_written"] == progress["rows_total"] == 100
    assert progress["files_written"] == progress["files_total"] == 5  # with data_quality.csv


def test_incremental_progress_totals_are_the_objects_to_fetch(netbox):
    run_export()
    netbox.update_device(netbox.devices[1]["id"], serial="X-1")
    run = run_export()
    assert (run.progress["devices_total"], run.progress["vms_total"]) == (1, 0)


# --- API -------------------------------------------------------------------------------------------------------


@pytest.fixture
def edited_run(netbox) -> ExportRun:
    run_export()
    for device in netbox.devices[:3]:
        netbox.update_device(device["id"], serial=f"S-{device['id']}")
    netbox.delete_vm(netbox.vms[0]["id"])
    return run_export()


def test_api_lists_a_runs_changes_paginated(edited_run, client_for):
    client = client_for("viewer")
    body = client.get(f"/api/exports/runs/{edited_run.pk}/changes/", {"limit": 2}).json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]
    first = body["results"][0]
    assert first["kind"] == "device" and first["change"] == "changed"
    assert first["columns"]["Serial number"][1] == f"S-{first['netbox_id']}"


def test_api_filters_changes_by_kind_change_and_text(edited_run, client_for):
    client = client_for("viewer")
    url = f"/api/exports/runs/{edited_run.pk}/changes/"
    assert client.get(url, {"kind": "vm"}).json()["count"] == 1
    assert client.get(url, {"change": "changed"}).json()["count"] == 3
    assert client.get(url, {"q": "serial"}).json()["count"] == 3
    assert client.get(url, {"kind": "vm", "change": "added"}).json()["count"] == 0


@pytest.mark.parametrize(
    "params", [{"kind": "router"}, {"change": "moved"}, {"limit": "lots"}, {"offset": "-1"}, {"q": "x" * 201}]
)
def test_api_rejects_bad_change_filters_with_a_400(edited_run, client_for, params):
    response = client_for("viewer").get(f"/api/exports/runs/{edited_run.pk}/changes/", params)
    assert response.status_code == 400
    assert set(response.json()) <= {"kind", "change", "limit", "offset", "q"}


def test_api_caps_the_page_size(edited_run, client_for):
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from exports.api.views import StrictLimitOffsetPagination

    request = Request(APIRequestFactory().get("/", {"limit": "100000"}))
    assert StrictLimitOffsetPagination().get_limit(request) == 500
    response = client_for("viewer").get(f"/api/exports/runs/{edited_run.pk}/changes/", {"limit": 100000})
    assert response.status_code == 200 and len(response.json()["results"]) == 4


def test_api_changes_of_an_unknown_run_is_a_404_and_anonymous_is_refused(client_for, api_client):
    assert client_for("viewer").get("/api/exports/runs/999/changes/").status_code == 404
    assert api_client.get("/api/exports/runs/999/changes/").status_code in (401, 403)


def test_an_incremental_run_that_copies_records_lists_what_comparing_the_whole_files_lists(netbox):
    """The run compares only the records it made anew or dropped (``changes.delta_compare``): the same changes as
    comparing the previous and new CSVs whole, for edits, an object touched without a change, deletions, additions
    and a contacts change NetBox did not stamp on the device."""
    first = run_export()
    netbox.update_device(netbox.devices[3]["id"], serial="SERIAL-NEW-2", description="edited")
    netbox.update_vm(netbox.vms[4]["id"], description=netbox.vms[4]["description"])  # touched, same values
    netbox.update_vm(netbox.vms[9]["id"], vcpus=48)
    netbox.delete_device(netbox.devices[6]["id"])
    netbox.delete_vm(netbox.vms[0]["id"])
    netbox.add_device(name="aa-added")
    assigned = {a["object_id"] for a in netbox.contact_assignments if a["object_type"] == "dcim.device"}
    bare = next(d for d in netbox.devices if d["id"] not in assigned)
    existing = next(a for a in netbox.contact_assignments if a["object_type"] == "dcim.device")
    netbox.add_contact_assignment("dcim.device", bare["id"], existing["contact"]["id"], existing["role"]["id"])
    run = run_export()
    assert (
        run.mode == "incremental" and "The rows of the objects NetBox did not touch are the previous run's." in run.log
    )

    def paths(of: ExportRun) -> dict[str, Path]:
        return {a.kind: Path(settings.DATA_DIR) / a.path for a in of.artifacts.all()}

    expected = [
        (item.kind, item.change, item.netbox_id, item.name, item.fields)
        for kind, file_kind in changes.FILES.items()
        for item in changes.files_compare(kind, paths(first)[file_kind], paths(run)[file_kind])
    ]
    stored = [
        (c.kind, c.change, c.netbox_id, c.name, c.fields) for c in ExportChange.objects.filter(run=run).order_by("pk")
    ]
    assert stored == expected
    assert {(kind, change) for kind, change, *_ in stored} >= {
        ("device", "changed"),
        ("device", "removed"),
        ("device", "added"),
        ("vm", "changed"),
        ("vm", "removed"),
    }
    assert bare["id"] in {netbox_id for kind, change, netbox_id, *_ in stored if change == "changed"}


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-id-order", "out-of-order"])
def test_the_files_walked_side_by_side_list_what_comparing_their_sets_of_records_lists(tmp_path, shuffled):
    """``files_compare`` walks both files at once (records in id order); files out of order, or with a record
    repeated right after itself (a listing shifted under the walk), list the same as comparing sets of records."""
    import random

    from exports.csvfiles import csv_records

    header = ["ID", "Name", "Serial"]
    old_rows = [[str(i), f"n{i}", f"s{i}"] for i in range(1, 200)]
    new_rows = [row for row in old_rows if int(row[0]) % 17]  # removed
    new_rows = [[i, n, "changed" if int(i) % 13 == 0 else s] for i, n, s in new_rows]  # changed
    new_rows += [[str(i), f"n{i}", "added"] for i in range(200, 205)]  # added
    new_rows.insert(50, new_rows[49])  # repeated right after itself
    if shuffled:
        random.Random(3).shuffle(new_rows)
    old = write_csv(tmp_path / "old.csv", [header, *old_rows])
    new = write_csv(tmp_path / "new.csv", [header, *new_rows])
    old_set, new_set = set(list(csv_records(old))[1:]), set(list(csv_records(new))[1:])
    expected = changes.records_compare(
        "device", (old, header), (new, header), sorted(old_set - new_set), sorted(new_set - old_set)
    )
    found = changes.files_compare("device", old, new)
    assert [(c.change, c.netbox_id, c.fields) for c in found] == [(c.change, c.netbox_id, c.fields) for c in expected]
    assert {c.change for c in found} == {"added", "changed", "removed"}
