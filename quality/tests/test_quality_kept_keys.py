"""An incremental run's comparing rules (duplicate names and serials) from the keys' hashes the previous run kept
(``quality.kept``): only the new rows are hashed, only the rows sharing a hash are read, and the rows of an indexed
spool that were not made anew are never read as batches. The findings file is byte for byte a full check's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exports.spool import RowSpool
from quality import kept as quality_kept
from quality import rules as quality
from quality.rules import quality_config_build
from quality.tests.test_quality_chunks import CONFIG, TODAY, in_batches, make_rows
from quality.tests.test_quality_kept import ID_AT, KINDS, SIZES, changed, full, picked

NAME_AT = {kind: kind_columns.index("Name") for kind, kind_columns in KINDS}
SERIAL_AT = {kind: kind_columns.index("Serial number") for kind, kind_columns in KINDS}


def spooled(
    folder: Path, rows: dict[str, list[Any]], previous: dict[str, list[Any]] | None, reads: dict[str, int]
) -> list[quality.RowSet]:
    """The rows in indexed spools in ``folder``, as the export hands them (``KindRows.spool``); ``reads`` counts the
    calls of each kind's batches."""
    folder.mkdir()
    out = []
    for kind, kind_columns in KINDS:
        spool = RowSpool(folder / f".{kind}.rows", key=ID_AT[kind])
        for batch in in_batches(rows[kind], SIZES)():
            spool.add(batch)
        spool.close()
        assert spool.index(len(rows[kind])) is not None

        def batches(spool: RowSpool = spool, kind: str = kind) -> Any:
            reads[kind] = reads.get(kind, 0) + 1
            return spool.batches()

        picks = None
        if previous is not None:
            picks = in_batches(picked(previous[kind], rows[kind], ID_AT[kind]), SIZES)
        out.append(quality.RowSet((), kind_columns, kind, batches=batches, picks=picks, spool=spool.path))
    return out


def run(tmp_path: Path, name: str, rows: dict[str, list[Any]], previous: dict[str, list[Any]] | None = None,
        previous_name: str = "", config: Any = None) -> tuple[bytes, Any, dict[str, int]]:  # fmt: skip
    config = config or quality_config_build(today=TODAY, **CONFIG)
    reads: dict[str, int] = {}
    row_sets = spooled(tmp_path / name, rows, previous, reads)
    path = tmp_path / name / "q.csv"
    folder = tmp_path / previous_name if previous_name else None
    _, report = quality_kept.kept_file_write(row_sets, config, path, previous=folder)
    return path.read_bytes(), report, reads


def with_row(rows: dict[str, list[Any]], kind: str, at: int, **cells: Any) -> dict[str, list[Any]]:
    """``rows`` with the row at ``at`` of ``kind`` changed (``name``, ``serial``), or, ``at`` None, a new row (a copy
    of the first one with the next id)."""
    out = {each: list(values) for each, values in rows.items()}
    if at is None:
        top = max(row[ID_AT[each]] for each, _ in KINDS for row in rows[each])
        row = list(rows[kind][0])
        row[ID_AT[kind]] = top + 1
        out[kind].append(tuple(row))
        at = len(out[kind]) - 1
    row = list(out[kind][at])
    for cell, value in cells.items():
        row[{"name": NAME_AT, "serial": SERIAL_AT}[cell][kind]] = value
    out[kind][at] = tuple(row)
    return out


@pytest.fixture
def before() -> dict[str, list[Any]]:
    devices, vms = make_rows(2500, seed=21)
    # Rows whose keys no other row has, for the cases below.
    devices[10] = with_row({"device": devices}, "device", 10, name="lonely-10", serial="LONE-10")["device"][10]
    devices[20] = with_row({"device": devices}, "device", 20, name="trio", serial="TRIO")["device"][20]
    devices[30] = with_row({"device": devices}, "device", 30, name="trio", serial="TRIO")["device"][30]
    devices[40] = with_row({"device": devices}, "device", 40, name="Trio ", serial=" trio")["device"][40]
    return {"device": devices, "vm": vms}


CASES = {
    # Two kept rows' keys become one's: a duplicate appears (one row changed, the other kept).
    "duplicate appears": lambda rows: with_row(rows, "device", 12, name="lonely-10", serial="LONE-10"),
    # A group of three loses a row: the other two stay duplicates, each now "same as 1 other".
    "changed row leaves a group": lambda rows: with_row(rows, "device", 40, name="quartet", serial="QUARTET"),
    # A group of two ends (the changed row leaves it, the kept one is alone again).
    "duplicate disappears": lambda rows: with_row(
        with_row(rows, "device", 30, name="gone", serial="GONE"), "device", 40, name="gone2", serial="GONE2"
    ),
    # A new row shares a kept row's keys: the kept row, never a candidate before, is read from its spool.
    "kept row becomes a duplicate of a new row": lambda rows: with_row(
        rows, "device", None, name="lonely-10", serial="LONE-10"
    ),
    # Keys the rules fold (case, surrounding spaces) are the same key.
    "keys differing in case and spacing": lambda rows: with_row(
        rows, "device", None, name="  LONELY-10 ", serial="lone-10  "
    ),
    "about 2 % changed": changed,
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_an_incremental_run_finds_the_duplicates_a_full_check_finds_reading_only_new_rows(tmp_path, before, case):
    run(tmp_path, "run1", before)
    after = case(before)
    expected, summary = full(tmp_path, after, quality_config_build(today=TODAY, **CONFIG), "full2")
    data, report, reads = run(tmp_path, "run2", after, before, "run1")
    fresh = sum(pick < 0 for kind, _ in KINDS for pick in picked(before[kind], after[kind], ID_AT[kind]))
    assert report.checked == fresh > 0
    assert data == expected and report.results == summary.results
    assert reads == {}  # neither kind's batches read: the new rows read alone from the spool
    # The next run keeps on from this one's kept results.
    again, report, reads = run(tmp_path, "run3", after, after, "run2")
    assert again == expected and report.checked == 0 and reads == {}


def test_a_damaged_kept_key_hash_part_checks_every_row(tmp_path, before):
    run(tmp_path, "run1", before)
    kept_file = tmp_path / "run1" / quality_kept.KEPT
    data = bytearray(kept_file.read_bytes())
    at = data.index(b"keys")  # inside the first comparing rule's kept part
    data[at + 100] ^= 0xFF
    kept_file.write_bytes(bytes(data))
    after = CASES["duplicate appears"](before)
    expected, _ = full(tmp_path, after, quality_config_build(today=TODAY, **CONFIG), "full2")
    data_now, report, reads = run(tmp_path, "run2", after, before, "run1")
    assert report.checked == len(after["device"]) + len(after["vm"])
    assert data_now == expected and reads == {"device": 1, "vm": 1}


def test_hash_collisions_in_an_incremental_run_are_told_apart(tmp_path, before, monkeypatch):
    """Rows sharing a hash but not a key are not duplicates: with a hash of a key's length, most keys collide."""
    monkeypatch.setattr(quality, "_key_hash", len)
    run(tmp_path, "run1", before)
    after = CASES["kept row becomes a duplicate of a new row"](changed(before))
    expected, summary = full(tmp_path, after, quality_config_build(today=TODAY, **CONFIG), "full2")
    data, report, reads = run(tmp_path, "run2", after, before, "run1")
    assert 0 < report.checked < 200
    assert data == expected and report.results == summary.results and reads == {}


def test_key_hashes_are_the_same_in_every_process():
    """Unlike Python's hash of a str (salted per process), the kept hashes mean the same in the next run's process."""
    keys = ["", "web", "WEB", "Straße", "device\x00db-1", "\ud800 lone surrogate", "✨" * 40]
    code = (
        "import sys, json; from quality.rules import key_hashes; "
        f"h, f = key_hashes({keys!r}); print(json.dumps([h.tolist(), f.tolist()]))"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                env={"PYTHONHASHSEED": seed},
            ).stdout
        )
        for seed in ("1", "2")
    ]  # fmt: skip
    hashes, filled = quality.key_hashes(keys)
    assert outputs == [[hashes.tolist(), filled.tolist()]] * 2
    assert filled.tolist() == [False, *[True] * 6]
    assert len(set(hashes.tolist())) == len(keys)
    assert quality.key_hashes(["web"])[0][0] == hashes[1]  # a key's hash does not depend on its neighbours


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_candidates_kept_and_compared_in_blocks_give_a_full_checks_file(tmp_path, before, case, monkeypatch):
    """The comparing rules' candidate rows pass a block at a time (never all in memory): small blocks, whose edges
    fall inside duplicate groups, in the full run that keeps them and in the incremental run that reads them back."""
    after = case(before)
    expected, summary = full(tmp_path, after, quality_config_build(today=TODAY, **CONFIG), "full2")
    monkeypatch.setattr(quality_kept, "BLOCK_ROWS", 7)
    first, _, _ = run(tmp_path, "run1", before)
    assert first == full(tmp_path, before, quality_config_build(today=TODAY, **CONFIG), "full1")[0]
    kept_file = (tmp_path / "run1" / quality_kept.KEPT).read_bytes()
    assert kept_file.count(b"block") > 2 * 2  # both rules' candidates, each in several blocks
    data, report, reads = run(tmp_path, "run2", after, before, "run1")
    assert 0 < report.checked < 200
    assert data == expected and report.results == summary.results and reads == {}
