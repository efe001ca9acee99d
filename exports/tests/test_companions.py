"""Companions: work registered by other apps that runs while a run writes its files (beside the forked child)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from exports import companions, selectors
from exports.atomic import FileInfo
from exports.companions import Companion, CompanionPlan, CompanionWrite, RunRows
from exports.csvfiles import write_csv
from exports.files import files_plan
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request
from exports.workbook import ExtraSheet

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry() -> Iterator[dict[str, Any]]:
    """The companions as the apps registered them, restored after the test; the test's companion's state."""
    saved = dict(companions._registry)
    state: dict[str, Any] = {"digest": "v1", "recorded": [], "reused": []}
    yield state
    companions._registry.clear()
    companions._registry.update(saved)


def counting_companion(state: dict[str, Any]) -> Companion:
    """A companion counting rows per kind: a file ``counts.csv``, a sheet ``Counts``, and a record of the counts."""

    def write(rows: RunRows, folder: Path) -> CompanionWrite:
        counts = {}
        for kind, kind_rows in rows.items():
            assert kind_rows.kind == kind and "Name" in kind_rows.columns
            assert kind_rows.csv_path.name in ("netbox_devices_export.csv", "netbox_vms_export.csv")
            counts[kind] = sum(len(batch) for batch in kind_rows.batches())
            assert counts[kind] == sum(len(batch) for batch in kind_rows.batches())  # a fresh iterator each time
        info: FileInfo = write_csv(folder / "counts.csv", ("kind", "rows"), sorted(counts.items()))
        return CompanionWrite(files={"counts.csv": info}, message=counts, result=counts, seconds=0.25)

    def sheets(message: Any, folder: Path) -> list[ExtraSheet]:
        rows = [("Kind", "Rows"), *sorted(message.items())]
        return [ExtraSheet("Counts", iter(rows), shape=(len(rows), 2))]

    def prepare() -> CompanionPlan:
        return CompanionPlan(digest=state["digest"], write=write, artifacts={"counts.csv": "quality"}, sheets=sheets)

    return Companion(
        name="counting",
        order=50,
        prepare=prepare,
        record=lambda run, result: state["recorded"].append((run.pk, result)),
        reuse=lambda previous: state["reused"].append(previous.pk) or {"reused from": previous.pk},
        artifacts={"counts.csv": "quality"},
    )


def run_export(**kwargs: Any) -> ExportRun:
    run, _ = export_run_request(trigger="command", publish=False, **kwargs)
    run = export_run_execute(run=run)
    assert run.status == "succeeded", run.error
    return run


def test_the_quality_app_registers_its_companion():
    assert [companion.name for companion in companions.companions()] == ["quality"]
    assert companions.artifact_kinds() == {"data_quality.csv": "quality"}
    assert "data_quality.csv" in str(companions.companions()[0])


def test_a_companion_adds_a_file_a_sheet_a_record_and_a_timing(netbox, registry):
    companions.register(counting_companion(registry))
    run = run_export()

    assert registry["recorded"] == [(run.pk, {"device": 40, "vm": 60})]
    assert run.timings["counting"] == 0.25
    artifact = run.artifacts.get(name="counts.csv")
    with selectors.artifact_path(artifact).open(newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["kind", "rows"], ["device", "40"], ["vm", "60"]]
    book = openpyxl.load_workbook(selectors.artifact_path(run.artifacts.get(name="Systems CMDB.xlsx")), read_only=True)
    assert book.sheetnames == ["NetBox Inventory", "Counts", "Data quality"]  # in the companions' order
    assert list(book["Counts"].iter_rows(values_only=True)) == [("Kind", "Rows"), ("device", 40), ("vm", 60)]
    book.close()
    assert run.progress["files_written"] == run.progress["files_total"] == 6


def test_a_companions_digest_decides_whether_the_previous_files_are_reused(netbox, registry):
    companions.register(counting_companion(registry))
    first = run_export()
    same = run_export()
    assert same.reused_files and registry["reused"] == [first.pk]
    assert registry["recorded"][-1] == (same.pk, {"reused from": first.pk})
    assert same.files_digest == first.files_digest == files_plan().digest

    registry["digest"] = "v2"  # the companion would now write its files otherwise
    again = run_export()
    assert not again.reused_files and again.files_digest != first.files_digest
    assert "written again" in again.log


def test_a_companion_that_breaks_its_contract_costs_only_its_own_part(netbox, registry):
    def explode(rows: RunRows, folder: Path) -> CompanionWrite:
        raise RuntimeError("broken companion")

    companions.register(
        Companion(
            name="broken",
            order=10,
            prepare=lambda: CompanionPlan(digest=None, write=explode, artifacts={"broken.csv": "quality"}),
            record=lambda run, result: registry["recorded"].append(result),
            reuse=lambda previous: None,
        )
    )
    run = run_export()
    assert not run.artifacts.filter(name="broken.csv").exists()
    assert run.artifacts.filter(name="data_quality.csv").exists()  # the other companions still ran
    assert registry["recorded"] == []
