"""The export writers (exports.csvfiles, exports.workbook): files read back with csv and openpyxl, atomic writes."""

from __future__ import annotations

import copy
import csv
import gc
import hashlib
import json
import posixpath
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from isal import isal_zlib
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet._writer import ALL_TEMP_FILES
from openpyxl.worksheet.worksheet import Worksheet

from bench import workbooks as oracle
from devtools.netbox import sample_dir
from exports import cells as xlsx_cells
from exports import transform, workbook
from exports.atomic import FileInfo
from exports.cells import EXCEL_MAX_TEXT, column_widths
from exports.columns import MERGED_COLUMNS, NUMERIC_COLUMNS, TEXT_COLUMNS, WORKBOOK_COLUMNS, workbook_column_order
from exports.csvfiles import csv_index_path, csv_indexed, csv_records, write_csv
from exports.render import Row
from exports.workbook import ColumnSizes, ExtraSheet, read_workbook_order, write_workbook
from integrations.netbox import records

SAMPLE = sample_dir()
ENGINES: list[oracle.WorkbookEngine] = ["xml", "openpyxl", "xlsxwriter"]


@cache
def _results(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((SAMPLE / name).read_text(encoding="utf-8"))["results"])


@cache
def _merged() -> tuple[Row, ...]:
    lookups = transform.Lookups.from_records(
        sites=[records.site_from_api(item) for item in _results("sites_page.json")],
        tenants=[records.tenant_from_api(item) for item in _results("tenants_page.json")],
    )
    devices = [records.device_from_api(copy.deepcopy(item)) for item in _results("devices_page.json")]
    vms = [records.virtual_machine_from_api(copy.deepcopy(item)) for item in _results("virtual_machines_page.json")]
    return tuple(transform.merged_rows(transform.device_rows(devices, lookups), transform.vm_rows(vms, lookups)))


@pytest.fixture
def merged() -> list[Row]:
    return list(_merged())


@pytest.fixture
def workbook_rows(merged: list[Row]) -> list[Row]:
    return transform.reorder(merged, MERGED_COLUMNS, WORKBOOK_COLUMNS)


def _read_csv(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.reader(handle))


def _as_csv_text(row: Row) -> list[str]:
    return ["" if value is None else str(value) for value in row]


def _temp_files(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if path.name.endswith(".tmp")]


def _cell(worksheet: Worksheet, row: int, column: str) -> Any:
    return worksheet.cell(row=row, column=WORKBOOK_COLUMNS.index(column) + 1)


def _as_excel_reads(value: Any, engine: oracle.WorkbookEngine) -> Any:
    # XlsxWriter writes a carriage return as Excel's escape _x000D_, which Excel decodes and openpyxl does not.
    return value.replace("_x000D_", "\r") if engine == "xlsxwriter" and isinstance(value, str) else value


def _typed_cells(path: Path, *, read_only: bool, engine: oracle.WorkbookEngine = "xml") -> list[list[tuple[Any, str]]]:
    """Every cell of the first sheet as (value, openpyxl data type), empty cells left out."""
    workbook = load_workbook(path, read_only=read_only)
    try:
        worksheet = workbook.worksheets[0]
        return [
            [(_as_excel_reads(cell.value, engine), cell.data_type) for cell in row if cell.value is not None]
            for row in worksheet.iter_rows()
        ]
    finally:
        workbook.close()


def _widths(worksheet: Worksheet) -> dict[int, float]:
    """Column number -> width; XlsxWriter stores a run of equal widths as one range."""
    return {
        column: dimension.width
        for dimension in worksheet.column_dimensions.values()
        for column in range(dimension.min, dimension.max + 1)
    }


def _local_extra_lengths(path: Path) -> dict[str, int]:
    """The length of each zip member's extra field in its local header (the central directory can differ)."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        return {
            info.filename: struct.unpack_from("<H", data, info.header_offset + 28)[0] for info in archive.infolist()
        }


# Columns and rows that exercise every cell path of every engine: escaping, control characters, numbers of both
# kinds, NaN and infinities, booleans, a mixed column, and text Excel would read as an escaped character.
EDGE_COLUMNS = ('Text & "more" <x>', "ID", "Serial number", "Mixed", "Ratio", "Note")
EDGE_ROWS: list[tuple[Any, ...]] = [
    ("a & b < c > d \"q\" 'x'", 1, "000417", 1, 0.1, "_x0041_ is not A"),
    ("  padded  ", 2, 417, "text", -0.5, "line1\r\nline2\rline3\n"),
    ("emoji \U0001f600 ü", "3", "", True, 1e16, "ctl\x01\x02x and a lone \ud800 surrogate"),
    ("=1+1", 4, "=x", 2.5, float("nan"), "#N/A"),
    ("@SUM(A1)", 5, "-7", "", float("inf"), "-x"),
    ("", 2**53, "+1", False, -float("inf"), "]]> <![CDATA[ &amp;"),
]


# CSV


def test_csv_round_trips_every_value_exactly(tmp_path: Path, merged: list[Row]) -> None:
    path = tmp_path / "netbox_merged_export.csv"
    write_csv(path, MERGED_COLUMNS, merged)
    header, *rows = _read_csv(path)
    assert header == list(MERGED_COLUMNS)
    assert rows == [_as_csv_text(row) for row in merged]
    comments = MERGED_COLUMNS.index("Comments")
    assert rows[2][comments] == 'multi\nline, "quoted" comment'
    assert len(rows[4][comments]) == 5000
    assert rows[1][MERGED_COLUMNS.index("Description")] == '=HYPERLINK("http://evil.example","click")'
    assert rows[0][MERGED_COLUMNS.index("Serial number")] == "000417"
    assert rows[3][0] == "sw-zürich-01"


def test_csv_is_utf8_without_bom_with_crlf_records_and_raw_newlines_inside_fields(
    tmp_path: Path, merged: list[Row]
) -> None:
    path = tmp_path / "merged.csv"
    write_csv(path, MERGED_COLUMNS, merged)
    data = path.read_bytes()
    assert data.startswith(b"Name,Status,")
    assert "sw-zürich-01".encode() in data
    assert b'"multi\nline, ""quoted"" comment"' in data
    assert data.endswith(b",vms\r\n")


def test_csv_excel_safe_prefixes_formula_like_strings_and_adds_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "safe.csv"
    columns = ("a", "b", "c", "d", "e", "f")
    rows = [("=1+1", "+31 20 123", "-x", "@SUM(A1)", -5, ""), ("a=b", "x+", "plain", "ü", 1.5, "#N/A")]
    write_csv(path, columns, rows, excel_safe=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfa,b,")
    header, *read = _read_csv(path, encoding="utf-8-sig")
    assert header == list(columns)
    assert read == [["'=1+1", "'+31 20 123", "'-x", "'@SUM(A1)", "-5", ""], ["a=b", "x+", "plain", "ü", "1.5", "#N/A"]]


def test_csv_file_info_matches_the_file(tmp_path: Path, merged: list[Row]) -> None:
    path = tmp_path / "merged.csv"
    info = write_csv(path, MERGED_COLUMNS, iter(merged))
    data = path.read_bytes()
    assert info == FileInfo(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), rows=len(merged))


def test_csv_hash_covers_many_chunks_and_the_bom(tmp_path: Path) -> None:
    rows = [(index, f"name-{index}", "x" * (index % 50)) for index in range(7000)]
    info = write_csv(tmp_path / "big.csv", ("ID", "Name", "Pad"), rows, excel_safe=True)
    data = (tmp_path / "big.csv").read_bytes()
    assert (info.size, info.sha256, info.rows) == (len(data), hashlib.sha256(data).hexdigest(), 7000)


def test_csv_same_rows_give_identical_bytes(tmp_path: Path, merged: list[Row]) -> None:
    first = write_csv(tmp_path / "a.csv", MERGED_COLUMNS, merged)
    second = write_csv(tmp_path / "b.csv", MERGED_COLUMNS, list(merged))
    assert first.sha256 == second.sha256


def test_csv_rejects_a_row_of_the_wrong_length_and_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    write_csv(path, ("a", "b"), [(1, 2)])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="Row 2"):
        write_csv(path, ("a", "b"), [(1, 2), (1, 2, 3)])
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []


def test_csv_failure_mid_write_leaves_the_previous_file_and_no_temp_file(tmp_path: Path, merged: list[Row]) -> None:
    path = tmp_path / "netbox_merged_export.csv"
    write_csv(path, MERGED_COLUMNS, merged)
    before = path.read_bytes()
    seen_temp: list[Path] = []

    def rows_then_crash() -> Iterator[Row]:
        yield from merged[:10]
        seen_temp.extend(_temp_files(tmp_path))
        raise RuntimeError("NetBox went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_csv(path, MERGED_COLUMNS, rows_then_crash())
    assert seen_temp, "the temp file should exist while rows are being written"
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netbox_merged_export.csv"]


def _spans_of(previous: Any, kept: Sequence[int]) -> list[Any]:
    """The previous CSV's records ``kept`` (positions, ascending) as runs of records (``CsvSpan``)."""
    spans, first, stop = [], -1, -1
    for position in kept:
        if position != stop:
            if stop > first:
                spans.append(previous.span(first, stop))
            first = position
        stop = position + 1
    if stop > first:
        spans.append(previous.span(first, stop))
    return spans


CSV_EDITS = {
    "nothing": ((), {}),
    "first dropped, one added first": ((0,), {0: ["new-first"]}),
    "last dropped, added last": ((39,), {40: ["new-last", "newer"]}),
    "middle changed and dropped": ((7, 8, 20), {7: ["changed-7"], 21: ["added-21"]}),
    "every other dropped": (tuple(range(0, 40, 2)), {}),
    "all dropped": (tuple(range(40)), {3: ["only"]}),
}


@pytest.mark.parametrize("excel_safe", [False, True])
@pytest.mark.parametrize("edit", CSV_EDITS)
def test_csv_runs_of_copied_records_give_the_bytes_and_index_of_rows_written_anew(
    tmp_path: Path, excel_safe: bool, edit: str
) -> None:
    # Records with commas, quotes, line breaks (\n and \r\n), non-ASCII text and numbers: their byte ranges copied
    # from the previous CSV's index equal the records written anew, with rows dropped and added anywhere.
    columns = ["name", "note", "count"]
    rows = [
        [f"host-{n}", ["", 'a, "b"', "line\nbreak", "crlf\r\nx", "caf\u00e9 \u2603", "=1+1"][n % 6], n * 1.5]
        for n in range(40)
    ]
    write_csv(tmp_path / "old.csv", columns, rows, excel_safe=excel_safe, index=True)
    previous = csv_indexed(tmp_path / "old.csv")
    assert previous is not None and previous.rows == 40
    dropped, added = CSV_EDITS[edit]
    expected: list[Any] = []
    items: list[Any] = []
    kept: list[int] = []
    for position in range(41):
        for value in added.get(position, []):
            items.extend(_spans_of(previous, kept))
            kept = []
            new_row = [value, 'new, "row"', position]
            expected.append(new_row)
            items.append(new_row)
        if position < 40 and position not in dropped:
            expected.append(rows[position])
            kept.append(position)
    items.extend(_spans_of(previous, kept))
    anew = write_csv(tmp_path / "anew.csv", columns, expected, excel_safe=excel_safe, index=True)
    copied = write_csv(tmp_path / "copied.csv", columns, items, excel_safe=excel_safe, raw=True, index=True)
    assert (tmp_path / "copied.csv").read_bytes() == (tmp_path / "anew.csv").read_bytes()
    assert (
        (copied.sha256, copied.size, copied.rows)
        == (anew.sha256, anew.size, anew.rows)
        == (anew.sha256, anew.size, len(expected))
    )
    index_of = {name: csv_indexed(tmp_path / name) for name in ("anew.csv", "copied.csv")}
    assert index_of["anew.csv"] is not None and index_of["copied.csv"] is not None
    assert index_of["copied.csv"].offsets == index_of["anew.csv"].offsets
    # Each record the index finds is the record csv_records reads.
    records = list(csv_records(tmp_path / "copied.csv"))[1:]
    assert [index_of["copied.csv"].read(n, n + 1) for n in range(len(records))] == records


@pytest.mark.parametrize("damage", ["missing", "cut short", "garbled", "another csv", "csv touched", "foreign"])
def test_a_csv_index_serves_only_the_file_it_was_written_with(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "rows.csv"
    rows = [[f"host-{n}", "x" * (n % 7)] for n in range(100)]
    write_csv(path, ["name", "pad"], rows, index=True)
    assert csv_indexed(path) is not None
    index = csv_index_path(path)
    data = index.read_bytes()
    if damage == "missing":
        index.unlink()
    elif damage == "cut short":
        index.write_bytes(data[: len(data) - 8])
    elif damage == "garbled":
        index.write_bytes(data[:-20] + bytes(8) + data[-12:])
    elif damage == "another csv":  # the same size, other records: written without an index, which goes
        write_csv(path, ["name", "pad"], [[f"host-{n}", "x" * ((n + 3) % 7)] for n in range(100)])
        assert not index.exists()
        index.write_bytes(data)
    elif damage == "csv touched":
        stat = path.stat()
        import os

        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:
        index.write_bytes(data.replace(b"enreach csv index 1", b"enreach csv index 0"))
    assert csv_indexed(path) is None


def test_csv_failure_on_first_write_creates_no_target(tmp_path: Path) -> None:
    def crash() -> Iterator[Row]:
        raise RuntimeError("boom")
        yield ()  # pragma: no cover

    with pytest.raises(RuntimeError):
        write_csv(tmp_path / "new.csv", ("a",), crash())
    assert list(tmp_path.iterdir()) == []


# Workbook


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_sheet_table_panes_and_widths(
    tmp_path: Path, workbook_rows: list[Row], engine: oracle.WorkbookEngine
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["NetBox Inventory"]
    worksheet = workbook["NetBox Inventory"]
    assert list(worksheet.tables) == ["NetBoxInventory"]
    table = worksheet.tables["NetBoxInventory"]
    assert table.ref == "A1:BN51"  # 66 columns, header + 50 rows
    assert table.tableStyleInfo.name == "TableStyleMedium9"
    assert table.tableStyleInfo.showRowStripes
    assert [column.name for column in table.tableColumns] == list(WORKBOOK_COLUMNS)
    assert worksheet.freeze_panes == "B2"
    assert [cell.value for cell in worksheet[1]] == list(WORKBOOK_COLUMNS)
    assert worksheet.max_row == 51

    # Excel stores widths with its 5-pixel padding: 50 characters are 50.7109375.
    characters = {width: chars for chars in range(256) if (width := xlsx_cells.excel_width(chars))}
    widths = {
        worksheet.cell(row=1, column=column).column_letter: characters[worksheet.column_dimensions[letter].width]
        for letter in list(worksheet.column_dimensions)
        for column in range(worksheet.column_dimensions[letter].min, worksheet.column_dimensions[letter].max + 1)
    }
    assert len(widths) == 66
    assert all(0 < width <= 50 for width in widths.values())
    assert widths["A"] == max(len(str(row[0])) for row in workbook_rows) + 2  # Name
    comments = _cell(worksheet, 1, "Comments").column_letter
    assert widths[comments] == 50  # a 5,000-character comment, capped


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_numbers_are_numbers_and_text_stays_text(
    tmp_path: Path, workbook_rows: list[Row], engine: oracle.WorkbookEngine
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    worksheet = load_workbook(path)["NetBox Inventory"]
    device_1, device_2, device_3, device_4, device_5 = 2, 3, 4, 5, 6
    vm_3 = 2 + 25 + 2

    for column in ("ID", "Position", "Interfaces", "Console ports", "Inventory items"):
        cell = _cell(worksheet, device_1, column)
        assert cell.data_type == "n" and type(cell.value) is int, column
    assert _cell(worksheet, device_1, "Position").value == 41
    for column in ("VCPUs", "Memory (MB)", "Disk"):
        cell = _cell(worksheet, vm_3, column)
        assert cell.data_type == "n" and type(cell.value) is int, column
    assert _cell(worksheet, vm_3, "Memory (MB)").value == 131072

    serial = _cell(worksheet, device_1, "Serial number")
    assert (serial.value, serial.data_type) == ("000417", "s")
    assert _cell(worksheet, device_1, "Asset tag").value == "0099-AT"
    assert _cell(worksheet, device_1, "Rack Position").value == "Front 41"
    assert _cell(worksheet, device_1, "Created").value == "2026-11-28T02:24:24Z"

    formula_like = _cell(worksheet, device_2, "Description")
    assert formula_like.value == '=HYPERLINK("http://evil.example","click")'
    assert formula_like.data_type == "s"
    plus = _cell(worksheet, device_4, "Description")
    assert (plus.value, plus.data_type) == ("+1 spare; @ops; -tagged", "s")

    assert _cell(worksheet, device_3, "Name").value == "edge-<lab>&test"
    assert _cell(worksheet, device_3, "Comments").value == 'multi\nline, "quoted" comment'
    assert _cell(worksheet, device_4, "Name").value == "sw-zürich-01"
    assert _cell(worksheet, device_5, "Comments").value == "x" * 5000
    assert _cell(worksheet, device_1, "Description").value is None  # "" leaves the cell empty
    assert _cell(worksheet, device_1, "netbox_type").value == "devices"
    assert _cell(worksheet, vm_3, "netbox_type").value == "vms"


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_typing_edge_cases(tmp_path: Path, engine: oracle.WorkbookEngine) -> None:
    path = tmp_path / "edge.xlsx"
    columns = ("ID", "Serial number", "Latitude", "Note", "Flag")
    rows = [
        (1, "000417", -33.8688, "#N/A", True),
        (2, 417, "52.5", "bell\x07ring", ""),
        (3, "", "", "=1+1", "x" * 40_000),
    ]
    oracle.write_workbook(
        path,
        columns,
        rows,
        numeric_columns={"ID", "Latitude"},
        text_columns={"Serial number"},
        engine=engine,
    )
    worksheet = load_workbook(path).active
    assert worksheet is not None
    values = [[(cell.value, cell.data_type) for cell in row] for row in worksheet.iter_rows(min_row=2)]
    assert values[0][:4] == [(1, "n"), ("000417", "s"), (-33.8688, "n"), ("#N/A", "s")]
    assert values[0][4] == (True, "b")
    assert values[1][:4] == [(2, "n"), ("417", "s"), (52.5, "n"), ("bellring", "s")]
    assert values[2][3] == ("=1+1", "s")
    assert len(values[2][4][0]) == EXCEL_MAX_TEXT


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_file_info_and_identical_bytes_for_identical_rows(
    tmp_path: Path, workbook_rows: list[Row], engine: oracle.WorkbookEngine
) -> None:
    first = oracle.write_workbook(tmp_path / "a.xlsx", WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    data = first.path.read_bytes()
    assert (first.size, first.sha256, first.rows) == (len(data), hashlib.sha256(data).hexdigest(), 50)
    second = oracle.write_workbook(tmp_path / "b.xlsx", WORKBOOK_COLUMNS, iter(workbook_rows), engine=engine)
    assert second.sha256 == first.sha256


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_timestamp_is_the_document_date(tmp_path: Path, engine: oracle.WorkbookEngine) -> None:
    path = tmp_path / "dated.xlsx"
    moment = datetime(2026, 11, 28, 3, 4, 5, 678, tzinfo=UTC)
    oracle.write_workbook(path, ("ID",), [(1,)], timestamp=moment, engine=engine)
    assert load_workbook(path).properties.created == datetime(2026, 11, 28, 3, 4, 5)


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_with_no_rows_still_has_a_valid_table(tmp_path: Path, engine: oracle.WorkbookEngine) -> None:
    path = tmp_path / "empty.xlsx"
    info = oracle.write_workbook(path, WORKBOOK_COLUMNS, [], engine=engine)
    assert info.rows == 0
    worksheet = load_workbook(path)["NetBox Inventory"]
    assert worksheet.tables["NetBoxInventory"].ref == "A1:BN2"
    assert [cell.value for cell in worksheet[1]] == list(WORKBOOK_COLUMNS)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_failure_while_rows_stream_leaves_the_previous_file_and_no_temp_files(
    tmp_path: Path, workbook_rows: list[Row], engine: oracle.WorkbookEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    before = path.read_bytes()
    openpyxl_temp_files = set(ALL_TEMP_FILES)
    # The xml engine takes its rows in batches (of 10 here), the others one by one: fail after 20 rows either way.
    hook, items = ("_column_batches", 2) if engine == "xml" else ("prepared_rows", 20)
    hooked = workbook if engine == "xml" else oracle
    monkeypatch.setattr(workbook, "XML_BATCH_ROWS", 10)
    prepared = getattr(hooked, hook)

    def crash_after_some_rows(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, cells in enumerate(prepared(*args, **kwargs)):
            if number == items:
                raise RuntimeError("disk full")
            yield cells

    monkeypatch.setattr(hooked, hook, crash_after_some_rows)
    with pytest.raises(RuntimeError, match="disk full"):
        oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    gc.collect()  # a half-closed openpyxl stream would complain here
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []
    assert set(ALL_TEMP_FILES) == openpyxl_temp_files
    assert all(Path(name).exists() for name in ALL_TEMP_FILES)


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_failure_after_the_temp_file_is_written_leaves_the_previous_file(
    tmp_path: Path, workbook_rows: list[Row], engine: oracle.WorkbookEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    before = path.read_bytes()
    seen_temp: list[Path] = []

    def fail_to_hash(temp: Path) -> tuple[int, str]:
        seen_temp.append(temp)
        assert temp.exists() and temp.parent == tmp_path
        raise OSError("I/O error")

    monkeypatch.setattr(workbook, "hash_file", fail_to_hash)
    with pytest.raises(OSError, match="I/O error"):
        oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    assert seen_temp
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Systems CMDB.xlsx"]


def test_workbook_row_generator_that_raises_leaves_the_previous_file(tmp_path: Path, workbook_rows: list[Row]) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    write_workbook(path, WORKBOOK_COLUMNS, workbook_rows)
    before = path.read_bytes()

    def rows_then_crash() -> Iterator[Row]:
        yield from workbook_rows[:10]
        raise RuntimeError("NetBox went away")

    with pytest.raises(RuntimeError):
        write_workbook(path, WORKBOOK_COLUMNS, rows_then_crash())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Systems CMDB.xlsx"]


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_reads_back_the_same_in_read_only_and_normal_mode(
    tmp_path: Path, workbook_rows: list[Row], engine: oracle.WorkbookEngine
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    workbook = load_workbook(path, read_only=True)
    assert workbook.sheetnames == ["NetBox Inventory"]
    workbook.close()
    cells = _typed_cells(path, read_only=True)
    assert cells == _typed_cells(path, read_only=False)
    assert len(cells) == 51
    assert [value for value, _ in cells[0]] == list(WORKBOOK_COLUMNS)


@pytest.mark.parametrize("engine", ["xml", "xlsxwriter"])
def test_workbook_engines_write_the_same_cells_as_openpyxl(
    tmp_path: Path, workbook_rows: list[Row], engine: oracle.WorkbookEngine
) -> None:
    for name, columns, rows in (("sample", WORKBOOK_COLUMNS, workbook_rows), ("edge", EDGE_COLUMNS, EDGE_ROWS)):
        reference = oracle.write_workbook(tmp_path / f"{name}-openpyxl.xlsx", columns, rows, engine="openpyxl")
        other = oracle.write_workbook(tmp_path / f"{name}-{engine}.xlsx", columns, rows, engine=engine)
        cells = _typed_cells(other.path, read_only=True, engine=engine)
        assert cells == _typed_cells(reference.path, read_only=True, engine="openpyxl"), name
        first, second = load_workbook(reference.path).worksheets[0], load_workbook(other.path).worksheets[0]
        assert second.freeze_panes == first.freeze_panes == "B2"
        assert _widths(second) == _widths(first)
        assert [(table.name, table.ref) for table in second.tables.values()] == [
            (table.name, table.ref) for table in first.tables.values()
        ]


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_text_numbers_and_values_excel_cannot_store(tmp_path: Path, engine: oracle.WorkbookEngine) -> None:
    path = tmp_path / "edge.xlsx"
    oracle.write_workbook(
        path, EDGE_COLUMNS, EDGE_ROWS, numeric_columns={"ID"}, text_columns={"Serial number"}, engine=engine
    )
    workbook = load_workbook(path)
    worksheet = workbook.active
    assert worksheet is not None
    assert [column.name for column in worksheet.tables["NetBoxInventory"].tableColumns] == list(EDGE_COLUMNS)
    rows = [[_as_excel_reads(cell.value, engine) for cell in row] for row in worksheet.iter_rows()]
    assert rows[0] == list(EDGE_COLUMNS)
    assert rows[1] == ["a & b < c > d \"q\" 'x'", 1, "000417", 1, 0.1, "_x0041_ is not A"]
    assert rows[2] == ["  padded  ", 2, "417", "text", -0.5, "line1\r\nline2\rline3\n"]
    assert rows[3] == ["emoji \U0001f600 ü", 3, None, True, 1e16, "ctlx and a lone  surrogate"]
    assert rows[4] == ["=1+1", 4, "=x", 2.5, None, "#N/A"]  # NaN: no cell
    assert rows[5] == ["@SUM(A1)", 5, "-7", None, None, "-x"]
    assert rows[6] == [None, 2**53, "+1", False, None, "]]> <![CDATA[ &amp;"]
    assert all(cell.data_type == "s" for row in worksheet.iter_rows() for cell in row if isinstance(cell.value, str))


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_zip_has_pinned_dates_and_no_zip64_extras(tmp_path: Path, engine: oracle.WorkbookEngine) -> None:
    # Excel is strict about Zip64; small members must not carry its extra fields in their local headers.
    path = tmp_path / "a.xlsx"
    oracle.write_workbook(path, EDGE_COLUMNS, EDGE_ROWS * 100, engine=engine)
    with zipfile.ZipFile(path) as archive:
        assert len({info.date_time for info in archive.infolist()}) == 1
        assert archive.testzip() is None
    assert set(_local_extra_lengths(path).values()) == {0}


def test_xml_workbook_has_every_part_well_formed_and_declared(tmp_path: Path, workbook_rows: list[Row]) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine="xml")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        parts = {name: ElementTree.fromstring(archive.read(name)) for name in names}
    assert names[0] == "[Content_Types].xml"
    assert set(names) == {
        "[Content_Types].xml",
        "_rels/.rels",
        "docProps/app.xml",
        "docProps/core.xml",
        "xl/workbook.xml",
        "xl/_rels/workbook.xml.rels",
        "xl/styles.xml",
        "xl/theme/theme1.xml",
        "xl/worksheets/sheet1.xml",
        "xl/worksheets/_rels/sheet1.xml.rels",
        "xl/tables/table1.xml",
        "xl/sharedStrings.xml",
    }
    declared = {element.attrib["PartName"] for element in parts["[Content_Types].xml"] if "PartName" in element.attrib}
    assert declared == {f"/{name}" for name in names if not name.endswith((".rels", "[Content_Types].xml"))}
    # Every relationship points at a part that exists, relative to the folder above its _rels folder.
    for rels in ("_rels/.rels", "xl/_rels/workbook.xml.rels", "xl/worksheets/_rels/sheet1.xml.rels"):
        base = posixpath.dirname(posixpath.dirname(rels))
        for relationship in parts[rels]:
            assert posixpath.normpath(posixpath.join(base, relationship.attrib["Target"])) in names
    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    sheet = parts["xl/worksheets/sheet1.xml"]
    pane = sheet.find(f"{main}sheetViews/{main}sheetView/{main}pane")
    assert pane is not None
    assert pane.attrib == {
        "xSplit": "1",
        "ySplit": "1",
        "topLeftCell": "B2",
        "activePane": "bottomRight",
        "state": "frozen",
    }
    assert list(sheet.iter(f"{main}f")) == []  # no formulas
    assert {cell.attrib.get("t") for cell in sheet.iter(f"{main}c")} <= {None, "s", "b"}
    table = parts["xl/tables/table1.xml"]
    assert table.attrib["ref"] == "A1:BN51"
    auto_filter = table.find(f"{main}autoFilter")
    assert auto_filter is not None and auto_filter.attrib["ref"] == "A1:BN51"
    style = table.find(f"{main}tableStyleInfo")
    assert style is not None and style.attrib["name"] == "TableStyleMedium9" and style.attrib["showRowStripes"] == "1"
    strings = parts["xl/sharedStrings.xml"]
    assert int(strings.attrib["uniqueCount"]) == len(strings)


def test_pinned_zip_deflates_at_its_level_and_gives_zip64_only_to_members_that_may_need_it(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    data = b"0123456789abcdef" * 4096 + bytes(range(256)) * 64
    with xlsx_cells.PinnedZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open(archive.member("small", len(data)), "w") as stream:
            stream.write(data)
        with archive.open(archive.member("huge", zipfile.ZIP64_LIMIT), "w") as stream:
            stream.write(data)
        archive.writestr("whole", data)
    assert _local_extra_lengths(path) == {"small": 0, "huge": 20, "whole": 0}
    # ISA-L deflates at its levels (0 to 3), zlib at the others: plain deflate either way.
    deflater = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
    level_1 = deflater.compress(data) + deflater.flush()
    with zipfile.ZipFile(path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert all(archive.read(name) == data for name in ("small", "huge", "whole"))
        assert {info.compress_size for info in archive.infolist()} == {len(level_1)}
    with xlsx_cells.PinnedZipFile(tmp_path / "b.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr("whole", data)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    with zipfile.ZipFile(tmp_path / "b.zip") as archive:
        assert archive.read("whole") == data
        assert archive.getinfo("whole").compress_size == len(deflater.compress(data) + deflater.flush())


def test_xml_workbook_cells_do_not_depend_on_the_batch_size(
    tmp_path: Path, workbook_rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shared strings are numbered column by column within a batch, so only the bytes depend on the batch size.
    whole = oracle.write_workbook(tmp_path / "a.xlsx", WORKBOOK_COLUMNS, workbook_rows, engine="xml")
    monkeypatch.setattr(workbook, "XML_BATCH_ROWS", 7)
    batched = oracle.write_workbook(tmp_path / "b.xlsx", WORKBOOK_COLUMNS, workbook_rows, engine="xml")
    assert _typed_cells(batched.path, read_only=True) == _typed_cells(whole.path, read_only=True)


def test_xml_workbook_opens_in_libreoffice_with_the_same_values(tmp_path: Path, workbook_rows: list[Row]) -> None:
    if shutil.which("soffice") is None:
        pytest.fail(
            "LibreOffice is missing: `make test-deps` installs libreoffice-calc-nogui (make test runs it first)"
        )
    path = tmp_path / "cmdb.xlsx"
    oracle.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine="xml")
    # Raw values (not as shown), UTF-8, every sheet: LibreOffice names the CSV after the sheet.
    options = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
    profile = f"-env:UserInstallation=file://{tmp_path / 'profile'}"
    command = ["soffice", profile, "--headless", "--convert-to", options, "--outdir", str(tmp_path), str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    header, *rows = _read_csv(tmp_path / "cmdb-NetBox Inventory.csv")
    assert header == list(WORKBOOK_COLUMNS)
    assert rows == [_as_csv_text(row) for row in workbook_rows]


def test_workbook_rejects_duplicate_column_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        write_workbook(tmp_path / "x.xlsx", ("Name", "name"), [("a", "b")])


@pytest.mark.parametrize(
    ("columns", "sheet", "table", "message"),
    [
        ((), "Sheet", "Table", "columns"),
        (("ok", ""), "Sheet", "Table", "non-empty"),
        (("ok",), "a/b", "Table", "sheet name"),
        (("ok",), "x" * 32, "Table", "sheet name"),
        (("ok",), "Sheet", "Net Box", "table name"),
        (("ok",), "Sheet", "A1", "table name"),
        (("ok",), "Sheet", "1st", "table name"),
    ],
)
def test_workbook_rejects_names_excel_would_refuse(
    tmp_path: Path, columns: tuple[str, ...], sheet: str, table: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write_workbook(tmp_path / "x.xlsx", columns, [], sheet=sheet, table=table)
    assert list(tmp_path.iterdir()) == []


def test_workbook_rejects_more_rows_than_a_sheet_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbook, "EXCEL_MAX_ROWS", 3)
    write_workbook(tmp_path / "fits.xlsx", ("ID",), [(1,), (2,)])
    with pytest.raises(ValueError, match="rows"):
        write_workbook(tmp_path / "x.xlsx", ("ID",), [(1,), (2,), (3,)])
    assert not (tmp_path / "x.xlsx").exists()


def test_column_widths_use_the_longest_line_and_cap_at_50() -> None:
    rows = [("short", "line one\nthe second line", "y" * 80, 123456)]
    assert column_widths(("Name", "Multi", "Long", "N"), rows) == [7, 17, 50, 8]


# Column order from an .xlsx


def test_read_workbook_order_returns_the_first_row(tmp_path: Path, workbook_rows: list[Row]) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    write_workbook(path, WORKBOOK_COLUMNS, workbook_rows)
    assert read_workbook_order(path) == list(WORKBOOK_COLUMNS)


def test_read_workbook_order_from_an_operator_file_skips_blanks(tmp_path: Path) -> None:
    path = tmp_path / "order.xlsx"
    workbook = Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.append(["ID", " Name ", None, "Tags"])
    worksheet.append(["ignored", "second", "row", ""])
    workbook.save(path)
    order = read_workbook_order(path)
    assert order == ["ID", "Name", "Tags"]
    assert workbook_column_order(order)[:3] == ("ID", "Name", "Tags")


# Column sizes known ahead (the CMDB's filtered downloads): one pass, text inline


def _sizes(columns: tuple[str, ...] | list[str], rows: list[Any]) -> ColumnSizes:
    """What an index over the rows would know: per column the longest line and value, as text."""
    texts = [["" if value is None else str(value) for value in column] for column in zip(*rows, strict=True)]
    if not rows:
        texts = [[] for _ in columns]
    return ColumnSizes(
        lines=[max((len(line) for value in column for line in value.split("\n")), default=0) for column in texts],
        values=[max(map(len, column), default=0) for column in texts],
    )


def _inline_as_excel_reads(cells: list[list[tuple[Any, str]]]) -> list[list[tuple[Any, str]]]:
    # Excel decodes its _xHHHH_ escapes in inline strings as in shared strings; openpyxl only in shared strings.
    return [[(v.replace("_x005F_", "_") if isinstance(v, str) else v, t) for v, t in row] for row in cells]


class _OnePass(list[Any]):
    """Rows that count how often they are read whole and refuse to be indexed (no second pass, no random access)."""

    passes = 0

    def __iter__(self) -> Iterator[Any]:
        self.passes += 1
        return super().__iter__()

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("indexed")


def test_workbook_with_known_sizes_reads_the_rows_once_and_writes_the_same_cells_inline(
    tmp_path: Path, workbook_rows: list[Row]
) -> None:
    for name, columns, rows in (("sample", WORKBOOK_COLUMNS, workbook_rows), ("edge", EDGE_COLUMNS, EDGE_ROWS)):
        kwargs: dict[str, Any] = {}
        if name == "edge":
            kwargs = {"numeric_columns": {"ID"}, "text_columns": {"Serial number"}}
        reference = write_workbook(tmp_path / f"{name}.xlsx", columns, rows, **kwargs)
        once = _OnePass(rows)
        streamed = write_workbook(tmp_path / f"{name}-sized.xlsx", columns, once, sizes=_sizes(columns, rows), **kwargs)
        assert once.passes == 1 and streamed.rows == len(rows)
        for read_only in (True, False):
            cells = _inline_as_excel_reads(_typed_cells(streamed.path, read_only=read_only))
            assert cells == _typed_cells(reference.path, read_only=read_only), name
        first, second = load_workbook(reference.path).worksheets[0], load_workbook(streamed.path).worksheets[0]
        assert second.freeze_panes == first.freeze_panes == "B2"
        assert _widths(second) == _widths(first), name
        assert [(t.name, t.ref, t.tableStyleInfo.name) for t in second.tables.values()] == [
            (t.name, t.ref, t.tableStyleInfo.name) for t in first.tables.values()
        ]
        with zipfile.ZipFile(streamed.path) as archive:
            names = archive.namelist()
            parts = {part: ElementTree.fromstring(archive.read(part)) for part in names}
            assert archive.testzip() is None
        assert "xl/sharedStrings.xml" not in names
        declared = {e.attrib["PartName"] for e in parts["[Content_Types].xml"] if "PartName" in e.attrib}
        assert declared == {f"/{part}" for part in names if not part.endswith((".rels", "[Content_Types].xml"))}
        for rels in ("_rels/.rels", "xl/_rels/workbook.xml.rels", "xl/worksheets/_rels/sheet1.xml.rels"):
            base = posixpath.dirname(posixpath.dirname(rels))
            for relationship in parts[rels]:
                assert posixpath.normpath(posixpath.join(base, relationship.attrib["Target"])) in names
        main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
        sheet = parts["xl/worksheets/sheet1.xml"]
        assert list(sheet.iter(f"{main}f")) == []  # no formulas
        assert {cell.attrib.get("t") for cell in sheet.iter(f"{main}c")} <= {None, "inlineStr", "b"}
    assert set(_local_extra_lengths(tmp_path / "edge-sized.xlsx").values()) == {0}


def test_workbook_with_known_sizes_keeps_the_typing_edge_cases_and_many_batches(tmp_path: Path) -> None:
    columns = ("ID", "Serial number", "Latitude", "Note", "Flag")
    rows = [
        (1, "000417", -33.8688, "#N/A", True),
        (2, 417, "52.5", "bell\x07ring", ""),
        (3, "", "", "=1+1", "x" * 40_000),
    ] * 700  # more than one batch of rows
    kwargs: dict[str, Any] = {"numeric_columns": {"ID", "Latitude"}, "text_columns": {"Serial number"}}
    reference = write_workbook(tmp_path / "edge.xlsx", columns, rows, **kwargs)
    streamed = write_workbook(tmp_path / "sized.xlsx", columns, rows, sizes=_sizes(columns, rows), **kwargs)
    assert _typed_cells(streamed.path, read_only=True) == _typed_cells(reference.path, read_only=True)
    assert len(_typed_cells(streamed.path, read_only=True)) == 2101


def test_workbook_with_known_sizes_rejects_what_it_cannot_do(tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    sizes = _sizes(EDGE_COLUMNS, EDGE_ROWS)
    with pytest.raises(ValueError, match="xml engine"):
        oracle.write_workbook(path, EDGE_COLUMNS, EDGE_ROWS, sizes=sizes, engine="openpyxl")
    with pytest.raises(ValueError, match="xml engine"):
        extra = [ExtraSheet(name="More", rows=[("a",)])]
        write_workbook(path, EDGE_COLUMNS, EDGE_ROWS, sizes=sizes, extra_sheets=extra)
    with pytest.raises(ValueError, match="Column sizes for 6 columns, not 5"):
        write_workbook(path, EDGE_COLUMNS[:5], [row[:5] for row in EDGE_ROWS], sizes=sizes)
    with pytest.raises(ValueError, match="Row 3 has 5 values for 6 columns"):
        write_workbook(path, EDGE_COLUMNS, [*EDGE_ROWS[:2], EDGE_ROWS[2][:5]], sizes=sizes)
    assert not path.exists()


def test_an_extra_sheet_streamed_from_an_iterable_is_the_one_written_from_a_list(tmp_path):
    rows = [("Rule", "Objects"), ("a", 1), (), ("x", "y", 3.5), *((f"row {n}", n) for n in range(2_500))]
    listed = write_workbook(tmp_path / "listed.xlsx", ["A"], [("1",)], extra_sheets=[ExtraSheet("More", rows)])
    extra = ExtraSheet("More", iter(rows), (len(rows), 3))
    streamed = write_workbook(tmp_path / "streamed.xlsx", ["A"], [("1",)], extra_sheets=[extra])
    assert listed.sha256 == streamed.sha256
    book = load_workbook(streamed.path, read_only=True)
    try:
        assert list(book["More"].iter_rows(values_only=True))[:4] == [
            ("Rule", "Objects", None), ("a", 1, None), (None, None, None), ("x", "y", 3.5)
        ]  # fmt: skip
    finally:
        book.close()


@pytest.mark.parametrize("shape", [(3, 2), (5, 2), (4, 1)])
def test_an_extra_sheet_whose_rows_do_not_match_its_shape_is_refused(tmp_path, shape):
    rows = [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]
    path = tmp_path / "bad.xlsx"
    with pytest.raises(ValueError, match="shape"):
        write_workbook(path, ["A"], [("1",)], extra_sheets=[ExtraSheet("More", iter(rows), shape)])
    assert not path.exists()


# The export's streamed workbook (issue 25): rows read once from batches, text inline, and Excel's sheet edge


def _measured(columns: tuple[str, ...], rows: list[Row], batch: int = 7) -> ColumnSizes:
    meter = xlsx_cells.ColumnMeter(len(columns))
    for start in range(0, len(rows), batch):
        meter.add(rows[start : start + batch])
    return ColumnSizes(lines=meter.lines, values=meter.values)


def _batches(rows: list[Row], size: int = 5) -> Iterator[list[Row]]:
    return (rows[start : start + size] for start in range(0, len(rows), size))


def test_column_meter_measures_what_the_pass_over_all_rows_measures(workbook_rows: list[Row]) -> None:
    awkward = [
        *workbook_rows,
        tuple(("line one\nthe much longer second line", 12345678901, 1.5, True, None)[i % 5] for i in range(66)),
    ]
    kinds = xlsx_cells.column_kinds(WORKBOOK_COLUMNS, (), ())
    plan = xlsx_cells.plan_columns(WORKBOOK_COLUMNS, awkward, kinds)
    sized = workbook._sized_plan(WORKBOOK_COLUMNS, _measured(WORKBOOK_COLUMNS, awkward))
    assert (sized.widths, sized.longest) == (plan.widths, plan.longest)


def _meter_of(rows: list[Any], width: int, batch: int = 7) -> xlsx_cells.ColumnMeter:
    meter = xlsx_cells.ColumnMeter(width)
    for start in range(0, len(rows), batch):
        meter.add(rows[start : start + batch])
    return meter


@pytest.mark.parametrize("seed", range(6))
def test_column_meter_without_dropped_rows_measures_what_the_rows_left_measure(seed: int) -> None:
    # An incremental run takes the previous run's sizes for the rows it reuses: the previous meter without the rows
    # dropped, with the rows made now, is the meter of the new rows (sizes and counts), or None when only measuring
    # the rows left can tell (every longest one dropped).
    import random

    chance = random.Random(seed)
    pool = ["", "a", "bb", "ccc", "line\nbreak here", "x" * 9, 7, 12345, 1.5, True, None, "=1", "dd\n" + "e" * 12]
    rows = [tuple(chance.choice(pool) for _ in range(5)) for _ in range(60)]
    previous = _meter_of(rows, 5)
    plan = xlsx_cells.plan_columns([f"c{n}" for n in range(5)], rows, [xlsx_cells.AUTO] * 5)
    assert previous.values == plan.longest
    kept_at = sorted(chance.sample(range(60), 50))
    dropped = [row for at, row in enumerate(rows) if at not in kept_at]
    made = [tuple(chance.choice(pool) for _ in range(5)) for _ in range(4)]
    expected = _meter_of([rows[at] for at in kept_at] + made, 5)
    left = previous.without(_meter_of(dropped, 5, batch=3))
    if left is None:  # some column's every longest row dropped
        kept = _meter_of([rows[at] for at in kept_at], 5)
        assert any(
            kept_size < size for kept_size, size in zip(kept.lines + kept.values, previous.lines + previous.values)
        )
        return
    left.merge(_meter_of(made, 5, batch=2))
    assert left.state() == expected.state()
    assert xlsx_cells.ColumnMeter.of_state(json.loads(json.dumps(left.state())), 5).state() == expected.state()


def test_column_meter_cannot_tell_the_sizes_left_once_every_longest_row_is_dropped() -> None:
    previous = _meter_of([("long one",), ("short",), ("long two",)], 1)
    assert previous.without(_meter_of([("long one",)], 1)).state() == _meter_of([("short",), ("long two",)], 1).state()
    assert previous.without(_meter_of([("long one",), ("long two",)], 1)) is None
    assert xlsx_cells.ColumnMeter.of_state({"lines": [1]}, 1) is None


def test_streamed_workbook_is_the_inline_workbook_and_has_the_cells_of_the_shared_strings_one(
    tmp_path: Path, workbook_rows: list[Row]
) -> None:
    sizes = _measured(WORKBOOK_COLUMNS, workbook_rows)
    streamed = workbook.write_workbook_streamed(
        tmp_path / "s.xlsx", WORKBOOK_COLUMNS, _batches(workbook_rows), rows=len(workbook_rows), sizes=sizes
    )
    inline = write_workbook(tmp_path / "i.xlsx", WORKBOOK_COLUMNS, workbook_rows, sizes=sizes)
    shared = write_workbook(tmp_path / "w.xlsx", WORKBOOK_COLUMNS, workbook_rows)
    assert streamed.path.read_bytes() == inline.path.read_bytes() and streamed.rows == len(workbook_rows)
    assert _typed_cells(streamed.path, read_only=False) == _typed_cells(shared.path, read_only=False)
    widths = [load_workbook(path).worksheets[0].column_dimensions["C"].width for path in (streamed.path, shared.path)]
    assert widths[0] == widths[1]


def test_streamed_workbook_refuses_fewer_or_more_rows_than_announced(tmp_path: Path, workbook_rows: list[Row]) -> None:
    sizes = _measured(WORKBOOK_COLUMNS, workbook_rows)
    for announced in (len(workbook_rows) + 1, len(workbook_rows) - 1):
        with pytest.raises(ValueError, match="announced"):
            workbook.write_workbook_streamed(
                tmp_path / "x.xlsx", WORKBOOK_COLUMNS, _batches(workbook_rows), rows=announced, sizes=sizes
            )
    assert list(tmp_path.iterdir()) == []


def _libreoffice_sheets(path: Path, folder: Path) -> dict[str, list[list[str]]]:
    """Every sheet of a workbook as LibreOffice reads it (``soffice --headless --convert-to csv``), by sheet name."""
    if shutil.which("soffice") is None:
        pytest.fail(
            "LibreOffice is missing: `make test-deps` installs libreoffice-calc-nogui (make test runs it first)"
        )
    folder.mkdir()
    options = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
    profile = f"-env:UserInstallation=file://{folder / 'profile'}"
    command = ["soffice", profile, "--headless", "--convert-to", options, "--outdir", str(folder), str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    prefix = f"{path.stem}-"
    return {csv_path.stem.removeprefix(prefix): _read_csv(csv_path) for csv_path in sorted(folder.glob("*.csv"))}


def test_rows_beyond_a_sheet_continue_on_sheets_of_the_same_shape(
    tmp_path: Path, workbook_rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = (workbook_rows * 3)[:47]
    one_sheet = write_workbook(tmp_path / "one.xlsx", WORKBOOK_COLUMNS, rows).path
    monkeypatch.setattr(workbook, "EXCEL_MAX_ROWS", 21)  # 20 data rows a sheet
    extra = ExtraSheet("Data quality", [("rule", "count"), ("names", 3)])
    info = workbook.write_workbook_streamed(
        tmp_path / "big.xlsx",
        WORKBOOK_COLUMNS,
        _batches(rows),
        rows=len(rows),
        sizes=_measured(WORKBOOK_COLUMNS, rows),
        extra_sheets=[extra],
    )
    assert info.rows == 47
    book = load_workbook(info.path)
    names = ["NetBox Inventory", "NetBox Inventory (2)", "NetBox Inventory (3)", "Data quality"]
    assert book.sheetnames == names
    read: list[tuple[Any, ...]] = []
    for sheet, (table, count) in zip(
        book.worksheets[:3], (("NetBoxInventory", 20), ("NetBoxInventory2", 20), ("NetBoxInventory3", 7)), strict=True
    ):
        header, *data = sheet.iter_rows(values_only=True)
        assert header == WORKBOOK_COLUMNS and len(data) == count
        assert [f"{t.displayName} {t.ref}" for t in sheet.tables.values()] == [f"{table} A1:BN{count + 1}"]
        assert sheet.freeze_panes == "B2"
        read += data
    expected = _typed_cells(one_sheet, read_only=False)[1:]
    got = _typed_cells(info.path, read_only=False)[1:]
    assert got == expected[:20]  # the first sheet holds the first rows, cell for cell
    assert [tuple("" if v is None else v for v in row) for row in read] == [
        tuple("" if v is None else v for v in row) for row in rows
    ]
    sheets = _libreoffice_sheets(info.path, tmp_path / "lo")
    assert sorted(sheets) == sorted(names)
    assert [len(sheets[name]) for name in names] == [21, 21, 8, 2]
    assert [row for name in names[:3] for row in sheets[name][1:]] == [_as_csv_text(row) for row in rows]


def _rows_made(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[Any]]:
    """The rows the workbook converts to XML (``_xml_data_rows``), gathered as it writes them."""
    made: list[Sequence[Any]] = []
    data_rows = workbook._xml_data_rows

    def counted(batch: Sequence[Sequence[Any]], *args: Any) -> list[str]:
        made.extend(batch)
        return data_rows(batch, *args)

    monkeypatch.setattr(workbook, "_xml_data_rows", counted)
    return made


def test_streamed_workbook_reuses_the_previous_rows_xml_and_writes_the_same_bytes(
    tmp_path: Path, workbook_rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows keyed 0, 10, 20...; the next run drops the first row (every later row shifts up a number), changes one,
    # adds one, and spreads over two sheets: its bytes are a full write's, and only the changed and added rows are made.
    rows = [tuple(row) for row in (workbook_rows * 3)[:47]]
    keys = [10 * index for index in range(len(rows))]
    sizes = _measured(WORKBOOK_COLUMNS, rows)

    def write(name: str, rows: list[Row], keys: list[int], reused: list[bool], previous: Path | None) -> Path:
        rows_xml = workbook.RowsXml(
            tmp_path / f"{name}.rows", previous, [(keys[:30], reused[:30]), (keys[30:], reused[30:])]
        )
        batches = [rows[:30], rows[30:]]
        return workbook.write_workbook_streamed(
            tmp_path / f"{name}.xlsx", WORKBOOK_COLUMNS, batches, rows=len(rows), sizes=sizes, rows_xml=rows_xml
        ).path

    made = _rows_made(monkeypatch)
    first = write("first", rows, keys, [False] * len(rows), None)
    assert len(made) == len(rows) and (tmp_path / "first.rows").is_file()
    plain = workbook.write_workbook_streamed(
        tmp_path / "plain.xlsx", WORKBOOK_COLUMNS, [rows], rows=len(rows), sizes=sizes
    )
    assert first.read_bytes() == plain.path.read_bytes()

    changed = [*rows[1:], rows[0]]  # the first row moves to the end, under a new key
    changed[5] = tuple("edited" if value == changed[5][0] else value for value in changed[5])
    next_keys = [*keys[1:], 10_000]
    reused = [True] * len(changed)
    reused[5] = reused[-1] = False
    monkeypatch.setattr(workbook, "EXCEL_MAX_ROWS", 21)  # 20 data rows a sheet
    made.clear()
    second = write("second", changed, next_keys, reused, tmp_path / "first.rows")
    assert made == [changed[5], changed[-1]]
    full = write("full", changed, next_keys, [False] * len(changed), None)
    assert second.read_bytes() == full.read_bytes()
    kinds = xlsx_cells.column_kinds(WORKBOOK_COLUMNS, NUMERIC_COLUMNS, TEXT_COLUMNS)
    key = workbook._rows_xml_key(WORKBOOK_COLUMNS, kinds)
    kept = list(workbook._rows_xml_read(tmp_path / "second.rows", key))
    assert kept == list(workbook._rows_xml_read(tmp_path / "full.rows", key)) and len(kept) == len(changed)
    assert [sheet.max_row for sheet in load_workbook(second).worksheets] == [21, 21, 8]

    # Rows XML of other columns or typing (or code) is not reused: every row is made again.
    made.clear()
    write("other", changed, next_keys, [True] * len(changed), tmp_path / "missing.rows")
    assert len(made) == len(changed)
    made.clear()
    other = workbook.RowsXml(tmp_path / "x.rows", tmp_path / "second.rows", [(next_keys, [True] * len(changed))])
    workbook.write_workbook_streamed(
        tmp_path / "x.xlsx", WORKBOOK_COLUMNS, [changed], rows=len(changed), sizes=sizes, rows_xml=other,
        numeric_columns=("Status",),
    )  # fmt: skip
    assert len(made) == len(changed)


class _Picked(list):
    """A batch of picked rows (``RowsXml.picked``) as ``exports.files`` hands them over: rows, and each row's key."""

    def __init__(self, rows: Sequence[Row], keys: Sequence[int]) -> None:
        super().__init__(rows)
        self.keys = list(keys)

    def key(self, index: int) -> int:
        return self.keys[index]


def test_streamed_workbook_picks_the_previous_rows_xml_across_kinds_batches_and_its_end(
    tmp_path: Path, workbook_rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Picked rows (an incremental run's): the previous run kept devices 1-20 and VMs 1-15. Now device 20 is gone
    # (passed over when the VMs begin), device 5 changed, device 21 and VM 21 are new, and VMs 16-20 are picked
    # although the previous file ends before them (they are made, keyed from their batch). Batches cut elsewhere than
    # the previous run's, one spanning both kinds, over three sheets: the bytes and the kept XML are a full run's.
    vm = 1 << 48
    row_of = {key: tuple(workbook_rows[index % len(workbook_rows)]) for index, key in
              enumerate([*range(1, 22), *(vm | n for n in range(1, 22))])}  # fmt: skip
    row_of[5] = tuple("edited" if value == row_of[5][0] else value for value in row_of[5])
    sizes = _measured(WORKBOOK_COLUMNS, list(row_of.values()))
    monkeypatch.setattr(workbook, "EXCEL_MAX_ROWS", 21)  # 20 data rows a sheet

    def write(name: str, keys: list[int], picks: list[int], cuts: list[int], previous: Path | None) -> Path:
        rows = [row_of[key] for key in keys]
        given = [rank if pick >= 0 else key for key, pick in zip(keys, picks, strict=True)
                 for rank in [key & vm]]  # fmt: skip
        spans = list(zip([0, *cuts], [*cuts, len(keys)], strict=True))
        rows_xml = workbook.RowsXml(
            tmp_path / f"{name}.rows", previous, [(given[a:b], picks[a:b]) for a, b in spans], picked=True
        )
        batches = [_Picked(rows[a:b], keys[a:b]) for a, b in spans]
        return workbook.write_workbook_streamed(
            tmp_path / f"{name}.xlsx", WORKBOOK_COLUMNS, batches, rows=len(rows), sizes=sizes, rows_xml=rows_xml
        ).path

    made = _rows_made(monkeypatch)
    first_keys = [*range(1, 21), *(vm | n for n in range(1, 16))]
    write("first", first_keys, [-1] * len(first_keys), [25], None)
    keys = [*range(1, 20), 21, *(vm | n for n in range(1, 22))]
    picks = [0] * len(keys)
    picks[keys.index(5)] = picks[keys.index(21)] = picks[keys.index(vm | 21)] = -1
    picks[keys.index(6)] = 1  # device 5's previous row is passed over
    made.clear()
    second = write("second", keys, picks, [7, 19, 33], tmp_path / "first.rows")
    assert made == [row_of[key] for key in (5, 21, *(vm | n for n in range(16, 22)))]
    full = write("full", keys, [-1] * len(keys), [30], None)
    assert second.read_bytes() == full.read_bytes()
    kinds = xlsx_cells.column_kinds(WORKBOOK_COLUMNS, NUMERIC_COLUMNS, TEXT_COLUMNS)
    key = workbook._rows_xml_key(WORKBOOK_COLUMNS, kinds)
    kept = list(workbook._rows_xml_read(tmp_path / "second.rows", key))
    assert kept == list(workbook._rows_xml_read(tmp_path / "full.rows", key)) and [k for k, _ in kept] == keys
    assert [sheet.max_row for sheet in load_workbook(second).worksheets] == [21, 21, 2]

    # A previous file whose rows do not match the picks (their keys do not ascend) is refused.
    with pytest.raises(ValueError, match="out of step"):
        write("wrong", [3, 4], [-1, 0], [], tmp_path / "second.rows")  # the row picked is device 1's
    assert not (tmp_path / "wrong.rows").exists() and not (tmp_path / "wrong.xlsx").exists()


def test_streamed_workbook_keeps_no_rows_xml_when_it_fails(tmp_path: Path, workbook_rows: list[Row]) -> None:
    sizes = _measured(WORKBOOK_COLUMNS, workbook_rows)
    rows_xml = workbook.RowsXml(
        tmp_path / "w.rows", None, [(list(range(len(workbook_rows))), [False] * len(workbook_rows))]
    )
    with pytest.raises(ValueError, match="announced"):
        workbook.write_workbook_streamed(
            tmp_path / "w.xlsx", WORKBOOK_COLUMNS, [workbook_rows], rows=len(workbook_rows) + 1, sizes=sizes,
            rows_xml=rows_xml,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
