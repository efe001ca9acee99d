"""A run's CMDB table file: built once (also by two processes at once), mapped, and answering exactly what the old
in-memory table answered (``bench.cmdb_inmemory``, the test oracle) for a battery of random queries."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from bench.cmdb_inmemory import CmdbTable as OldTable
from cmdb import tablefiles
from cmdb.columnar import TableFileError, csv_read, csv_write, csv_write_mapped, table_read, table_write
from cmdb.query import DATASETS, OPERATORS, Filter, Query, QueryError, column_kind
from cmdb.table import CmdbTable
from cmdb.tests import workers
from devtools.cmdbdata import merged_csv_scale
from exports import selectors as export_selectors
from exports.columns import TYPE_COLUMN, VM_TYPE_VALUE, ColumnSet
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

# Cells the generated export does not have: case folding, whitespace, the search separator, numbers written as
# text, dates of every precision, address lists, line breaks, NUL, long digit runs.
ODD_NAMES = ["Straße-01", "STRASSE-02", "İstanbul-1", "ΣΊΣΥΦΟΣ", "srv\x1esep", " padded ", "\t", "x\x00y",
             "\uff11\uff12\uff13", "00042", "a" + "9" * 40, "zürich-٣", "multi\nline", "=SUM(A1)",
             "ﬁle-server"]  # fmt: skip
ODD_IPS = [
    "10.2.0.4/24, 10.2.0.40/24",
    "fe80::1/64; 10.9.9.9/8",
    "not an ip",
    " 10.2.1.9/24 ",
    "010.2.0.5/24",
    "::ffff:10.2.0.5",
]
ODD_DATES = [
    "2024",
    "2024-05",
    "2024-05-31",
    "2024-05-31T23:59:00Z",
    "\uff12\uff10\uff12\uff14-01-01",
    "May 2024",
    " 2024-01-01",
]
ODD_NUMBERS = ["1.0", "1", "-0", "1e3", ".5", "+7", " 8 ", "1_000", "inf", "n/a", "١٢"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _odd_csv(template: Path, target: Path, *, rows: int, bom: bool = False) -> None:
    """A merged CSV of ``rows`` generated rows plus rows holding ``ODD_*`` cells in the matching columns."""
    scaled = target.with_suffix(".scaled.csv")
    merged_csv_scale(template, scaled, devices=rows // 2, vms=rows - rows // 2)
    with scaled.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        body = list(reader)
    scaled.unlink()
    rng = random.Random(7)
    column = {label: index for index, label in enumerate(header)}
    for number in range(60):
        row = list(rng.choice(body))
        row[column["Name"]] = ODD_NAMES[number % len(ODD_NAMES)]
        row[column["IP Address"]] = ODD_IPS[number % len(ODD_IPS)]
        row[column["Created"]] = ODD_DATES[number % len(ODD_DATES)]
        row[column["Memory (MB)"]] = ODD_NUMBERS[number % len(ODD_NUMBERS)]
        row[column["Tags"]] = rng.choice(["lab, prod", "Lab", " prod ,  ", "", "Äpfel, lab"])
        row[column["Comments"]] = rng.choice(ODD_NAMES)
        body.insert(rng.randrange(len(body)), row)
    with target.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)


@pytest.fixture
def merged_csv(export, tmp_path: Path) -> Path:
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    target = tmp_path / "runs" / "000001" / "netbox_merged_export.csv"
    target.parent.mkdir(parents=True)
    _odd_csv(export_selectors.artifact_path(artifact), target, rows=3000, bom=True)
    return target


# --- the oracle --------------------------------------------------------------------------------------------------


def _random_value(rng: random.Random, old: OldTable, label: str) -> str:
    cell = old.cell(rng.randrange(old.size), label)
    choice = rng.random()
    if choice < 0.3 or not cell:
        return cell
    if choice < 0.5:
        start = rng.randrange(len(cell))
        return cell[start : start + rng.randint(1, 6)]
    if choice < 0.65:
        return cell.upper() if rng.random() < 0.5 else f"  {cell.casefold()} "
    return rng.choice(ODD_NAMES + ODD_IPS + ODD_DATES + ODD_NUMBERS + ["", "a", "1", "10.2.0.0/16", "fe80::/10"])


def _random_filter(rng: random.Random, old: OldTable, labels: list[str]) -> Filter:
    label = rng.choice(labels)
    kind = column_kind(label)
    op = rng.choice(OPERATORS + ("gte", "lte") * (kind != "text"))
    value = _random_value(rng, old, label)
    if op in ("gte", "lte") and kind == "date" and rng.random() < 0.7:
        value = value[: rng.choice((4, 7, 10, 13, 16))]
    return Filter(label, op, value)


def _random_query(rng: random.Random, old: OldTable) -> Query:
    dataset = rng.choice(DATASETS)
    labels = [column.label for column in old.columns(dataset)]
    filters = tuple(_random_filter(rng, old, labels) for _ in range(rng.choice((0, 0, 1, 1, 2, 3))))
    any_of = tuple(
        tuple(_random_filter(rng, old, labels) for _ in range(rng.randint(1, 3))) for _ in range(rng.random() < 0.2)
    )
    search = ""
    if rng.random() < 0.4:
        search = " ".join(_random_value(rng, old, rng.choice(labels)) for _ in range(rng.randint(1, 2)))
    ordering = tuple(
        ("-" if rng.random() < 0.5 else "") + rng.choice(labels) for _ in range(rng.choice((0, 1, 1, 2, 3)))
    )
    return Query(dataset=dataset, filters=filters, any_of=any_of, search=search, ordering=ordering)


def _answer(table: Any, query: Query) -> tuple[str, Any]:
    try:
        return "rows", table.select(query).tolist()
    except QueryError as exc:
        return "error", (str(exc), exc.field)


def test_a_runs_table_answers_exactly_what_the_old_in_memory_table_answers(merged_csv: Path):
    old = OldTable.from_csv(merged_csv)
    tablefiles.table_open(merged_csv, _sha256(merged_csv))
    new = CmdbTable.open(tablefiles.table_path(merged_csv))
    assert new.labels == old.labels and new.size == old.size == 3060
    for dataset in DATASETS:
        assert new.columns(dataset) == old.columns(dataset) and new.count(dataset) == old.count(dataset)
    rng = random.Random(25)
    answers: dict[str, int] = {"rows": 0, "error": 0, "matched": 0}
    for _ in range(400):
        query = _random_query(rng, old)
        expected = _answer(old, query)
        assert _answer(new, query) == expected, query
        if expected[0] == "rows":  # a page: picked by partial sort when it is near the start of many rows
            offset, limit = rng.choice((0, 0, 3, 40, 2000)), rng.choice((1, 10, 50))
            count, window = new.select_page(query, offset, limit)
            assert (count, window.tolist()) == (len(expected[1]), expected[1][offset : offset + limit]), query
        answers[expected[0]] += 1
        answers["matched"] += expected[0] == "rows" and bool(expected[1])
    assert answers["rows"] > 250 and answers["matched"] > 150 and answers["error"] > 10  # the battery bites

    rows = np.arange(old.size)
    assert [new.row(r) for r in range(0, old.size, 97)] == [old.row(r) for r in range(0, old.size, 97)]
    assert [new.row_id(r) for r in rows] == [old.row_id(r) for r in rows]
    assert list(new.rows_values(rows[::13], old.labels)) == list(old.rows_values(rows[::13], old.labels))
    assert new.longest(rows, old.labels) == old.longest(rows, old.labels)
    for label in ("Name", "Tags", "Site", "Created", "Memory (MB)"):
        assert new.group_counts(rows[::3], label) == old.group_counts(rows[::3], label)
        assert new.group_counts(rows, label, split=True) == old.group_counts(rows, label, split=True)
    for dataset in DATASETS:
        for identifier in ("devices-7", "vms-7", "7", "1500", "vms-99999", "devices-", "x", " vms-3 "):
            try:
                expected_row = old.find(dataset, identifier)
            except QueryError as exc:
                with pytest.raises(QueryError, match=re.escape(str(exc))):
                    new.find(dataset, identifier)
            else:
                assert new.find(dataset, identifier) == expected_row


def test_sorting_and_searching_every_column_match_the_old_table(merged_csv: Path):
    old = OldTable.from_csv(merged_csv)
    new = CmdbTable.from_csv(merged_csv)
    for label in old.labels:
        for direction in ("", "-"):
            query = Query(ordering=(direction + label,))
            assert new.select(query).tolist() == old.select(query).tolist(), query
    rng = random.Random(3)
    for _ in range(150):
        label = rng.choice(old.labels)
        term = _random_value(rng, old, label).strip()
        query = Query(search=term[:8])
        assert new.select(query).tolist() == old.select(query).tolist(), query


# --- one build, shared -------------------------------------------------------------------------------------------


def test_two_worker_processes_reading_one_table_build_it_once(export, tmp_path: Path):
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    target = tmp_path / "runs" / "000002" / "netbox_merged_export.csv"
    target.parent.mkdir(parents=True)
    merged_csv_scale(export_selectors.artifact_path(artifact), target, devices=20_000, vms=30_000)
    sha256 = _sha256(target)
    context = multiprocessing.get_context("spawn")  # real, separate interpreters
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=workers.open_table, args=(str(target), sha256, barrier, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert {pid for pid, *_ in answers} == {process.pid for process in processes}
    assert sorted(built for _, built, _, _ in answers) == [False, True]  # one build, one reader
    assert answers[0][2:] == answers[1][2:] and answers[0][2] == 50_000 and answers[0][3]
    inode = tablefiles.table_path(target).stat().st_ino
    _, built = tablefiles.table_open(target, sha256)
    assert not built and tablefiles.table_path(target).stat().st_ino == inode
    assert sorted(path.name for path in target.parent.iterdir()) == [
        ".cmdb_table.lock",
        "cmdb_table.arrow",
        "netbox_merged_export.csv",
    ]


def test_a_file_of_another_csv_or_format_is_built_again(merged_csv: Path):
    sha256 = _sha256(merged_csv)
    _, built = tablefiles.table_open(merged_csv, sha256)
    assert built
    path = tablefiles.table_path(merged_csv)
    assert table_read(path, expect_sha256=sha256).metadata["source_sha256"] == sha256
    with pytest.raises(TableFileError, match="another CSV"):
        table_read(path, expect_sha256="0" * 64)
    with merged_csv.open("a", encoding="utf-8") as handle:
        handle.write("," * (len(CmdbTable.from_csv(merged_csv).labels) - 1) + "\r\n")
    changed = _sha256(merged_csv)
    table, built = tablefiles.table_open(merged_csv, changed)
    assert built and table.size == 3061
    path.write_bytes(b"not an arrow file")
    table, built = tablefiles.table_open(merged_csv, changed)
    assert built and table.size == 3061


@pytest.mark.parametrize("block_size", [None, 1 << 15])
def test_the_streamed_build_writes_the_bytes_of_the_build_in_memory(merged_csv: Path, tmp_path: Path, block_size):
    # One block, then about a hundred: the columns are encoded alone from the spilled cells, in the same bytes.
    folder = tmp_path / "streamed"
    folder.mkdir()
    streamed, whole = folder / ".cmdb_table.arrow.0123.part", tmp_path / "whole.arrow"
    csv_write(merged_csv, streamed, source_sha256="abc", block_size=block_size)
    table_write(whole, *csv_read(merged_csv), source_sha256="abc")
    assert streamed.read_bytes() == whole.read_bytes()
    assert [path.name for path in folder.iterdir()] == [streamed.name]  # the spills are gone


def test_the_build_child_writes_the_same_file_without_importing_pandas(merged_csv: Path, tmp_path: Path):
    # The child's function in a fresh interpreter, as a child forked from a run's process that has no pandas: pyarrow
    # would import it (60-80 MB of the child's own memory); refused, it writes the same bytes.
    sha256 = hashlib.sha256(merged_csv.read_bytes()).hexdigest()
    script = (
        "import sys; from pathlib import Path; from cmdb import tablefiles; "
        f"assert tablefiles.table_build_child(Path({str(merged_csv)!r}), {sha256!r}); "
        "print('pandas' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
    whole = tmp_path / "whole.arrow"
    table_write(whole, *csv_read(merged_csv), source_sha256=sha256)
    assert tablefiles.table_path(merged_csv).read_bytes() == whole.read_bytes()


_FREED_SCRIPT = """
import sys, time
import numpy as np, pyarrow as pa, pyarrow.compute as pc
from cmdb import tablefiles

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20

if sys.argv[1] == "build-child":
    assert tablefiles.allocate_returnably()
np.ones(32 << 20, np.uint8).sum()  # glibc's mmap threshold grows past what was freed: later arrays are the heap's
source = pa.array(np.arange(4 << 20))
before = resident_mb()
small = []
for _ in range(4):  # as a column's encoding does: large temporaries freed between small arrays that stay
    large = np.ones(16 << 20, np.uint8)
    small.append(np.ones(64, np.uint8))
    doubled = pc.multiply(source, 2)  # 32 MB from pyarrow's allocator
    small.append(pc.add(source.slice(0, 8), 1))
    del large, doubled
    time.sleep(0.05)
print(resident_mb() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_the_build_child_hands_large_freed_arrays_back_to_the_system():
    # A column's encoding frees a dozen arrays of a few MB each (at 500,000 rows); pyarrow's allocator and glibc's
    # heap kept their pages, so the build child held every temporary of a column at once (about 210 MB private at
    # 500,000 rows, 145 MB with this). Measured in fresh interpreters: the build child's allocators, then the defaults.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def kept_mb(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _FREED_SCRIPT, mode], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert kept_mb("build-child") < 8
    assert kept_mb("default") > 32  # what the test would see without it: the allocators' defaults keep the pages


def test_the_streamed_build_of_a_csv_without_rows_or_columns(tmp_path: Path):
    for text in ("Name,ID\r\n", ""):
        source, streamed, whole = tmp_path / "merged.csv", tmp_path / "streamed.arrow", tmp_path / "whole.arrow"
        source.write_text(text, encoding="utf-8")
        csv_write(source, streamed)
        table_write(whole, *csv_read(source))
        assert streamed.read_bytes() == whole.read_bytes()
        assert table_read(streamed).size == 0


def test_a_builder_that_died_leaves_nothing_the_next_build_keeps(merged_csv: Path):
    stale = merged_csv.parent / f".{tablefiles.TABLE_FILE}.0123456789abcdef{tablefiles.PARTIAL_SUFFIX}"
    stale.write_bytes(b"half a file")
    assert not stale.match(".*.tmp")  # the run sweeper would delete it under a live build
    tablefiles.table_open(merged_csv, _sha256(merged_csv))
    assert not stale.exists()
    assert sorted(p.name for p in merged_csv.parent.iterdir() if p.name.startswith(".")) == [".cmdb_table.lock"]


def test_a_run_that_reused_the_previous_files_links_the_previous_table(merged_csv: Path):
    sha256 = _sha256(merged_csv)
    tablefiles.table_open(merged_csv, sha256)
    later = merged_csv.parent.parent / "000009" / merged_csv.name
    later.parent.mkdir()
    os.link(merged_csv, later)  # what exports.files.files_reuse does for an unchanged run
    table, built = tablefiles.table_open(later, sha256)
    assert built and table.size == 3060
    assert tablefiles.table_path(later).stat().st_ino == tablefiles.table_path(merged_csv).stat().st_ino


def test_a_table_that_cannot_be_written_is_built_in_memory(merged_csv: Path, monkeypatch, caplog):
    def read_only(csv_path: Path, sha256: str, column_set: object = None, previous: object = None) -> bool:
        raise PermissionError(13, "Permission denied", str(csv_path.parent / tablefiles.LOCK_FILE))

    monkeypatch.setattr(tablefiles, "table_build", read_only)  # root may write anywhere: refuse as a read-only disk
    table, built = tablefiles.table_open(merged_csv, _sha256(merged_csv))
    assert built and table.size == 3060 and not tablefiles.table_path(merged_csv).exists()
    assert "building it in memory" in caplog.text


def test_a_run_without_its_table_file_is_503_while_it_is_built_then_served(export, client_for, settings):
    viewer = client_for("viewer")
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    path = tablefiles.table_path(export_selectors.artifact_path(artifact))
    assert viewer.get("/api/cmdb/merged/rows/").status_code == 200 and path.is_file()
    path.unlink()  # a run from before the file was written after each run
    from cmdb.selectors import cmdb_tables_clear

    cmdb_tables_clear()
    settings.CMDB_TABLE_BUILD_WAIT = 0
    response = viewer.get("/api/cmdb/merged/rows/")
    assert response.status_code == 503 and "being prepared" in response.json()["detail"]
    settings.CMDB_TABLE_BUILD_WAIT = 60
    body = viewer.get("/api/cmdb/merged/rows/?q=fra1").json()  # waits for the build that is under way
    assert body["count"] > 0 and path.is_file()
    page = viewer.get("/cmdb/")
    assert page.status_code == 200


def test_the_after_run_service_writes_a_runs_table_once(export):
    from cmdb.services import cmdb_table_build

    # The run's after-run step wrote it when the run succeeded.
    step = next(record for record in export.after_run if record["step"] == "cmdb-table")
    assert step["outcome"] == "succeeded" and step["note"].startswith("CMDB table: 100 rows written in "), step
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    path = tablefiles.table_path(export_selectors.artifact_path(artifact))
    assert path.is_file()
    assert cmdb_table_build(run=export) == "CMDB table: already written (100 rows)."
    path.unlink()  # gone (or from an older format): written again
    assert cmdb_table_build(run=export).startswith("CMDB table: 100 rows written in ")
    assert path.is_file()


# --- a table built from the previous run's -----------------------------------------------------------------------


def _rewritten(source: Path, target: Path, edit: Any) -> Path:
    """``source`` (a merged CSV) with its rows as ``edit(column, rows)`` leaves them, written as the export writes."""
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    rows = edit({label: index for index, label in enumerate(header)}, rows)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return target


def _both_ways(source: Path, previous: Path, folder: Path, column_set: Any = None) -> tuple[bytes, list[str]]:
    """The table of ``source`` built from scratch and from ``previous``: the same bytes (returned), and the labels
    of the columns built from ``previous``."""
    scratch, reusing = folder / "scratch.arrow", folder / "reusing.arrow"
    csv_write(source, scratch, source_sha256="s", column_set=column_set)
    reused = csv_write(source, reusing, source_sha256="s", column_set=column_set, previous=previous)
    assert reusing.read_bytes() == scratch.read_bytes()
    whole = folder / "whole.arrow"
    table_write(whole, *csv_read(source), source_sha256="s", column_set=column_set)
    assert whole.read_bytes() == scratch.read_bytes()
    return scratch.read_bytes(), reused


def _an_incremental_runs_edits(column: dict[str, int], rows: list[list[str]]) -> list[list[str]]:
    """What a run with a few objects changed, added and deleted does to the merged CSV, with new values that sort
    between the previous ones (natural order, numbers, dates), non-ASCII and odd cells, and cells emptied."""
    rng = random.Random(11)
    names = sorted({row[column["Name"]] for row in rows})
    for number, index in enumerate(rng.sample(range(len(rows)), 90)):
        row = rows[index]
        row[column["Last updated"]] = f"2026-12-07T10:{number % 60:02d}:00Z"
        change = number % 9
        if change == 0:
            row[column["Name"]] = rng.choice(names) + "a"  # right after an existing name
        elif change == 1:
            row[column["Name"]] = f"fra1-srv{rng.randrange(1, 300):03d}5"  # a digit run between existing ones
        elif change == 2:
            row[column["Memory (MB)"]] = str(rng.randrange(1, 70000) + 0.5)  # a number between existing ones
        elif change == 3:
            row[column["Site"]] = ""  # emptied
            row[column["Serial number"]] = ""
        elif change == 4:
            row[column["Comments"]] = rng.choice(["Zürich 2", "ΣΊΣΥΦΟΣ-3", "x\x00z", "b" + "7" * 30, " lead"])
        elif change == 5:
            row[column["Created"]] = f"2025-0{rng.randrange(1, 10)}-15T12:00:00Z"
        elif change == 6:
            row[column["Memory (MB)"]] = "lots"  # text in a number column
        elif change == 7:
            row[column["Status"]] = "Staged"
        else:
            row[column["IP Address"]] = f"10.2.{rng.randrange(256)}.{rng.randrange(256)}/24"
    for index in sorted(rng.sample(range(len(rows)), 40), reverse=True):
        del rows[index]  # deleted objects (some the only holders of their values)
    for number in range(25):
        row = list(rng.choice(rows))
        row[column["ID"]] = str(900_000 + number)
        row[column["Name"]] = f"added-{number}"
        rows.insert(rng.randrange(len(rows)), row)
    rows.insert(0, rows.pop())  # first appearances move: the dictionaries' order changes
    return rows


def test_a_table_built_from_the_previous_runs_table_is_the_bytes_of_one_built_from_scratch(
    merged_csv: Path, tmp_path: Path
):
    previous = tmp_path / "previous.arrow"
    assert csv_write(merged_csv, previous) == []
    changed = _rewritten(merged_csv, tmp_path / "changed.csv", _an_incremental_runs_edits)
    data, reused = _both_ways(changed, previous, tmp_path)
    # Built from the previous table: every column but those with many new values.
    assert {"Name", "Last updated", "ID", "IP Address", "Comments", "Created", "Site", "Status"} <= set(reused)
    assert {"Memory (MB)", "Console ports"} <= set(reused)  # numbers, with ties ("1" and "1.0") in their order
    assert len(reused) >= len(csv_read(changed)[0]) - 3
    # And the table answers as the old in-memory one does.
    table = CmdbTable.of(table_read(data))
    old = OldTable.from_csv(changed)
    for label in ("Name", "Memory (MB)", "Created", "Comments", "Site"):
        for direction in ("", "-"):
            query = Query(ordering=(direction + label,))
            assert table.select(query).tolist() == old.select(query).tolist(), query


def test_random_edits_build_the_same_bytes_from_the_previous_table(merged_csv: Path, tmp_path: Path):
    # Previous and next CSVs of random edits of random rows (values of other rows and columns, new text, emptied
    # cells), deletions and additions: each next table, built from the one before, is the bytes of a scratch build.
    with merged_csv.open(newline="", encoding="utf-8-sig") as handle:
        pool = [cell for row in list(csv.reader(handle))[1:400] for cell in row]
    previous = tmp_path / "previous.arrow"
    csv_write(merged_csv, previous)
    source = merged_csv
    for step in range(4):
        rng = random.Random(step)

        def edit(column: dict[str, int], rows: list[list[str]], rng: random.Random = rng) -> list[list[str]]:
            for index in rng.sample(range(len(rows)), 30):
                label = rng.choice(list(column))
                rows[index][column[label]] = rng.choice([rng.choice(pool), "", f"new {rng.random()}", "007", "7.0"])
            for index in sorted(rng.sample(range(len(rows)), 10), reverse=True):
                del rows[index]
            for _ in range(10):
                rows.insert(rng.randrange(len(rows)), list(rng.choice(rows)))
            return rows

        source = _rewritten(source, tmp_path / f"step{step}.csv", edit)
        folder = tmp_path / f"built{step}"
        folder.mkdir()
        _, reused = _both_ways(source, previous, folder)
        assert len(reused) > 40
        previous = folder / "scratch.arrow"


def test_ties_in_a_columns_order_build_that_column_from_scratch(merged_csv: Path, tmp_path: Path):
    # Values equal in their sort keys are ordered by their codes (first appearance in the CSV). A new value tied
    # with a kept one (a date differing only in case: folded alike; "0.0" beside "0"), or kept ones whose first
    # appearances swapped ("1.0" and "1" in Memory (MB)): those columns are built from scratch.
    previous = tmp_path / "previous.arrow"
    csv_write(_rewritten(merged_csv, tmp_path / "before.csv", lambda column, rows: rows[:-1]), previous)

    def ties(column: dict[str, int], rows: list[list[str]]) -> list[list[str]]:
        created = next(row[column["Created"]] for row in rows if "T" in row[column["Created"]])
        rows[5][column["Created"]] = created.lower()
        assert "0" in {row[column["Console ports"]] for row in rows}
        rows[7][column["Console ports"]] = "0.0"
        rows[8][column["Last updated"]] = "2026-12-07T10:00:00Z"
        memory = [row[column["Memory (MB)"]] for row in rows]
        second = max(memory.index("1"), memory.index("1.0"))
        rows.insert(0, rows.pop(second))
        return rows

    _, reused = _both_ways(_rewritten(merged_csv, tmp_path / "ties.csv", ties), previous, tmp_path)
    assert not {"Created", "Console ports", "Memory (MB)"} & set(reused)
    assert "Last updated" in reused and "Name" in reused and "ID" in reused


def test_a_column_whose_kind_changed_is_built_from_scratch(merged_csv: Path, tmp_path: Path):
    from exports.columns import ColumnSet

    previous = tmp_path / "previous.arrow"
    csv_write(merged_csv, previous)
    column_set = ColumnSet().as_dict()
    for dataset in column_set.values():
        for column in dataset:
            if column["header"] == "Comments":
                column.update(source="cf:comments_count", type="integer")  # text before, a number now
    _, reused = _both_ways(merged_csv, previous, tmp_path, column_set=column_set)
    assert "Comments" not in reused and "Name" in reused
    assert len(reused) == len(csv_read(merged_csv)[0]) - 1


def test_a_previous_table_of_another_format_or_unreadable_is_not_used(merged_csv: Path, tmp_path: Path):
    import pyarrow as pa

    previous = tmp_path / "previous.arrow"
    csv_write(merged_csv, previous)
    with pa.ipc.open_file(pa.memory_map(str(previous))) as reader:
        schema, batch = reader.schema, reader.get_batch(0)
    metadata = json.loads(schema.metadata[b"enreach.cmdb"])
    older = tmp_path / "older.arrow"
    with pa.ipc.new_file(
        str(older), schema.with_metadata({b"enreach.cmdb": json.dumps({**metadata, "version": 0})})
    ) as writer:
        writer.write_batch(batch)
    del batch
    # A column of another layout (no flags): that column alone from scratch.
    index = metadata["labels"].index("Status")
    layout = tmp_path / "layout.arrow"
    with pa.ipc.open_file(pa.memory_map(str(previous))) as reader:
        batch = reader.get_batch(0)
        column = batch.column(index)
        dictionary = column.dictionary
        names = [dictionary.type.field(i).name for i in range(dictionary.type.num_fields)]
        struct = pa.StructArray.from_arrays(
            [dictionary.field(name) for name in names if name != "flags"], [name for name in names if name != "flags"]
        )
        arrays = list(batch.columns)
        arrays[index] = pa.DictionaryArray.from_arrays(column.indices, struct)
        fields = [field if i != index else pa.field(field.name, arrays[index].type) for i, field in enumerate(schema)]
        with pa.ipc.new_file(str(layout), pa.schema(fields, metadata=schema.metadata)) as writer:
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=schema.metadata)))
        del batch, column, dictionary, struct, arrays
    garbage = tmp_path / "garbage.arrow"
    garbage.write_bytes(b"not an arrow file")
    for earlier, expected in ((older, 0), (garbage, 0), (tmp_path / "missing.arrow", 0), (layout, 65)):
        folder = tmp_path / earlier.stem
        folder.mkdir()
        _, reused = _both_ways(merged_csv, earlier, folder)
        assert len(reused) == expected and "Status" not in reused, earlier


def test_the_after_run_step_builds_from_the_previous_runs_table(export, netbox):
    from cmdb.services import cmdb_table_build

    device = netbox.devices[3]
    netbox.update_device(device["id"], serial="SERIAL-CHANGED-25")
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert (run.status, run.mode) == ("succeeded", "incremental"), run.error
    step = next(record for record in run.after_run if record["step"] == "cmdb-table")
    previous_folder = export_selectors.artifact_path(export.artifacts.get(name="netbox_merged_export.csv")).parent
    assert step["outcome"] == "succeeded" and f"from run {previous_folder.name}'s table" in step["note"], step
    artifact = run.artifacts.get(name="netbox_merged_export.csv")
    path = tablefiles.table_path(export_selectors.artifact_path(artifact))
    scratch = path.parent / "scratch.arrow"
    csv_write(
        export_selectors.artifact_path(artifact), scratch, source_sha256=artifact.sha256, column_set=run.columns or None
    )
    expected = scratch.read_bytes()
    scratch.unlink()
    assert path.read_bytes() == expected
    path.unlink()  # built again (as for a lazily built run): from the newest other run's table, the same bytes
    assert cmdb_table_build(run=run).startswith("CMDB table: 100 rows written in ")
    assert path.read_bytes() == expected


# --- a table built from the previous run's, by the merged CSV's row map ------------------------------------------

Tracked = list[tuple[int, list[str]]]  # each next row: the previous row it copies (or -1, made now) and its cells


def _next_run(merged_csv: Path, tmp_path: Path, edit: Any) -> tuple[Path, Path, str]:
    """The previous run's folder (its merged CSV and table file) and the next run's merged CSV, written as the export
    writes it (with its index) from the previous rows as ``edit(column, tracked)`` leaves them, with its row map: the
    previous table, the next CSV and its SHA-256."""
    from exports.csvfiles import write_csv
    from exports.rowmap import row_map_write

    with merged_csv.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    before, after = tmp_path / "runs" / "000010", tmp_path / "runs" / "000011"
    before.mkdir(parents=True)
    after.mkdir()
    previous_csv = before / merged_csv.name
    write_csv(previous_csv, header, rows, index=True)
    previous = tablefiles.table_path(previous_csv)
    csv_write(previous_csv, previous, source_sha256=_sha256(previous_csv))
    tracked = edit({label: index for index, label in enumerate(header)}, [(n, list(row)) for n, row in enumerate(rows)])
    source = after / merged_csv.name
    info = write_csv(source, header, [cells for _, cells in tracked], index=True)
    origins = [origin for origin, _ in tracked]
    row_map_write(source, origins, sha256=info.sha256, previous=before.name, previous_rows=len(rows))
    return previous, source, info.sha256


def _mapped_and_scratch(previous: Path, source: Path, sha256: str) -> tuple[list[str] | None, bytes]:
    """The table of ``source`` built by its row map from ``previous`` (the labels built from it, or ``None`` when it
    would not) and from scratch: the same bytes when built (returned)."""
    scratch, mapped = source.parent / "scratch.arrow", source.parent / "mapped.arrow"
    mapped.unlink(missing_ok=True)
    csv_write(source, scratch, source_sha256=sha256)
    reused = csv_write_mapped(source, mapped, source_sha256=sha256, previous=previous)
    if reused is None:
        assert not mapped.exists()
        assert not list(source.parent.glob("mapped.*")), "a spill left behind"
    else:
        assert mapped.read_bytes() == scratch.read_bytes()
    return reused, scratch.read_bytes()


def _made(tracked: tuple[int, list[str]], column: dict[str, int], cells: dict[str, str]) -> tuple[int, list[str]]:
    """A row made now from ``tracked``'s cells, ``cells`` (label -> cell) changed."""
    row = list(tracked[1])
    for label, value in cells.items():
        row[column[label]] = value
    return -1, row


def test_changes_at_the_start_middle_and_end_build_the_bytes_of_a_scratch_build(merged_csv: Path, tmp_path: Path):
    def edit(column: dict[str, int], rows: Tracked) -> Tracked:
        for index in (0, 1, len(rows) // 2, len(rows) - 2, len(rows) - 1):
            cells = {"Last updated": f"2026-12-08T00:0{index % 10}:00Z", "Serial number": ""}
            rows[index] = _made(rows[index], column, cells)
        rows[7] = _made(rows[7], column, {"Name": "fra1-srv0015"})  # a digit run between existing names: ranks merged
        return rows

    reused, data = _mapped_and_scratch(*_next_run(merged_csv, tmp_path, edit))
    assert reused is not None and {"Name", "Last updated", "ID", "Site"} <= set(reused)
    assert table_read(data).size == 3060


def test_additions_deletions_and_values_new_and_gone_build_the_bytes_of_a_scratch_build(
    merged_csv: Path, tmp_path: Path
):
    gone: list[str] = []

    def edit(column: dict[str, int], rows: Tracked) -> Tracked:
        rng = random.Random(5)
        # Every row of one status deleted: the value is gone from the dictionary; a status never seen appears.
        statuses = [row[column["Status"]] for _, row in rows]
        gone.append(min(set(statuses), key=statuses.count))
        rows = [each for each in rows if each[1][column["Status"]] != gone[0]]
        for index in sorted(rng.sample(range(len(rows)), 30), reverse=True):
            del rows[index]
        for number in range(20):
            added = _made(rng.choice(rows), column, {"ID": str(800_000 + number), "Name": f"added-{number:02d}"})
            rows.insert(rng.randrange(len(rows)), added)
        rows[3] = _made(rows[3], column, {"Status": "Decommissioning-25"})
        rows.insert(0, _made(rows[-1], column, {"ID": "799999", "Memory (MB)": "12.5"}))  # first appearances move
        return rows

    reused, data = _mapped_and_scratch(*_next_run(merged_csv, tmp_path, edit))
    assert reused is not None and "Status" in reused
    table = table_read(data)
    status = next(column for column in table.columns if column.label == "Status")
    values = status.values.take(np.arange(len(status.values)))
    assert "Decommissioning-25" in values and gone[0] not in values


def test_a_kind_gaining_rows_shifts_the_next_kinds_rows_and_builds_the_same_bytes(merged_csv: Path, tmp_path: Path):
    def edit(column: dict[str, int], rows: Tracked) -> Tracked:
        types = [row[column[TYPE_COLUMN]] for _, row in rows]
        first_vm = types.index(VM_TYPE_VALUE)
        added = [_made(rows[n], column, {"ID": str(700_000 + n), "Name": f"new-device-{n}"}) for n in range(40)]
        return rows[:first_vm] + added + rows[first_vm:]

    reused, _ = _mapped_and_scratch(*_next_run(merged_csv, tmp_path, edit))
    assert reused is not None


def test_random_edits_by_the_row_map_build_the_bytes_of_a_scratch_build(merged_csv: Path, tmp_path: Path):
    with merged_csv.open(newline="", encoding="utf-8-sig") as handle:
        pool = [cell for row in list(csv.reader(handle))[1:400] for cell in row]
    for step in range(3):
        rng = random.Random(100 + step)

        def edit(column: dict[str, int], rows: Tracked, rng: random.Random = rng) -> Tracked:
            for index in rng.sample(range(len(rows)), 40):
                label = rng.choice(list(column))
                value = rng.choice([rng.choice(pool), "", f"new {rng.random()}", "007", "7.0", "Zürich", "x\x00y"])
                rows[index] = _made(rows[index], column, {label: value})
            for index in sorted(rng.sample(range(len(rows)), 15), reverse=True):
                del rows[index]
            for _ in range(15):
                rows.insert(rng.randrange(len(rows)), (-1, list(rng.choice(rows)[1])))
            return rows

        folder = tmp_path / f"step{step}"
        folder.mkdir()
        reused, _ = _mapped_and_scratch(*_next_run(merged_csv, folder, edit))
        assert reused is not None and len(reused) > 40


def test_columns_whose_values_keep_their_order_take_the_previous_dictionary_as_the_file_holds_it(
    merged_csv: Path, tmp_path: Path
):
    from cmdb.columnar import PreviousTable, _mapped_ids, _mapped_unchanged

    def edit(column: dict[str, int], rows: Tracked) -> Tracked:
        statuses = [row[column["Status"]] for _, row in rows]
        order = list(dict.fromkeys(statuses))
        # The first row of the status seen first deleted while it has a later row past the second status's first:
        # no value new or gone, but the first appearances reorder (that column is encoded again).
        later = next(n for n, status in enumerate(statuses) if status == order[0] and n > statuses.index(order[1]))
        kept = [each for n, each in enumerate(rows) if statuses[n] != order[0] or n >= later]
        kept[5] = _made(kept[5], column, {"Description": "changed-25"})
        return kept

    previous, source, sha256 = _next_run(merged_csv, tmp_path, edit)
    reused, _ = _mapped_and_scratch(previous, source, sha256)
    assert reused is not None and {"Status", "Site", "Description"} <= set(reused)

    # A column whose values all stay, first seen in the same order: its dictionary is the previous file's, in place.
    with PreviousTable.open(previous) as earlier:
        assert earlier is not None
        site = earlier.column("Site")
        assert site is not None and site.codes is not None and site.dictionary is not None
        size = len(site.codes)
        copied = np.arange(size, dtype=np.int32)
        cells = pa.chunked_array([pa.array([], type=pa.string())])
        ids, _, new = _mapped_ids(site, cells, copied, copied, np.zeros(0, dtype=np.int32))
        assert not len(new) and ids.dtype == site.codes.dtype
        array = _mapped_unchanged(site, ids)
        assert array is not None and array.dictionary.equals(site.dictionary)
        mapping = earlier.mapping
        start = pa.py_buffer(mapping).address
        value_bytes = array.dictionary.field("value").buffers()[2]
        assert start <= value_bytes.address < start + len(mapping)  # not copied, nor recomputed
        # Ids first seen out of order, or a value missing, are not the previous dictionary's order.
        assert _mapped_unchanged(site, ids[::-1].copy()) is None
        assert _mapped_unchanged(site, np.zeros_like(ids)) is None or len(site.values) == 1
        del array, value_bytes


def test_a_missing_damaged_or_wrong_row_map_falls_back_to_the_build_from_scratch(merged_csv: Path, tmp_path: Path):
    from exports.rowmap import row_map_path, row_map_read, row_map_write

    def edit(column: dict[str, int], rows: Tracked) -> Tracked:
        rows[10] = _made(rows[10], column, {"Name": "changed-10"})
        del rows[20]
        return rows

    previous, source, sha256 = _next_run(merged_csv, tmp_path, edit)
    reused, expected = _mapped_and_scratch(previous, source, sha256)
    assert reused is not None
    mapped = row_map_read(source)
    assert mapped is not None
    origins = mapped.rows.tolist()

    def written(rows: list[int], **meta: Any) -> None:
        row_map_write(source, rows, **{"sha256": sha256, "previous": "000010", "previous_rows": 3060, **meta})

    shifted = [origin + 1 if 100 <= origin < 3000 else origin for origin in origins]  # off by one in the middle
    cases: list[tuple[str, Any]] = [
        ("shifted", lambda: written(shifted)),
        ("another CSV", lambda: written(origins, sha256="0" * 64)),
        ("another previous run", lambda: written(origins, previous="000009")),
        ("another previous row count", lambda: written(origins, previous_rows=3061)),
        ("a row short", lambda: written(origins[:-1])),
        ("every row made", lambda: written([-1] * len(origins))),
        ("damaged", lambda: row_map_path(source).write_bytes(row_map_path(source).read_bytes()[:-3] + b"\x00")),
        ("missing", lambda: row_map_path(source).unlink()),
    ]
    for name, damage in cases:
        written(origins)
        damage()
        reused, data = _mapped_and_scratch(previous, source, sha256)
        assert reused is None and data == expected, name
        # The build the after-run step runs falls back to ``csv_write`` and writes the same file.
        tablefiles.table_path(source).unlink(missing_ok=True)
        assert tablefiles.table_build(source, sha256, previous=previous)
        assert tablefiles.table_path(source).read_bytes() == expected, name
    # Without the CSV's index (a run no longer the newest), or with a previous table of other columns, neither.
    written(origins)
    index = source.with_name(f".{source.name}.index")
    saved = index.read_bytes()
    index.unlink()
    assert _mapped_and_scratch(previous, source, sha256)[0] is None
    index.write_bytes(saved)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns))
    assert _mapped_and_scratch(previous, source, sha256)[0] is not None
    column_set = ColumnSet().as_dict()
    for dataset in column_set.values():
        for column in dataset:
            if column["header"] == "Comments":
                column.update(source="cf:comments_count", type="integer")
    other = tmp_path / "other.arrow"
    assert csv_write_mapped(source, other, source_sha256=sha256, previous=previous, column_set=column_set) is None


def test_an_incremental_runs_table_takes_its_copied_rows_from_the_previous_table_by_the_row_map(
    export, netbox, tmp_path: Path
):
    from exports.rowmap import row_map_path, row_map_read

    before = export_selectors.artifact_path(export.artifacts.get(name="netbox_merged_export.csv"))
    assert not row_map_path(before).exists()  # a full run copies no record
    netbox.update_device(netbox.devices[3]["id"], serial="SERIAL-CHANGED-25")
    netbox.delete_device(netbox.devices[7]["id"])
    netbox.add_device(name="zz-added-25")  # the devices gain a row: the VMs' records move
    netbox.add_device(name="zz-added-26")
    netbox.update_vm(netbox.vms[0]["id"], name="vm-renamed-25")
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert (run.status, run.mode) == ("succeeded", "incremental"), run.error
    artifact = run.artifacts.get(name="netbox_merged_export.csv")
    source = export_selectors.artifact_path(artifact)
    mapped = row_map_read(source)
    assert mapped is not None
    assert (mapped.sha256, mapped.previous, mapped.previous_rows) == (artifact.sha256, before.parent.name, 100)
    # What the map says: each copied record is the previous CSV's record it names.
    with before.open(newline="", encoding="utf-8-sig") as old, source.open(newline="", encoding="utf-8-sig") as new:
        old_rows, new_rows = list(csv.reader(old))[1:], list(csv.reader(new))[1:]
    assert len(new_rows) == len(mapped.rows) == 101
    assert [n for n, origin in enumerate(mapped.rows.tolist()) if origin < 0] == [3, 39, 40, 41]
    assert all(new_rows[n] == old_rows[origin] for n, origin in enumerate(mapped.rows.tolist()) if origin >= 0)
    # The after-run step's table is the bytes of a build by the map, and of one from scratch.
    table = tablefiles.table_path(source).read_bytes()
    scratch, by_map = tmp_path / "scratch.arrow", tmp_path / "mapped.arrow"
    csv_write(source, scratch, source_sha256=artifact.sha256, column_set=run.columns or None)
    previous = tablefiles.table_path(before)
    reused = csv_write_mapped(source, by_map, source_sha256=artifact.sha256, column_set=run.columns or None,
                              previous=previous)  # fmt: skip
    assert reused is not None and "Name" in reused
    assert table == scratch.read_bytes() == by_map.read_bytes()


def test_the_presence_bit_sets_are_the_same_a_chunk_of_bytes_at_a_time(monkeypatch: pytest.MonkeyPatch):
    from cmdb import columnar

    rng = random.Random(27)
    alphabet = ["a", "b", "Z", "0", "\x00", "\x1e", "é", "中", " "]
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 7))) for _ in range(400)]
    array = pa.array(values, type=pa.string())

    def expected(cells: list[str]) -> tuple[set[int], set[int]]:
        data = [cell.encode() for cell in cells]
        return {byte for cell in data for byte in cell}, {
            a << 8 | b for cell in data for a, b in itertools.pairwise(cell)
        }

    def bits(packed: tuple[bytes, bytes]) -> tuple[set[int], set[int]]:
        return tuple(  # type: ignore[return-value]
            set(np.flatnonzero(np.unpackbits(np.frombuffer(bit_set, dtype=np.uint8))).tolist()) for bit_set in packed
        )

    for chunk in (1, 2, 3, 5, 64, 1 << 20):  # pairs across a chunk's end are found, across a value's end are not
        monkeypatch.setattr(columnar, "_PRESENCE_CHUNK", chunk)
        for cells in (values, values[1:200], ["", "ab", ""], []):
            part = array.slice(1, 199) if cells is not values and len(cells) == 199 else pa.array(cells, pa.string())
            assert bits(columnar.presence(part)) == expected(cells), chunk
