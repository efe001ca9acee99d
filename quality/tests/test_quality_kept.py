"""An incremental run's report checks only the rows made anew, with the previous run's kept results for the others
(``quality.kept``): its findings file is byte for byte a full check's of the same rows, and anything the kept results
cannot vouch for (another key, a damaged or missing file, rows that are not the previous run's) checks every row."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from exports import columns
from quality import kept as quality_kept
from quality import rules as quality
from quality.report import quality_file_write
from quality.rules import RuleSetting, quality_config_build
from quality.tests.test_quality_chunks import CONFIG, TODAY, in_batches, make_rows

KINDS = (("device", columns.DEVICE_COLUMNS), ("vm", columns.VM_COLUMNS))
ID_AT = {kind: kind_columns.index("ID") for kind, kind_columns in KINDS}
SIZES = (1000, 137)


def picked(previous: list[tuple[Any, ...]], current: list[tuple[Any, ...]], at: int) -> list[int]:
    """Each current row's pick as the export gives it (``exports.files._rows_reused``): ``-1`` for a row made anew,
    else how many previous rows were passed over before the same row, unchanged."""
    kept = {row[at]: row for row in previous}
    same = {row[at] for row in current if kept.get(row[at]) == row}
    picks, passed, earlier = [], 0, iter(previous)
    for row in current:
        if row[at] not in same:
            picks.append(-1)
            continue
        for old in earlier:
            if old[at] == row[at]:
                break
            passed += 1
        picks.append(passed)
        passed = 0
    return picks


def sets(rows: dict[str, list[Any]], previous: dict[str, list[Any]] | None = None) -> list[quality.RowSet]:
    out = []
    for kind, kind_columns in KINDS:
        batches = in_batches(rows[kind], SIZES)
        picks = None
        if previous is not None:
            every = picked(previous[kind], rows[kind], ID_AT[kind])
            picks = in_batches(every, SIZES)  # in step with the rows' batches
        out.append(quality.RowSet((), kind_columns, kind, batches=batches, picks=picks))
    return out


def full(tmp_path: Path, rows: dict[str, list[Any]], config: quality.QualityConfig, name: str) -> tuple[bytes, Any]:
    folder = tmp_path / name
    folder.mkdir()
    info, summary = quality_file_write(sets(rows), config, folder / "q.csv")
    assert info is not None and not summary.error
    return (folder / "q.csv").read_bytes(), summary


def kept(tmp_path: Path, rows: dict[str, Any], config: Any, name: str, previous: dict[str, Any] | None = None,
         previous_folder: Path | None = None) -> tuple[bytes, Any, quality.QualityReport]:  # fmt: skip
    folder = tmp_path / name
    folder.mkdir()
    row_sets = sets(rows, previous)
    info, report = quality_kept.kept_file_write(row_sets, config, folder / "q.csv", previous=previous_folder)
    return (folder / "q.csv").read_bytes(), info, report


@pytest.fixture
def before() -> dict[str, list[Any]]:
    devices, vms = make_rows(2500, seed=21)
    return {"device": devices, "vm": vms}


def changed(rows: dict[str, list[Any]], seed: int = 1) -> dict[str, list[Any]]:
    """About 2 % of rows changed (cells that rules read), some deleted, some added (new ids after the last)."""
    rng = random.Random(seed)
    out: dict[str, list[Any]] = {}
    top = max(row[ID_AT[kind]] for kind, _ in KINDS for row in rows[kind])
    for kind, kind_columns in KINDS:
        index = {name: position for position, name in enumerate(kind_columns)}
        result = []
        for row in rows[kind]:
            roll = rng.random()
            if roll < 0.005:
                continue  # deleted
            if roll < 0.025:
                row = list(row)
                for name in ("Serial number", "Contacts", "IP Address", "DTAP state", "Name"):
                    if name in index and rng.random() < 0.5:
                        row[index[name]] = rng.choice(("", "SN-1", "web", "Test", "fresh-value"))
                if "HW buy date" in index:
                    row[index["HW buy date"]] = rng.choice(("", "2019-06-14", "nonsense", "2026-06-20"))
                row = tuple(row)
            result.append(row)
        for number in range(3):
            top += 1
            template = list(rng.choice(rows[kind]))
            template[ID_AT[kind]] = top
            result.append(tuple(template))
        out[kind] = result
    return out


def test_a_full_check_that_keeps_its_results_writes_the_same_file(tmp_path, before):
    config = quality_config_build(today=TODAY, **CONFIG)
    expected, summary = full(tmp_path, before, config, "plain")
    data, _, report = kept(tmp_path, before, config, "kept")
    assert data == expected and report.results == summary.results
    assert report.checked == len(before["device"]) + len(before["vm"])
    assert (tmp_path / "kept" / quality_kept.KEPT).is_file()
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [quality_kept.KEPT, "q.csv"]


def test_an_incremental_run_checks_only_new_rows_and_writes_a_full_checks_file(tmp_path, before):
    config = quality_config_build(today=TODAY, **CONFIG)
    kept(tmp_path, before, config, "run1")
    after = changed(before)
    expected, summary = full(tmp_path, after, config, "full2")
    data, info, report = kept(tmp_path, after, config, "run2", before, tmp_path / "run1")
    fresh = sum(pick < 0 for kind, _ in KINDS for pick in picked(before[kind], after[kind], ID_AT[kind]))
    assert 0 < report.checked == fresh < (len(after["device"]) + len(after["vm"])) // 10
    assert data == expected and report.results == summary.results and info.rows == summary.findings
    # The next run reuses this run's kept results in turn.
    again = changed(after, seed=2)
    expected, summary = full(tmp_path, again, config, "full3")
    data, _, report = kept(tmp_path, again, config, "run3", after, tmp_path / "run2")
    assert 0 < report.checked < len(again["device"]) // 10
    assert data == expected and report.results == summary.results


def test_a_change_that_makes_a_duplicate_and_a_deletion_that_ends_one(tmp_path, before):
    config = quality_config_build(today=TODAY, **CONFIG)
    serial_at = columns.DEVICE_COLUMNS.index("Serial number")
    devices = [list(row) for row in before["device"]]
    devices[10][serial_at], devices[1000][serial_at] = "ONLY-TWICE", "ONLY-TWICE"
    devices[500][serial_at] = "UNIQUE-ONE"
    rows = {"device": [tuple(row) for row in devices], "vm": before["vm"]}
    kept(tmp_path, rows, config, "run1")
    devices[700][serial_at] = "UNIQUE-ONE"  # a change makes a duplicate of an unchanged row
    del devices[1000]  # a deletion leaves the other one alone
    after = {"device": [tuple(row) for row in devices], "vm": before["vm"]}
    expected, summary = full(tmp_path, after, config, "full2")
    data, _, report = kept(tmp_path, after, config, "run2", rows, tmp_path / "run1")
    assert report.checked == 1
    assert data == expected and report.results == summary.results
    assert b"UNIQUE-ONE" in data and b"ONLY-TWICE" not in data


def test_another_day_re_decides_the_dated_rules_from_the_kept_days(tmp_path, before):
    config = quality_config_build(today=TODAY, **CONFIG)
    kept(tmp_path, before, config, "run1")
    later = quality_config_build(today=TODAY + timedelta(days=400), **CONFIG)
    expected, summary = full(tmp_path, before, later, "full2")
    data, _, report = kept(tmp_path, before, later, "run2", before, tmp_path / "run1")
    assert report.checked == 0 and data == expected and report.results == summary.results
    assert summary.results != full(tmp_path, before, config, "full1")[1].results  # the day made a difference


@pytest.mark.parametrize(
    "other",
    [
        {"overrides": {"warranty_expiring": RuleSetting(threshold=30)}},
        {"disabled": ["device_no_rack"]},
        {"allowed": {"DTAP state": ["Test"]}},
    ],
)
def test_other_rules_or_settings_check_every_row(tmp_path, before, other):
    kept(tmp_path, before, quality_config_build(today=TODAY, **CONFIG), "run1")
    config = quality_config_build(today=TODAY, **{**CONFIG, **other})
    after = changed(before)
    expected, summary = full(tmp_path, after, config, "full2")
    data, _, report = kept(tmp_path, after, config, "run2", before, tmp_path / "run1")
    assert report.checked == len(after["device"]) + len(after["vm"])
    assert data == expected and report.results == summary.results


def test_other_columns_check_every_row(tmp_path, before):
    config = quality_config_build(today=TODAY, **CONFIG)
    kept(tmp_path, before, config, "run1")
    renamed = [replace(row_set, columns=tuple(c if c != "Tags" else "Labels" for c in row_set.columns))
               for row_set in sets(before, before)]  # fmt: skip
    (tmp_path / "run2").mkdir()
    _, report = quality_kept.kept_file_write(renamed, config, tmp_path / "run2" / "q.csv", previous=tmp_path / "run1")
    assert report.checked == len(before["device"]) + len(before["vm"])


def damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.unlink(),
        damage,
        lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3]),
        lambda path: path.write_bytes(b""),
    ],
    ids=["missing", "damaged", "truncated", "empty"],
)
def test_a_missing_or_damaged_kept_file_checks_every_row(tmp_path, before, spoil):
    config = quality_config_build(today=TODAY, **CONFIG)
    kept(tmp_path, before, config, "run1")
    spoil(tmp_path / "run1" / quality_kept.KEPT)
    after = changed(before)
    expected, summary = full(tmp_path, after, config, "full2")
    data, _, report = kept(tmp_path, after, config, "run2", before, tmp_path / "run1")
    assert report.checked == len(after["device"]) + len(after["vm"])
    assert data == expected and report.results == summary.results
    assert sorted(p.name for p in (tmp_path / "run2").iterdir()) == [quality_kept.KEPT, "q.csv"]


def test_rows_that_are_not_the_kept_ones_check_every_row(tmp_path, before):
    """Picks that point at other rows than the kept file's (another run's spools) are caught by the rows' ids."""
    config = quality_config_build(today=TODAY, **CONFIG)
    kept(tmp_path, before, config, "run1")
    shifted = {kind: before[kind][1:] for kind, _ in KINDS}
    wrong = sets(shifted, shifted)  # every row "the same" as the previous run's at the same place: wrong
    expected, _ = full(tmp_path, shifted, config, "full2")
    (tmp_path / "run2").mkdir()
    _, report = quality_kept.kept_file_write(wrong, config, tmp_path / "run2" / "q.csv", previous=tmp_path / "run1")
    assert report.checked == len(shifted["device"]) + len(shifted["vm"])
    assert (tmp_path / "run2" / "q.csv").read_bytes() == expected


def test_a_rule_failing_on_a_new_row_checks_every_row_and_records_the_failure(tmp_path, before):
    def picky(rows: quality.QualityRows, setting: RuleSetting) -> tuple[list[int], str]:
        if "boom" in rows.text("Name"):
            raise ValueError("boom")
        return [], ""

    rule = quality.Rule("picky", "Picky", "info", ("Name",), picky)
    config = quality_config_build(today=TODAY, **CONFIG)
    config = quality.QualityConfig((*config.rules, (rule, RuleSetting())), TODAY)
    kept(tmp_path, before, config, "run1")
    devices = list(before["device"])
    devices[5] = ("boom", *devices[5][1:])
    after = {"device": devices, "vm": before["vm"]}
    expected, summary = full(tmp_path, after, config, "full2")
    data, _, report = kept(tmp_path, after, config, "run2", before, tmp_path / "run1")
    assert {r.rule: r.error for r in report.results}["picky"] == "ValueError: boom"
    assert data == expected and report.results == summary.results
    assert not (tmp_path / "run2" / quality_kept.KEPT).exists()  # a failed rule keeps nothing


def test_no_rows_at_all(tmp_path):
    config = quality_config_build(today=TODAY, **CONFIG)
    empty: dict[str, list[Any]] = {"device": [], "vm": []}
    expected, summary = full(tmp_path, empty, config, "full")
    data, _, report = kept(tmp_path, empty, config, "run1")
    assert data == expected and report.results == summary.results
    data, _, report = kept(tmp_path, empty, config, "run2", empty, tmp_path / "run1")
    assert data == expected and report.results == summary.results and report.checked == 0
