"""An incremental run's workbook (issue 25): only the rows made now are read and converted, the rest is the previous
run's kept XML, and the workbook is byte for byte what a full run of the same state writes."""

import hashlib
import threading
from pathlib import Path

import openpyxl
import pytest

from exports import selectors, spool, transform, workbook
from exports.constants import WORKBOOK
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


def run_export(**kwargs) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, **kwargs)
    assert created
    return export_run_execute(run=run)


def workbook_of(run: ExportRun) -> Path:
    return next(selectors.artifact_path(artifact) for artifact in run.artifacts.all() if artifact.name == WORKBOOK)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_at(netbox, where: str) -> int:
    """Change, delete and add rows of both kinds at the start, the middle or the end of each kind's rows; returns
    how many rows are made anew (changed and added)."""
    stamps = iter(f"2026-12-02T00:00:{second:02d}.000000Z" for second in range(20))
    made = 0
    for kind, items, update, delete, add in (
        ("device", netbox.devices, netbox.update_device, netbox.delete_device, netbox.add_device),
        ("vm", netbox.vms, netbox.update_vm, netbox.delete_vm, netbox.add_vm),
    ):
        ids = sorted(item["id"] for item in items)
        at = {"start": 0, "middle": len(ids) // 2, "end": len(ids) - 2}[where]
        update(ids[at], description=f"{kind} edited", last_updated=next(stamps))
        delete(ids[at + 1])
        stamp = next(stamps)
        add(created=stamp, last_updated=stamp)  # a new id: after every other row of its kind
        made += 2
    return made


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_an_incremental_workbook_converts_only_the_rows_made_now(netbox, settings, monkeypatch, where):
    # The workbook written in this process (no fork), where the rows converted to the workbook's columns and the
    # spool batches read are counted: the reused rows are neither read nor converted.
    settings.EXPORT_PARALLEL_WRITE = False
    assert run_export(force=True).status == "succeeded"
    made = _edit_at(netbox, where)
    converted: list[int] = []
    kind_rows_as = transform.kind_rows_as

    def counted(batches, *args):
        for batch in kind_rows_as(batches, *args):
            converted.append(len(batch))
            yield batch

    read_later = _spool_reads_counted(monkeypatch)
    monkeypatch.setattr(transform, "kind_rows_as", counted)
    incremental = run_export()
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    assert sum(converted) == made and read_later == []
    monkeypatch.undo()  # and a full run of the same state writes the same workbook
    again = run_export(force=True)
    assert sha256(workbook_of(again)) == sha256(workbook_of(incremental))


def _spool_reads_counted(monkeypatch) -> list[int]:
    """The sizes of the spool batches read later (``RowSpool.batches_later``), as they are read."""
    read_later: list[int] = []
    read_batch = spool._read_batch

    def read(*args):
        batch = read_batch(*args)
        read_later.append(len(batch))
        return batch

    monkeypatch.setattr(spool, "_read_batch", read)
    return read_later


@pytest.mark.parametrize("damage", ["missing", "cut short"])
def test_an_incremental_workbook_reads_the_rows_whose_kept_xml_is_wanting(netbox, settings, monkeypatch, damage):
    # Without the previous run's kept XML of a reused row, the row's batch is read from the spool and converted.
    settings.EXPORT_PARALLEL_WRITE = False
    full = run_export(force=True)
    kept = workbook_of(full).parent / workbook.ROWS_XML
    if damage == "missing":
        kept.unlink()
    else:
        kept.write_bytes(kept.read_bytes()[: kept.stat().st_size * 2 // 3])
    _edit_at(netbox, "middle")
    read_later = _spool_reads_counted(monkeypatch)
    incremental = run_export()
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    assert read_later, "no reused row's batch was read"
    # The workbook kept the XML of every row again (the next run reuses them all).
    assert (workbook_of(incremental).parent / workbook.ROWS_XML).is_file()
    monkeypatch.undo()
    again = run_export(force=True)
    assert sha256(workbook_of(again)) == sha256(workbook_of(incremental))


@pytest.mark.parametrize(
    "values",
    [
        ["rule-1", "", "a & b < c", "_x0041_", "line\r\nbreak", "é" * 9000, "  "],
        [1, 22, 333, 0, -5],
        ["x" * 20000, "short"],  # longer than half Excel's limit: cut where needed, cell by cell
        ["bad\x01char", "fine", "\ud800"],  # characters XML cannot carry: dropped, cell by cell
        [1, "mixed", None, True, 2.5, float("nan"), ""],
    ],
)
def test_an_extra_sheets_column_is_the_cells_written_one_by_one(values):
    # The data-quality sheet's columns are written a column at a time: the same cells as cell by cell.
    numbers = [str(number) for number in range(7, 7 + len(values))]
    one_by_one = [
        workbook._xml_inline_cell("C", number, workbook.excel_text(value) if isinstance(value, str) else value)
        if value != ""
        else ""
        for number, value in zip(numbers, values, strict=True)
    ]
    assert workbook._xml_inline_extra_column("C", numbers, values) == one_by_one


def test_an_incremental_workbook_with_other_quality_findings_is_a_full_runs(netbox, settings):
    # Findings come and go (a serial emptied, another duplicated): the "Data quality" sheet changes, and the
    # incremental workbook is still byte for byte a full run's of the same state.
    settings.EXPORT_PARALLEL_WRITE = True
    full = run_export(force=True)
    assert full.status == "succeeded", full.error
    ids = sorted(device["id"] for device in netbox.devices)
    netbox.update_device(ids[2], serial="", last_updated="2026-12-03T00:00:01.000000Z")
    netbox.update_device(ids[-1], serial="DUPLICATE-1", last_updated="2026-12-03T00:00:02.000000Z")
    netbox.update_device(ids[len(ids) // 2], serial="DUPLICATE-1", last_updated="2026-12-03T00:00:03.000000Z")
    incremental = run_export()
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    sheets = [openpyxl.load_workbook(workbook_of(run), read_only=True) for run in (full, incremental)]
    quality = [[row for row in book["Data quality"].iter_rows(values_only=True)] for book in sheets]
    for book in sheets:
        book.close()
    assert quality[0] != quality[1]
    assert any("DUPLICATE-1" in map(str, row) for row in quality[1])
    again = run_export(force=True)
    assert sha256(workbook_of(again)) == sha256(workbook_of(incremental))


def test_a_run_records_the_seconds_of_the_workbooks_child_and_of_waiting_for_it(netbox):
    # The workbook is written by a forked child beside the run's other work: its own seconds, and the seconds the
    # run waited for it at the end of the save step (its share of the run's critical path), are kept on the run.
    assert run_export(force=True).status == "succeeded"
    _edit_at(netbox, "middle")
    incremental = ExportRun.objects.get(pk=run_export().pk)
    assert (incremental.status, incremental.mode) == ("succeeded", "incremental"), incremental.error
    assert incremental.timings["workbook"] > 0
    # Of the child's seconds, those it waited for the data-quality report's message (the companions' sheets).
    assert 0 <= incremental.timings["workbook_companions_wait"] < incremental.timings["workbook"]
    assert 0 <= incremental.timings["workbook_wait"] <= incremental.timings["save"]


def test_the_writes_behind_the_workbook_hold_a_bounded_number_of_bytes():
    # Writes of 400 KB (a sheet's piece of 250 rows): two wait beside the one being written, a third waits for it;
    # so the writing child's memory does not grow with how far the writing thread falls behind.
    gate = threading.Event()
    written: list[int] = []
    behind = workbook._WritesBehind()

    def write(data: bytes) -> None:
        gate.wait()
        written.append(len(data))

    piece = b"x" * 400_000
    submitted: list[int] = []

    def submit_all() -> None:
        for _ in range(5):
            behind.submit(write, piece, size=len(piece))
            submitted.append(1)

    submitter = threading.Thread(target=submit_all)
    submitter.start()
    submitter.join(timeout=1)
    assert submitter.is_alive() and len(submitted) == 3 and not written  # the fourth waits for the first written
    gate.set()
    submitter.join(timeout=10)
    behind.close()
    assert len(submitted) == 5 and written == [400_000] * 5
