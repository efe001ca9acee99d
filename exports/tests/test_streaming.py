"""The streamed export (issue 25) writes what the export wrote when it held the whole inventory in memory.

Two references: an in-memory oracle built here the way the export used to build its files (every record fetched into
a list, every row built at once, the merged rows, ``write_csv`` and the shared-strings ``write_workbook``), and the
SHA-256 of the CSVs that the export on main wrote before the change, for this test NetBox (seed 1) and these edits.
"""

import csv
import hashlib
import json
import os
import subprocess
from pathlib import Path

import openpyxl
import pytest

from exports import cells, columns, files, render, selectors, transform, workbook
from exports.constants import DEVICES_CSV, MERGED_CSV, VMS_CSV, WORKBOOK
from exports.csvfiles import write_csv
from exports.models import ExportRun
from exports.recorder import RunRecorder
from exports.services import export_run_execute, export_run_request
from exports.workbook import write_workbook
from integrations.netbox.client import NetboxClient
from integrations.netbox.records import DEVICE_OBJECT_TYPE, VM_OBJECT_TYPE

pytestmark = pytest.mark.django_db

CSVS = (DEVICES_CSV, VMS_CSV, MERGED_CSV)

# Written by main's export (before the streaming pipeline) for FakeNetbox(devices=40, vms=60, seed=1) and the edits
# of ``_edit``: the full export, then the incremental one after the edits.
GOLDEN = {
    "full": {
        "netbox_devices_export.csv": "52fca328f7ed595ce2970935902a89a919b089001104a8a40d8f280fb92f3a72",
        "netbox_vms_export.csv": "17a61925cbeb44ba64ac466f59981d36003b5c0e8ab31ddca8ce40c70d68f19c",
        "netbox_merged_export.csv": "a10f600178297f61e58bc389b3dfe67352b4ccb649691bbc96bfba0ca97dfb3a",
    },
    "incremental": {
        "netbox_devices_export.csv": "225063b23b0da709dcc088ab39cf3fd0f1927b450a1cb47e6bf083a14531f209",
        "netbox_vms_export.csv": "8bcc3659a336091403bc051759a23330ff2d5908ab43066a438d2f8c53586de8",
        "netbox_merged_export.csv": "8c19dcd374826278b5d5c20c6deeee4806e35be8b3722952c44a71d797ee388c",
    },
}


def run_export(**kwargs) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, **kwargs)
    assert created
    return export_run_execute(run=run)


def files_of(run: ExportRun) -> dict[str, Path]:
    return {artifact.name: selectors.artifact_path(artifact) for artifact in run.artifacts.all()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def oracle(netbox, folder: Path) -> dict[str, Path]:
    """The files as the export wrote them from whole lists in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    with NetboxClient(url=netbox.url, token=netbox.token) as client:
        devices, vms = client.fetch_devices(), client.fetch_virtual_machines()
        assignments = client.fetch_contact_assignments(DEVICE_OBJECT_TYPE)
        assignments += client.fetch_contact_assignments(VM_OBJECT_TYPE)
        lookups = transform.Lookups.from_records(
            sites=client.fetch_sites(),
            tenants=client.fetch_tenants(),
            contacts=render.contacts_by_object(assignments),
        )
    device_rows = transform.device_rows(devices, lookups)
    vm_rows = transform.vm_rows(vms, lookups)
    merged = transform.merged_rows(device_rows, vm_rows)
    write_csv(folder / DEVICES_CSV, columns.DEVICE_COLUMNS, device_rows)
    write_csv(folder / VMS_CSV, columns.VM_COLUMNS, vm_rows)
    write_csv(folder / MERGED_CSV, columns.MERGED_COLUMNS, merged)
    workbook_rows = transform.reorder(merged, columns.MERGED_COLUMNS, columns.WORKBOOK_COLUMNS)
    write_workbook(folder / WORKBOOK, columns.WORKBOOK_COLUMNS, workbook_rows)
    return {name: folder / name for name in (*CSVS, WORKBOOK)}


def sheet_of(path: Path, index: int = 0) -> tuple[list[tuple], dict[str, float], list[str]]:
    """A sheet's cell values, column widths and tables."""
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[index]
    widths = {letter: dimension.width for letter, dimension in sheet.column_dimensions.items()}
    tables = [f"{table.displayName} {table.ref}" for table in sheet.tables.values()]
    return list(sheet.iter_rows(values_only=True)), widths, tables


def assert_same_as_oracle(run: ExportRun, netbox, folder: Path) -> None:
    written, expected = files_of(run), oracle(netbox, folder)
    for name in CSVS:
        assert written[name].read_bytes() == expected[name].read_bytes(), name
    # The workbook's text is inline now (no shared strings): the same cells, types, widths and table.
    assert sheet_of(written[WORKBOOK]) == sheet_of(expected[WORKBOOK])


def _edit(netbox) -> None:
    """Changes, additions and deletions of both kinds, at fixed times (the golden digests depend on them)."""
    stamps = iter(f"2026-12-01T00:00:0{second}.000000Z" for second in range(10))
    netbox.update_device(netbox.devices[3]["id"], serial="CHANGED-001", description="edited", last_updated=next(stamps))
    netbox.update_vm(netbox.vms[10]["id"], description="resized", vcpus=64, last_updated=next(stamps))
    netbox.delete_device(netbox.devices[7]["id"])
    netbox.delete_vm(netbox.vms[0]["id"])
    netbox.delete_vm(netbox.vms[-1]["id"])
    for add in (netbox.add_device, netbox.add_vm):
        stamp = next(stamps)
        add(created=stamp, last_updated=stamp)


def test_full_and_incremental_streamed_files_equal_the_in_memory_export(netbox, tmp_path):
    full = run_export(force=True)
    assert full.status == "succeeded", full.error
    assert_same_as_oracle(full, netbox, tmp_path / "oracle-full")
    _edit(netbox)
    incremental = run_export()
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    assert (incremental.added, incremental.removed) == (2, 3)
    assert_same_as_oracle(incremental, netbox, tmp_path / "oracle-incremental")
    # A full export of the same state writes the same bytes, workbook included.
    again = run_export(force=True)
    assert {name: sha256(path) for name, path in files_of(again).items()} == {
        name: sha256(path) for name, path in files_of(incremental).items()
    }
    if os.environ.get("PRINT_GOLDEN"):
        print({"full": {n: sha256(files_of(full)[n]) for n in CSVS},
               "incremental": {n: sha256(files_of(incremental)[n]) for n in CSVS}})  # fmt: skip
    else:
        assert {name: sha256(files_of(full)[name]) for name in CSVS} == GOLDEN["full"]
        assert {name: sha256(files_of(incremental)[name]) for name in CSVS} == GOLDEN["incremental"]


def test_an_incremental_run_makes_only_its_new_and_changed_rows_workbook_xml(netbox, settings, monkeypatch):
    # The workbook written in this process (no fork), where the rows whose XML is made are counted.
    settings.EXPORT_PARALLEL_WRITE = False
    assert run_export(force=True).status == "succeeded"
    _edit(netbox)
    made: list[tuple] = []
    data_rows = workbook._xml_data_rows

    def counted(batch, *args):
        made.extend(batch)
        return data_rows(batch, *args)

    monkeypatch.setattr(workbook, "_xml_data_rows", counted)
    incremental = run_export()
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    name_at = columns.WORKBOOK_COLUMNS.index("Name")
    # The changed device and VM and the added ones; the rows after the deleted ones moved up, their XML reused.
    assert len(made) == 4, [row[name_at] for row in made]
    monkeypatch.undo()  # and a full run of the same state writes the same workbook
    again = run_export(force=True)
    assert sha256(files_of(again)[WORKBOOK]) == sha256(files_of(incremental)[WORKBOOK])


@pytest.mark.parametrize("damage", ["cut short", "garbled", "foreign"])
def test_an_incremental_run_makes_the_rows_xml_it_cannot_read_again(netbox, settings, damage):
    full = run_export(force=True)
    kept = files_of(full)[WORKBOOK].parent / workbook.ROWS_XML
    data = kept.read_bytes()
    if damage == "cut short":
        kept.write_bytes(data[: len(data) // 2])
    elif damage == "garbled":
        middle = len(data) // 2
        kept.write_bytes(data[:middle] + bytes(64) + data[middle + 64 :])
    else:  # kept under another key (other columns, typing or code)
        kept.write_bytes(data.replace(data.splitlines()[1], b"0" * 64, 1))
    _edit(netbox)
    incremental = run_export()
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    again = run_export(force=True)
    assert sha256(files_of(again)[WORKBOOK]) == sha256(files_of(incremental)[WORKBOOK])


@pytest.mark.parametrize("meters", ["kept", "missing"])
def test_an_incremental_run_sizes_the_workbook_as_a_full_run_when_its_longest_values_go(netbox, meters, monkeypatch):
    # The incremental run takes the previous run's column sizes for the rows it reuses (``.rows.json``'s meters) and
    # measures only the rows it makes and drops: the longest description and serial dropped, one lengthened.
    netbox.update_device(
        netbox.devices[4]["id"], description="the longest description of them all, by far", serial="S" * 30
    )
    netbox.update_vm(netbox.vms[6]["id"], description="a long description, " * 3)
    full = run_export(force=True)
    folder = files_of(full)[DEVICES_CSV].parent
    meta = json.loads((folder / ".rows.json").read_text(encoding="utf-8"))
    assert set(meta["meters"]) == {"device", "vm"}
    if meters == "missing":  # kept by a run before they were
        del meta["meters"]
        (folder / ".rows.json").write_text(json.dumps(meta), encoding="utf-8")
    netbox.update_device(netbox.devices[4]["id"], description="short", serial="S1")
    netbox.delete_vm(netbox.vms[7]["id"])
    netbox.update_device(netbox.devices[9]["id"], name="a much longer name than any other device has")
    without, outcomes = cells.ColumnMeter.without, []
    monkeypatch.setattr(cells.ColumnMeter, "without", lambda self, d: outcomes.append(without(self, d)) or outcomes[-1])
    incremental = run_export()
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    # The devices' longest description went: their rows measured again; the VMs' sizes taken from the previous run.
    assert [outcome is not None for outcome in outcomes] == ([False, True] if meters == "kept" else [])
    again = run_export(force=True)
    assert sha256(files_of(again)[WORKBOOK]) == sha256(files_of(incremental)[WORKBOOK])
    assert sheet_of(files_of(incremental)[WORKBOOK])[1] != sheet_of(files_of(full)[WORKBOOK])[1]  # widths moved


def test_a_full_run_leaves_only_its_row_spools_behind(netbox):
    # The row spools, the workbook's rows' XML and the CSVs' indexes stay for the next incremental run
    # (exports.files._rows_reused, exports.workbook.RowsXml, exports.csvfiles.csv_indexed); nothing else of the stream.
    run = run_export(force=True)
    folder = files_of(run)[DEVICES_CSV].parent
    hidden = (path.name for path in folder.iterdir() if path.name.startswith("."))
    spools = sorted(name for name in hidden if not name.startswith(".cmdb"))  # the CMDB table's lock aside
    indexes = [".netbox_devices_export.csv.index", ".netbox_merged_export.csv.index", ".netbox_vms_export.csv.index"]
    # + the report's kept results
    spool_indexes = [".device.rows", ".device.rows.index"], [".vm.rows", ".vm.rows.index"]  # exports.spool.RowSpool
    assert spools == [*spool_indexes[0], *indexes, ".quality.rows", ".rows.json", *spool_indexes[1], ".workbook.rows"]


def test_a_listing_that_changes_under_the_stream_is_streamed_again(netbox, settings, monkeypatch):
    settings.NETBOX_PAGE_SIZE = 5
    settings.NETBOX_WORKERS = 1  # two pages ahead: the pages after the deletion see the shifted offsets
    deleted: list[int] = []
    progress = RunRecorder.progress

    def delete_once(recorder, *, persist=True, **values):
        if values.get("devices_fetched") and not deleted:  # the first page is in the devices CSV already
            deleted.append(netbox.devices[0]["id"])
            netbox.delete_device(deleted[0])
        progress(recorder, persist=persist, **values)

    monkeypatch.setattr(RunRecorder, "progress", delete_once)
    run = run_export(force=True)
    assert run.status == "succeeded", run.error
    assert run.devices == 39 and "reading it again" in run.log
    monkeypatch.undo()
    with files_of(run)[DEVICES_CSV].open(newline="", encoding="utf-8") as handle:
        ids = [int(row[columns.DEVICE_COLUMNS.index("ID")]) for row in list(csv.reader(handle))[1:]]
    assert len(ids) == 39 and deleted[0] not in ids and ids == sorted(ids)


def test_the_vms_stream_in_a_forked_child_that_reads_a_changed_listing_again(netbox, settings, monkeypatch, tmp_path):
    """The VMs' listing walks in a forked child (its own NetBox client, no database): a VM deleted under that walk
    makes the child walk it again, its log line and its requests reach the run, and the diff (read by the parent
    from the child's keys) counts what the child saw."""
    assert ExportRun.objects.count() == 0
    settings.NETBOX_PAGE_SIZE = 5
    settings.NETBOX_WORKERS = 1
    deleted: list[int] = []
    answer = netbox._answer

    def delete_once(handler):  # in the server's thread, in this process: the child's requests come here
        if "virtual-machines/" in handler.path and "offset=20" in handler.path and not deleted:
            deleted.append(netbox.vms[0]["id"])
            netbox.delete_vm(deleted[0])
        answer(handler)

    monkeypatch.setattr(netbox, "_answer", delete_once)
    vm_rows = transform.vm_rows
    where = tmp_path / "vm-rows-pid"

    def vm_rows_where(*args, **kwargs):  # a file: the child's memory is not this process's
        where.write_text(str(os.getpid()))
        return vm_rows(*args, **kwargs)

    monkeypatch.setitem(files._KINDS, "vm", (VMS_CSV, vm_rows_where))
    netbox.reset_log()
    run = run_export(force=True)
    assert run.status == "succeeded", run.error
    assert int(where.read_text()) != os.getpid()  # the VMs' rows were made in the child
    assert run.vms == 59 and run.devices == 40 and "reading it again" in run.log
    assert run.added == 99 and run.netbox_requests == len(netbox.requests)
    with files_of(run)[VMS_CSV].open(newline="", encoding="utf-8") as handle:
        ids = [int(row[columns.VM_COLUMNS.index("ID")]) for row in list(csv.reader(handle))[1:]]
    assert len(ids) == 59 and deleted[0] not in ids and ids == sorted(ids)


def test_more_rows_than_a_sheet_holds_continue_on_a_second_sheet(netbox, tmp_path, monkeypatch):
    monkeypatch.setattr(workbook, "EXCEL_MAX_ROWS", 61)  # 60 data rows a sheet: the 100 rows need two
    run = run_export(force=True)
    assert run.status == "succeeded", run.error
    assert "continues them on 2 sheets" in run.log
    path = files_of(run)[WORKBOOK]
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["NetBox Inventory", "NetBox Inventory (2)", "Data quality"]
    first, second = (list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets[:2])
    assert first[0] == second[0] == columns.WORKBOOK_COLUMNS
    assert (len(first), len(second)) == (61, 41)
    assert [list(sheet.tables) for sheet in book.worksheets[:2]] == [["NetBoxInventory"], ["NetBoxInventory2"]]
    # Every row once, in order: the merged CSV's IDs, sheet after sheet.
    id_at = columns.WORKBOOK_COLUMNS.index("ID")
    with files_of(run)[MERGED_CSV].open(newline="", encoding="utf-8") as handle:
        merged = list(csv.reader(handle))
    merged_ids = [int(row[columns.MERGED_COLUMNS.index("ID")]) for row in merged[1:]]
    assert [row[id_at] for row in first[1:] + second[1:]] == merged_ids
    # LibreOffice reads all three sheets.
    out = tmp_path / "lo"
    options = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
    command = ["soffice", f"-env:UserInstallation=file://{out / 'profile'}", "--headless", "--convert-to", options]
    subprocess.run([*command, "--outdir", str(out), str(path)], check=True, capture_output=True, timeout=180)
    counts = {}
    for sheet_csv in out.glob("*.csv"):
        with sheet_csv.open(newline="", encoding="utf-8") as handle:
            counts[sheet_csv.stem.removeprefix(path.stem + "-")] = len(list(csv.reader(handle)))
    assert counts["NetBox Inventory"] == 61 and counts["NetBox Inventory (2)"] == 41 and "Data quality" in counts
