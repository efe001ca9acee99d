"""The export pipeline end to end against a NetBox-shaped server on loopback."""

import csv
import os
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
from django.core.checks import run_checks
from django.utils import timezone
from django_q.models import Schedule

from enreach.forked import FORK_AVAILABLE
from exports import columns, csvfiles, fetch, files, selectors
from exports.files import export_files_prune
from exports.models import ContactSnapshot, ExportRun, NetboxSnapshot
from exports.schedule import SCHEDULE_NAME, export_schedule_sync
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db

FILES = {
    "netbox_devices_export.csv",
    "netbox_vms_export.csv",
    "netbox_merged_export.csv",
    "Systems CMDB.xlsx",
    "data_quality.csv",
}


def run_export(**kwargs) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, **kwargs)
    assert created
    return export_run_execute(run=run)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def files_of(run: ExportRun) -> dict[str, Path]:
    return {artifact.name: selectors.artifact_path(artifact) for artifact in run.artifacts.all()}


# What an incremental run logs when the rows of the objects NetBox did not touch are the previous run's.
REUSED_ROWS = "The rows of the objects NetBox did not touch are the previous run's."


def workbook_values(path: Path) -> list[tuple]:
    book = openpyxl.load_workbook(path, read_only=True)
    return list(book["NetBox Inventory"].iter_rows(values_only=True))


def test_full_export_writes_every_file_with_checksums(netbox):
    run = run_export()
    assert run.status == "succeeded", run.error
    assert (run.mode, run.devices, run.vms, run.added, run.changed, run.removed) == ("full", 40, 60, 100, 0, 0)
    files = files_of(run)
    assert set(files) == FILES
    for artifact in run.artifacts.all():
        data = files[artifact.name].read_bytes()
        assert artifact.size == len(data)
        import hashlib

        assert artifact.sha256 == hashlib.sha256(data).hexdigest()
    devices = read_csv(files["netbox_devices_export.csv"])
    assert devices[0] == list(columns.DEVICE_COLUMNS) and len(devices) == 41
    vms = read_csv(files["netbox_vms_export.csv"])
    assert vms[0] == list(columns.VM_COLUMNS) and len(vms) == 61
    merged = read_csv(files["netbox_merged_export.csv"])
    assert merged[0] == list(columns.MERGED_COLUMNS)
    assert [row[-1] for row in merged[1:]] == ["devices"] * 40 + ["vms"] * 60
    rows = workbook_values(files["Systems CMDB.xlsx"])
    assert list(rows[0]) == list(columns.WORKBOOK_COLUMNS) and len(rows) == 101
    # Every request was a bulk listing: no per-object detail call, no config-context rendering.
    assert netbox.stats.get("detail_requests", 0) == 0
    assert netbox.stats.get("config_context_renders", 0) == 0
    assert run.netbox_requests == len(netbox.requests)
    assert NetboxSnapshot.objects.count() == 100
    assert set(run.timings) == {
        *("lookups", "fetch", "stream", "write", "save", "snapshots", "quality", "workbook", "workbook_wait"),
        "workbook_companions_wait",
    }
    assert selectors.artifact_latest(name="Systems CMDB.xlsx").run == run


def test_values_reach_the_files_exactly(netbox):
    device = netbox.devices[0]
    run = run_export()
    files = files_of(run)
    header, *rows = read_csv(files["netbox_devices_export.csv"])
    by_id = {row[header.index("ID")]: dict(zip(header, row, strict=True)) for row in rows}
    first = by_id[str(device["id"])]
    assert first["Name"] == device["name"]
    assert first["Status"] == device["status"]["label"]
    assert first["Serial number"] == device["serial"]
    assert first["Last updated"] == device["last_updated"][:19] + "Z"
    book_rows = workbook_values(files["Systems CMDB.xlsx"])
    book_header = book_rows[0]
    book_first = dict(zip(book_header, next(r for r in book_rows[1:] if r[book_header.index("ID")] == device["id"])))
    assert isinstance(book_first["ID"], int)
    assert book_first["Serial number"] == device["serial"]


def test_incremental_without_changes_reuses_the_files_and_skips_the_full_listing(netbox):
    first = run_export()
    netbox.reset_log()
    second = run_export()
    assert second.status == "succeeded", second.error
    assert (second.mode, second.reused_files, second.added, second.changed, second.removed) == (
        "incremental",
        True,
        0,
        0,
        0,
    )
    assert {a.name: a.sha256 for a in second.artifacts.all()} == {a.name: a.sha256 for a in first.artifacts.all()}
    # Per kind: one count (limit=1) and one listing of what changed since the newest snapshot; no full listing.
    listing = [r for r in netbox.requests if r.path.startswith(("/api/dcim/devices/", "/api/virtualization/"))]
    assert len(listing) == 4
    assert sorted(r.query.get("limit") == ["1"] or "last_updated__gte" in r.query for r in listing) == [True] * 4


def test_a_full_export_fetches_devices_and_vms_at_once(netbox, settings):
    settings.NETBOX_PAGE_SIZE = 5
    # The devices' eight pages take 1.6 s: time enough for the VMs' first request, even on a loaded machine
    # (at 0.01 s a page the devices were done before the VM side had started when CI's load was 10).
    netbox.latency = 0.2
    run = run_export(force=True)
    assert run.status == "succeeded" and (run.devices, run.vms) == (40, 60)
    paths = [r.path for r in netbox.requests if r.query.get("limit") != ["1"]]  # not the counts giving the totals
    device_pages = [i for i, path in enumerate(paths) if path == "/api/dcim/devices/"]
    vm_pages = [i for i, path in enumerate(paths) if path == "/api/virtualization/virtual-machines/"]
    # The VMs' first page did not wait for the devices' last.
    assert len(device_pages) == 8 and vm_pages[0] < device_pages[-1]


def test_incremental_finds_deletions_through_the_count(netbox):
    run_export()
    deleted = netbox.devices[7]
    netbox.delete_device(deleted["id"])
    netbox.reset_log()
    run = run_export()
    assert (run.mode, run.removed, run.devices) == ("incremental", 1, 39)
    assert run.changes["devices"]["removed"] == [deleted["name"]]
    # The count showed a deletion; 40 devices are one range, listed (id and last updated only) to find which one.
    full_listing = [
        r
        for r in netbox.requests
        if r.path == "/api/dcim/devices/" and "last_updated__gte" not in r.query and r.query.get("limit") != ["1"]
    ]
    assert len(full_listing) == 1 and full_listing[0].query["fields"] == ["id,last_updated"]
    assert full_listing[0].query["id__gte"] == [str(netbox.devices[0]["id"])]


def test_incremental_finds_deletions_by_counting_id_ranges(netbox, monkeypatch):
    monkeypatch.setattr(fetch, "RANGE_LISTED", 4)  # 40 devices: ranges halved down to 4 ids or fewer
    run_export()
    gone = [netbox.devices[3], netbox.devices[30]]
    for device in gone:
        netbox.delete_device(device["id"])
    netbox.delete_vm(netbox.vms[11]["id"])
    netbox.update_device(netbox.devices[20]["id"], serial="CHANGED-005")
    netbox.reset_log()
    run = run_export()
    assert run.status == "succeeded", run.error
    assert (run.mode, run.removed, run.changed, run.devices, run.vms) == ("incremental", 3, 1, 38, 59)
    assert run.changes["devices"]["removed"] == sorted(device["name"] for device in gone)
    listings = [
        r
        for r in netbox.requests
        if r.path == "/api/dcim/devices/" and r.query.get("fields") == ["id,last_updated"] and "id__gte" in r.query
    ]
    # Only small ranges were listed, never the whole listing.
    assert listings and all(int(r.query["id__lt"][0]) - int(r.query["id__gte"][0]) <= 8 for r in listings)
    unranged = [
        r
        for r in netbox.requests
        if r.path == "/api/dcim/devices/" and r.query.get("fields") == ["id,last_updated"]
        and "id__gte" not in r.query and "last_updated__gte" not in r.query
    ]  # fmt: skip
    assert unranged == []
    assert_same_as_a_full_export(run)


def test_many_deletions_list_every_id_instead_of_searching(netbox, monkeypatch):
    monkeypatch.setattr(fetch, "DELETIONS_SEARCHED", 1)
    run_export()
    netbox.delete_device(netbox.devices[3]["id"])
    netbox.delete_device(netbox.devices[9]["id"])
    netbox.reset_log()
    run = run_export()
    assert (run.mode, run.removed, run.devices) == ("incremental", 2, 38)
    listed = [r for r in netbox.requests if r.path == "/api/dcim/devices/" and r.query.get("limit") != ["1"]]
    assert any("id__gte" not in r.query and "last_updated__gte" not in r.query for r in listed)
    assert_same_as_a_full_export(run)


def test_incremental_output_equals_a_full_export_of_the_same_state(netbox):
    run_export()
    changed_id = netbox.devices[3]["id"]
    netbox.update_device(changed_id, serial="CHANGED-001", description="edited")
    netbox.delete_vm(netbox.vms[5]["id"])
    added_id = netbox.add_device(name="zz-new-device")
    incremental = run_export()
    assert incremental.status == "succeeded", incremental.error
    assert incremental.mode == "incremental" and not incremental.reused_files
    assert REUSED_ROWS in incremental.log  # the previous run's rows served for the objects NetBox did not touch
    assert (incremental.added, incremental.changed, incremental.removed) == (1, 1, 1)
    assert incremental.changes["devices"]["added"] == ["zz-new-device"]
    # Only the changed and new objects were fetched in full.
    by_id = [r for r in netbox.requests if "id" in r.query and r.path == "/api/dcim/devices/"]
    assert by_id and sorted(int(i) for r in by_id for i in r.query["id"]) == sorted([changed_id, added_id])
    full = run_export(force=True)
    assert full.mode == "full" and (full.added, full.changed, full.removed) == (0, 0, 0)
    incremental_files, full_files = files_of(incremental), files_of(full)
    for name in FILES - {"Systems CMDB.xlsx"}:
        assert incremental_files[name].read_bytes() == full_files[name].read_bytes(), name
    assert workbook_values(incremental_files["Systems CMDB.xlsx"]) == workbook_values(full_files["Systems CMDB.xlsx"])
    merged = read_csv(incremental_files["netbox_merged_export.csv"])
    assert any(row[0] == "zz-new-device" for row in merged)
    assert len(merged) == 1 + 41 + 59


def assert_same_as_a_full_export(incremental: ExportRun) -> None:
    full = run_export(force=True)
    incremental_files, full_files = files_of(incremental), files_of(full)
    for name in FILES - {"Systems CMDB.xlsx"}:
        assert incremental_files[name].read_bytes() == full_files[name].read_bytes(), name


def contacts_of(run: ExportRun, object_id: int) -> str:
    header, *rows = read_csv(files_of(run)["netbox_devices_export.csv"])
    return next(r for r in rows if r[header.index("ID")] == str(object_id))[header.index("Contacts")]


def test_incremental_runs_do_not_list_every_contact_assignment_when_nothing_changed(netbox):
    first = run_export()
    assert ContactSnapshot.objects.count() == 1
    netbox.reset_log()
    second = run_export()
    assert second.mode == "incremental" and second.reused_files
    assignments = [r for r in netbox.requests if r.path == "/api/tenancy/contact-assignments/"]
    # Per object type: a count (limit=1) and what changed since the newest assignment; nothing else.
    assert len(assignments) == 4
    assert all(r.query.get("limit") == ["1"] or "last_updated__gte" in r.query for r in assignments)
    assert {a.sha256 for a in second.artifacts.all()} == {a.sha256 for a in first.artifacts.all()}


@pytest.mark.parametrize("kind", ["contacts", "contact_roles"])
def test_a_renamed_contact_or_role_alone_reaches_incremental_output(netbox, kind):
    # NetBox bumps neither the device's nor the assignment's last_updated when a contact or role is renamed.
    run_export()
    assignment = next(a for a in netbox.contact_assignments if a["object_type"] == "dcim.device")
    target = assignment["contact" if kind == "contacts" else "role"]
    netbox.rename(kind, target["id"], "Renamed Person")
    run = run_export()
    assert run.status == "succeeded" and run.mode == "incremental" and not run.reused_files
    assert REUSED_ROWS in run.log  # the rows whose Contacts cell changed are made again from their snapshots
    assert "Renamed Person" in contacts_of(run, assignment["object_id"])
    assert_same_as_a_full_export(run)


def test_a_token_that_cannot_read_contacts_still_exports_them(netbox, caplog):
    # NetBox answers 403 for a model the token has no view permission on; the assignments carry the names anyway.
    netbox.fail("/api/tenancy/contacts/", status=403, times=10, body={"detail": "You do not have permission."})
    first = run_export()
    assert first.status == "succeeded", first.error
    assert "Contacts will be listed in full on every run" in caplog.text
    assignment = next(a for a in netbox.contact_assignments if a["object_type"] == "dcim.device")
    assert assignment["contact"]["name"] in contacts_of(first, assignment["object_id"])
    netbox.reset_log()
    second = run_export()
    assert second.status == "succeeded" and second.mode == "incremental"
    listed = [r for r in netbox.requests if r.path == "/api/tenancy/contact-assignments/" and "limit" in r.query]
    assert any(r.query["limit"] != ["1"] and "last_updated__gte" not in r.query for r in listed)


def test_added_and_removed_contact_assignments_reach_incremental_output(netbox):
    run_export()
    assigned = {a["object_id"] for a in netbox.contact_assignments if a["object_type"] == "dcim.device"}
    bare = next(d for d in netbox.devices if d["id"] not in assigned)
    existing = next(a for a in netbox.contact_assignments if a["object_type"] == "dcim.device")
    added = netbox.add_contact_assignment("dcim.device", bare["id"], existing["contact"]["id"], existing["role"]["id"])
    run = run_export()
    assert run.mode == "incremental" and existing["contact"]["name"] in contacts_of(run, bare["id"])
    assert REUSED_ROWS in run.log and run.changed == 0  # NetBox did not touch the device; its row is made again
    assert_same_as_a_full_export(run)

    netbox.delete_contact_assignment(added)
    run = run_export()
    assert run.mode == "incremental" and contacts_of(run, bare["id"]) == ""
    assert_same_as_a_full_export(run)


def test_deleting_an_object_with_contacts_keeps_reusing_the_other_rows(netbox):
    run_export()
    assigned = next(a for a in netbox.contact_assignments if a["object_type"] == "virtualization.virtualmachine")
    netbox.delete_vm(assigned["object_id"])
    netbox.update_device(netbox.devices[2]["id"], serial="CHANGED-004")
    run = run_export()
    assert run.status == "succeeded", run.error
    assert run.mode == "incremental" and REUSED_ROWS in run.log and (run.changed, run.removed) == (1, 1)
    assert_same_as_a_full_export(run)


@pytest.mark.parametrize("kind", ["tenants", "sites"])
def test_a_renamed_site_or_tenant_reaches_incremental_output(netbox, kind):
    # NetBox does not bump last_updated on the devices of a renamed site or tenant.
    run_export()
    column = {"tenants": "Tenant", "sites": "Site"}[kind]
    target = netbox.devices[0][kind[:-1]]
    netbox.rename(kind, target["id"], "Renamed & Co")
    incremental = run_export()
    assert incremental.mode == "incremental" and incremental.changed == 0
    assert REUSED_ROWS not in incremental.log  # rows of devices NetBox did not touch changed: all made again
    full = run_export(force=True)
    incremental_files, full_files = files_of(incremental), files_of(full)
    for name in FILES - {"Systems CMDB.xlsx"}:
        assert incremental_files[name].read_bytes() == full_files[name].read_bytes(), name
    header, *rows = read_csv(incremental_files["netbox_devices_export.csv"])
    first = next(r for r in rows if r[header.index("ID")] == str(netbox.devices[0]["id"]))
    assert first[header.index(column)] == "Renamed & Co"


def test_incremental_runs_reuse_rows_across_a_run_that_reused_the_files(netbox):
    run_export()
    unchanged = run_export()
    assert unchanged.reused_files  # it links the previous run's row spools too
    netbox.update_device(netbox.devices[7]["id"], serial="AFTER-A-REUSED-RUN")
    netbox.delete_device(netbox.devices[0]["id"])
    netbox.delete_device(netbox.devices[-1]["id"])
    netbox.add_vm(name="zz-new-vm")
    run = run_export()
    assert run.status == "succeeded", run.error
    assert run.mode == "incremental" and REUSED_ROWS in run.log
    assert (run.added, run.changed, run.removed) == (1, 1, 2)
    assert_same_as_a_full_export(run)


CSV_INDEXES = (".netbox_devices_export.csv.index", ".netbox_vms_export.csv.index", ".netbox_merged_export.csv.index")


@pytest.mark.parametrize("indexes", ["kept", "missing", "damaged"])
@pytest.mark.parametrize(("before", "after"), [(True, True), (False, True), (True, False)])
def test_reused_rows_copy_the_previous_records_only_when_written_alike(
    netbox, settings, monkeypatch, before, after, indexes
):
    # EXPORT_CSV_EXCEL_SAFE changes the records (a BOM, a quote before a formula), not the rows.
    settings.EXPORT_CSV_EXCEL_SAFE = before
    netbox.update_device(netbox.devices[5]["id"], name="=HYPERLINK(1)", description='-minus, "quoted"\nlines')
    first = run_export()
    folder = files_of(first)["netbox_devices_export.csv"].parent
    for name in CSV_INDEXES:  # each CSV's index: where its records start (exports.csvfiles.csv_indexed)
        if indexes == "missing":
            (folder / name).unlink()
        elif indexes == "damaged":
            data = (folder / name).read_bytes()
            (folder / name).write_bytes(data[:-16] + bytes(8) + data[-8:])
    settings.EXPORT_CSV_EXCEL_SAFE = after
    copied: list[str] = []
    spans: list[str] = []
    records, span = files.csv_records, csvfiles.CsvIndexed.span
    monkeypatch.setattr(files, "csv_records", lambda path: copied.append(path.name) or records(path))
    monkeypatch.setattr(csvfiles.CsvIndexed, "span", lambda self, *a: spans.append(self.path.name) or span(self, *a))
    netbox.update_device(netbox.devices[0]["id"], serial="CHANGED-FIRST")
    netbox.update_device(netbox.devices[7]["id"], serial="CHANGED-006")
    netbox.delete_vm(netbox.vms[2]["id"])
    netbox.delete_vm(netbox.vms[-1]["id"])
    netbox.add_device(name="zz-added")
    run = run_export()
    assert run.status == "succeeded", run.error
    assert run.mode == "incremental" and REUSED_ROWS in run.log
    merged = "netbox_merged_export.csv"
    if before != after:
        assert copied == spans == []
    elif indexes == "kept":  # each run of reused records copied as one range of bytes, none read record by record
        assert copied == []
        assert sorted(set(spans)) == ["netbox_devices_export.csv", "netbox_merged_export.csv", "netbox_vms_export.csv"]
        # Runs of records between the changes: devices 1-6, 8-, VMs 0-1, 3-, in both CSVs (and a run per batch).
        assert len(spans) < 12
    else:  # each kind's records are copied from its CSV, then from its part of the merged CSV
        assert copied == ["netbox_devices_export.csv", "netbox_vms_export.csv", merged, merged] and spans == []
    # The run wrote its own indexes, which the next run reads.
    assert all((files_of(run)[merged].parent / name).is_file() for name in CSV_INDEXES)
    assert_same_as_a_full_export(run)


@pytest.mark.parametrize("damage", ["missing", "foreign", "no contacts stored"])
def test_an_incremental_run_without_usable_previous_rows_makes_every_row_again(netbox, damage):
    first = run_export()
    folder = files_of(first)["netbox_devices_export.csv"].parent
    if damage == "missing":
        (folder / ".vm.rows").unlink()
    elif damage == "no contacts stored":  # which contacts the rows hold is unknown
        ContactSnapshot.objects.all().delete()
    else:  # rows made under another key (another version of the transform, say)
        (folder / ".rows.json").write_text('{"key": "another", "device": 40, "vm": 60}', encoding="utf-8")
    netbox.update_device(netbox.devices[3]["id"], serial="CHANGED-002")
    run = run_export()
    assert run.status == "succeeded", run.error
    assert run.mode == "incremental" and run.changed == 1 and REUSED_ROWS not in run.log
    assert_same_as_a_full_export(run)


def test_incremental_runs_keep_only_the_newest_runs_row_spools(netbox):
    first = run_export()
    netbox.update_device(netbox.devices[3]["id"], serial="CHANGED-003")
    second = run_export()
    assert REUSED_ROWS in second.log
    first_folder = files_of(first)["netbox_devices_export.csv"].parent
    second_folder = files_of(second)["netbox_devices_export.csv"].parent
    assert not list(first_folder.glob(".*.rows")) and not (first_folder / ".rows.json").exists()
    kept = [".device.rows", ".quality.rows", ".vm.rows", ".workbook.rows"]  # the data-quality report's too
    assert sorted(path.name for path in second_folder.glob(".*.rows")) == kept


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("revoked", "Invalid v1 token"),
        ("server_error", "500"),
        ("bad_json", "JSON"),
    ],
)
def test_failure_keeps_the_last_good_export(netbox, fault, reason):
    good = run_export()
    good_files = {name: path.read_bytes() for name, path in files_of(good).items()}
    netbox.update_device(netbox.devices[0]["id"], serial="would-change")
    if fault == "revoked":
        netbox.revoke_token()
    elif fault == "server_error":
        netbox.fail("/api/dcim/devices/", status=500, times=50)
    else:
        netbox.bad_json("/api/dcim/devices/", times=50)
    failed = run_export(force=True)
    assert failed.status == "failed"
    assert reason.lower() in failed.error.lower()
    assert "Failed:" in failed.log
    assert selectors.export_run_last_success() == good
    assert {name: path.read_bytes() for name, path in files_of(good).items()} == good_files
    assert not (Path(good_files and files_of(good)["Systems CMDB.xlsx"]).parent.parent / f"{failed.pk:06d}").exists()
    assert not failed.artifacts.exists()


def test_a_crash_while_writing_keeps_the_last_good_export(netbox, monkeypatch):
    good = run_export()
    before = {name: path.read_bytes() for name, path in files_of(good).items()}
    netbox.update_device(netbox.devices[0]["id"], serial="new")

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(files, "write_workbook_streamed", explode)
    failed = run_export()
    assert failed.status == "failed" and failed.error == "RuntimeError: disk on fire"
    assert {name: path.read_bytes() for name, path in files_of(good).items()} == before
    # The snapshots were not advanced: the next run still sees the change.
    monkeypatch.undo()
    again = run_export()
    assert again.status == "succeeded" and again.changed == 1


@pytest.mark.skipif(not FORK_AVAILABLE, reason="the workbook is written in a forked child only where fork exists")
def test_a_writer_process_that_dies_fails_the_run_and_keeps_the_last_good_export(netbox, monkeypatch):
    good = run_export()
    before = {name: path.read_bytes() for name, path in files_of(good).items()}
    netbox.update_device(netbox.devices[0]["id"], serial="newer")
    monkeypatch.setattr(files, "write_workbook_streamed", lambda *args, **kwargs: os._exit(9))  # as if OOM-killed
    failed = run_export()
    assert failed.status == "failed"
    assert failed.error == "The process writing the workbook ended without a result (exit code 9)."
    assert {name: path.read_bytes() for name, path in files_of(good).items()} == before
    assert selectors.export_run_last_success() == good


def test_unconfigured_netbox_fails_with_a_clear_reason(settings, tmp_path):
    settings.NETBOX_URL = ""
    settings.DATA_DIR = tmp_path
    run = run_export()
    assert run.status == "failed"
    assert "NETBOX_URL" in run.error


def test_only_one_run_is_active_at_a_time(db):
    first, created = export_run_request(trigger="api")
    second, created_again = export_run_request(trigger="web")
    assert created and not created_again and second == first
    first.status = "failed"
    first.active = None
    first.save()
    third, created = export_run_request(trigger="web")
    assert created and third != first


def test_stale_runs_are_reaped_so_they_cannot_block_exports(db, settings):
    settings.EXPORT_STALE_AFTER = 60
    stuck, _ = export_run_request(trigger="api")
    ExportRun.objects.filter(pk=stuck.pk).update(
        status="running", created=timezone.now() - timedelta(hours=2), heartbeat=timezone.now() - timedelta(hours=1)
    )
    _, created = export_run_request(trigger="api")
    assert created
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "Abandoned" in stuck.error


def test_a_run_delivered_twice_executes_once(netbox):
    run, _ = export_run_request(trigger="api")
    assert export_run_execute(run=run).status == "succeeded"
    requests = len(netbox.requests)
    assert export_run_execute(run=run).status == "succeeded"
    assert len(netbox.requests) == requests


def test_old_run_folders_are_pruned(netbox, settings):
    settings.EXPORT_KEEP_RUNS = 2
    settings.EXPORT_KEEP_HOURS = 0
    runs = [run_export(force=True) for _ in range(3)]
    assert not runs[0].artifacts.exists()
    assert not (Path(settings.DATA_DIR) / "runs" / f"{runs[0].pk:06d}").exists()
    assert all(path.exists() for path in files_of(runs[2]).values())


def test_retention_never_prunes_the_last_runs_nor_a_young_one(netbox, settings):
    settings.EXPORT_KEEP_RUNS = 2
    settings.EXPORT_KEEP_HOURS = 1
    runs = [run_export(force=True) for _ in range(4)]
    # Two runs beyond the newest two, but younger than an hour: every file stays.
    assert export_files_prune() == 0
    assert all(all(path.exists() for path in files_of(run).values()) for run in runs)

    ExportRun.objects.filter(pk=runs[0].pk).update(finished=timezone.now() - timedelta(hours=2))
    assert export_files_prune() == 1  # the old one beyond the newest two; run 2 is beyond them too, but young
    assert not runs[0].artifacts.exists() and not (Path(settings.DATA_DIR) / "runs" / f"{runs[0].pk:06d}").exists()
    assert all(all(path.exists() for path in files_of(run).values()) for run in runs[1:])

    for hours, run in zip((5, 4, 3), runs[1:], strict=True):  # all old now, in the same order
        ExportRun.objects.filter(pk=run.pk).update(finished=timezone.now() - timedelta(hours=hours))
    assert export_files_prune() == 1  # run 2; the newest two keep their files however old
    assert not runs[1].artifacts.exists()
    assert all(all(path.exists() for path in files_of(run).values()) for run in runs[2:])


def test_workbook_column_order_from_a_setting(netbox, settings):
    settings.EXPORT_WORKBOOK_COLUMNS = ["ID", "Name"]
    run = run_export()
    header = workbook_values(files_of(run)["Systems CMDB.xlsx"])[0]
    assert header[:2] == ("ID", "Name") and len(header) == len(columns.MERGED_COLUMNS)


@pytest.mark.parametrize(
    ("value", "schedule_type", "field", "expected"),
    [("60", Schedule.MINUTES, "minutes", 60), ("0 2 * * *", Schedule.CRON, "cron", "0 2 * * *")],
)
def test_schedule_is_created_idempotently(settings, value, schedule_type, field, expected):
    settings.EXPORT_SCHEDULE = value
    assert export_schedule_sync() == "created"
    assert export_schedule_sync() == "updated"
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert schedule.schedule_type == schedule_type and getattr(schedule, field) == expected
    assert schedule.func == "exports.tasks.export_scheduled_task"
    settings.EXPORT_SCHEDULE = ""
    assert export_schedule_sync() == "removed"
    assert not Schedule.objects.filter(name=SCHEDULE_NAME).exists()


def test_bad_schedule_is_a_system_check_error(settings):
    settings.EXPORT_SCHEDULE = "every tuesday"
    errors = [e for e in run_checks() if e.id == "exports.E001"]
    assert errors and "every tuesday" in errors[0].msg


def test_scheduled_task_runs_an_export(netbox):
    from exports.tasks import export_scheduled_task

    assert export_scheduled_task() == "succeeded"
    assert ExportRun.objects.get().trigger == "schedule"
