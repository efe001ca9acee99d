"""An incremental export's data-quality report checks only the rows NetBox changed (``quality.kept``, with the
export's picks: ``exports.companions.KindRows.picks``), and writes and records what a full export does."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from exports.models import ExportRun
from quality import report as quality_report
from quality.kept import KEPT
from quality.tests.test_quality_export import counts_of, crafted, path_of, run_export

pytestmark = pytest.mark.django_db
__all__ = ["crafted"]  # the fixture, used by name


@pytest.fixture
def checked(monkeypatch) -> list[Any]:
    """How many rows each report's one-row rules read, and whether it had the previous run's results (the real
    ``kept_file_write``, watched)."""
    seen: list[Any] = []
    real = quality_report.kept_file_write

    def watched(row_sets, config, path, *, previous=None):  # type: ignore[no-untyped-def]
        info, report = real(row_sets, config, path, previous=previous)
        seen.append((previous is not None and all(s.picks is not None for s in row_sets), report.checked))
        return info, report

    monkeypatch.setattr(quality_report, "kept_file_write", watched)
    return seen


def test_an_incremental_export_checks_only_the_changed_rows_and_reports_what_a_full_one_does(crafted, netbox, checked):
    first = run_export()
    assert (path_of(first, "data_quality.csv").parent / KEPT).is_file()
    rows = first.devices + first.vms
    devices = netbox.devices
    netbox.update_device(devices[20]["id"], serial="DUP-1")  # a new duplicate of an unchanged row's serial
    netbox.delete_device(crafted["second"])  # ends the duplicate it had with the first
    netbox.update_device(devices[21]["id"], serial="", rack=None)
    netbox.add_device(name="brand-new", serial="")
    later = run_export()
    assert later.mode == ExportRun.Mode.INCREMENTAL and not later.reused_files
    assert checked[-1] == (True, 3)  # the two changed devices and the added one
    full = run_export(force=True)
    assert checked[-1] == (False, rows)  # one device deleted, one added
    assert path_of(later, "data_quality.csv").read_bytes() == path_of(full, "data_quality.csv").read_bytes()
    assert counts_of(later) == counts_of(full)
    # and the next incremental run reads this one's kept results
    netbox.update_device(devices[22]["id"], serial="DUP-1")
    again = run_export()
    assert checked[-1] == (True, 1)
    full = run_export(force=True)
    assert path_of(again, "data_quality.csv").read_bytes() == path_of(full, "data_quality.csv").read_bytes()


def test_a_run_that_reuses_the_files_keeps_the_results_for_the_next(crafted, netbox, checked):
    first = run_export()
    second = run_export()
    assert second.reused_files and (path_of(second, "data_quality.csv").parent / KEPT).is_file()
    netbox.update_device(netbox.devices[20]["id"], serial="DUP-1")
    third = run_export()
    assert checked[-1] == (True, 1)
    full = run_export(force=True)
    assert path_of(third, "data_quality.csv").read_bytes() == path_of(full, "data_quality.csv").read_bytes()
    assert first.pk < second.pk


@pytest.fixture
def batch_reads(monkeypatch) -> list[int]:
    """How many times each report read its rows' batches (the real ``kept_file_write``, its row sets' batches
    counted as they are called)."""
    seen: list[int] = []
    real = quality_report.kept_file_write

    def watched(row_sets, config, path, *, previous=None):  # type: ignore[no-untyped-def]
        reads = [0]

        def counted(batches):  # type: ignore[no-untyped-def]
            def each():  # type: ignore[no-untyped-def]
                reads[0] += 1
                return batches()

            return each

        row_sets = [replace(row_set, batches=counted(row_set.batches)) for row_set in row_sets]
        info, report = real(row_sets, config, path, previous=previous)
        seen.append(reads[0])
        return info, report

    monkeypatch.setattr(quality_report, "kept_file_write", watched)
    return seen


def test_an_incremental_export_reads_only_the_new_rows_from_the_indexed_spools(crafted, netbox, batch_reads):
    """With the spool's index (``KindRows.spool``) the report reads the rows made anew alone, and no batch."""
    run_export()
    assert batch_reads[-1] == 2  # a full check reads each kind's batches once
    netbox.update_device(netbox.devices[20]["id"], serial="DUP-1")
    later = run_export()
    assert later.mode == ExportRun.Mode.INCREMENTAL and batch_reads[-1] == 0
    full = run_export(force=True)
    assert path_of(later, "data_quality.csv").read_bytes() == path_of(full, "data_quality.csv").read_bytes()
