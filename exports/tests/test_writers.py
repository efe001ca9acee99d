"""exports.writers: CSV and workbook files read back with the csv module and openpyxl; atomic replacement."""

from __future__ import annotations

import copy
import csv
import gc
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet._writer import ALL_TEMP_FILES
from openpyxl.worksheet.worksheet import Worksheet

from exports import transform, writers
from exports.transform import MERGED_COLUMNS, WORKBOOK_COLUMNS
from integrations.netbox import records

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "netbox-sample"
ENGINES: list[writers.WorkbookEngine] = ["openpyxl", "xlsxwriter"]


@cache
def _results(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((SAMPLE / name).read_text(encoding="utf-8"))["results"])


@cache
def _merged() -> tuple[transform.Row, ...]:
    lookups = transform.Lookups.from_records(
        sites=[records.site_from_api(item) for item in _results("sites_page.json")],
        tenants=[records.tenant_from_api(item) for item in _results("tenants_page.json")],
    )
    devices = [records.device_from_api(copy.deepcopy(item)) for item in _results("devices_page.json")]
    vms = [records.virtual_machine_from_api(copy.deepcopy(item)) for item in _results("virtual_machines_page.json")]
    return tuple(transform.merged_rows(transform.device_rows(devices, lookups), transform.vm_rows(vms, lookups)))


@pytest.fixture
def merged() -> list[transform.Row]:
    return list(_merged())


@pytest.fixture
def workbook_rows(merged: list[transform.Row]) -> list[transform.Row]:
    return transform.reorder(merged, MERGED_COLUMNS, WORKBOOK_COLUMNS)


def _read_csv(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.reader(handle))


def _as_csv_text(row: transform.Row) -> list[str]:
    return ["" if value is None else str(value) for value in row]


def _temp_files(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if path.name.endswith(".tmp")]


def _cell(worksheet: Worksheet, row: int, column: str) -> Any:
    return worksheet.cell(row=row, column=WORKBOOK_COLUMNS.index(column) + 1)


# CSV


def test_csv_round_trips_every_value_exactly(tmp_path: Path, merged: list[transform.Row]) -> None:
    path = tmp_path / "netbox_merged_export.csv"
    writers.write_csv(path, MERGED_COLUMNS, merged)
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
    tmp_path: Path, merged: list[transform.Row]
) -> None:
    path = tmp_path / "merged.csv"
    writers.write_csv(path, MERGED_COLUMNS, merged)
    data = path.read_bytes()
    assert data.startswith(b"Name,Status,")
    assert "sw-zürich-01".encode() in data
    assert b'"multi\nline, ""quoted"" comment"' in data
    assert data.endswith(b",vms\r\n")


def test_csv_excel_safe_prefixes_formula_like_strings_and_adds_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "safe.csv"
    columns = ("a", "b", "c", "d", "e", "f")
    rows = [("=1+1", "+31 20 123", "-x", "@SUM(A1)", -5, ""), ("a=b", "x+", "plain", "ü", 1.5, "#N/A")]
    writers.write_csv(path, columns, rows, excel_safe=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfa,b,")
    header, *read = _read_csv(path, encoding="utf-8-sig")
    assert header == list(columns)
    assert read == [["'=1+1", "'+31 20 123", "'-x", "'@SUM(A1)", "-5", ""], ["a=b", "x+", "plain", "ü", "1.5", "#N/A"]]


def test_csv_file_info_matches_the_file(tmp_path: Path, merged: list[transform.Row]) -> None:
    path = tmp_path / "merged.csv"
    info = writers.write_csv(path, MERGED_COLUMNS, iter(merged))
    data = path.read_bytes()
    assert info == writers.FileInfo(
        path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), rows=len(merged)
    )


def test_csv_hash_covers_many_chunks_and_the_bom(tmp_path: Path) -> None:
    rows = [(index, f"name-{index}", "x" * (index % 50)) for index in range(7000)]
    info = writers.write_csv(tmp_path / "big.csv", ("ID", "Name", "Pad"), rows, excel_safe=True)
    data = (tmp_path / "big.csv").read_bytes()
    assert (info.size, info.sha256, info.rows) == (len(data), hashlib.sha256(data).hexdigest(), 7000)


def test_csv_same_rows_give_identical_bytes(tmp_path: Path, merged: list[transform.Row]) -> None:
    first = writers.write_csv(tmp_path / "a.csv", MERGED_COLUMNS, merged)
    second = writers.write_csv(tmp_path / "b.csv", MERGED_COLUMNS, list(merged))
    assert first.sha256 == second.sha256


def test_csv_rejects_a_row_of_the_wrong_length_and_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    writers.write_csv(path, ("a", "b"), [(1, 2)])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="Row 2"):
        writers.write_csv(path, ("a", "b"), [(1, 2), (1, 2, 3)])
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []


def test_csv_failure_mid_write_leaves_the_previous_file_and_no_temp_file(
    tmp_path: Path, merged: list[transform.Row]
) -> None:
    path = tmp_path / "netbox_merged_export.csv"
    writers.write_csv(path, MERGED_COLUMNS, merged)
    before = path.read_bytes()
    seen_temp: list[Path] = []

    def rows_then_crash() -> Iterator[transform.Row]:
        yield from merged[:10]
        seen_temp.extend(_temp_files(tmp_path))
        raise RuntimeError("NetBox went away")

    with pytest.raises(RuntimeError, match="went away"):
        writers.write_csv(path, MERGED_COLUMNS, rows_then_crash())
    assert seen_temp, "the temp file should exist while rows are being written"
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netbox_merged_export.csv"]


def test_csv_failure_on_first_write_creates_no_target(tmp_path: Path) -> None:
    def crash() -> Iterator[transform.Row]:
        raise RuntimeError("boom")
        yield ()  # pragma: no cover

    with pytest.raises(RuntimeError):
        writers.write_csv(tmp_path / "new.csv", ("a",), crash())
    assert list(tmp_path.iterdir()) == []


# Workbook


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_sheet_table_panes_and_widths(
    tmp_path: Path, workbook_rows: list[transform.Row], engine: writers.WorkbookEngine
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
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
    characters = {width: chars for chars in range(256) if (width := writers._excel_width(chars))}
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
    tmp_path: Path, workbook_rows: list[transform.Row], engine: writers.WorkbookEngine
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
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
def test_workbook_typing_edge_cases(tmp_path: Path, engine: writers.WorkbookEngine) -> None:
    path = tmp_path / "edge.xlsx"
    columns = ("ID", "Serial number", "Latitude", "Note", "Flag")
    rows = [
        (1, "000417", -33.8688, "#N/A", True),
        (2, 417, "52.5", "bell\x07ring", ""),
        (3, "", "", "=1+1", "x" * 40_000),
    ]
    writers.write_workbook(
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
    assert len(values[2][4][0]) == writers.EXCEL_MAX_TEXT


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_file_info_and_identical_bytes_for_identical_rows(
    tmp_path: Path, workbook_rows: list[transform.Row], engine: writers.WorkbookEngine
) -> None:
    first = writers.write_workbook(tmp_path / "a.xlsx", WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    data = first.path.read_bytes()
    assert (first.size, first.sha256, first.rows) == (len(data), hashlib.sha256(data).hexdigest(), 50)
    second = writers.write_workbook(tmp_path / "b.xlsx", WORKBOOK_COLUMNS, iter(workbook_rows), engine=engine)
    assert second.sha256 == first.sha256


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_timestamp_is_the_document_date(tmp_path: Path, engine: writers.WorkbookEngine) -> None:
    path = tmp_path / "dated.xlsx"
    moment = datetime(2026, 11, 28, 3, 4, 5, 678, tzinfo=UTC)
    writers.write_workbook(path, ("ID",), [(1,)], timestamp=moment, engine=engine)
    assert load_workbook(path).properties.created == datetime(2026, 11, 28, 3, 4, 5)


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_with_no_rows_still_has_a_valid_table(tmp_path: Path, engine: writers.WorkbookEngine) -> None:
    path = tmp_path / "empty.xlsx"
    info = writers.write_workbook(path, WORKBOOK_COLUMNS, [], engine=engine)
    assert info.rows == 0
    worksheet = load_workbook(path)["NetBox Inventory"]
    assert worksheet.tables["NetBoxInventory"].ref == "A1:BN2"
    assert [cell.value for cell in worksheet[1]] == list(WORKBOOK_COLUMNS)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_failure_while_rows_stream_leaves_the_previous_file_and_no_temp_files(
    tmp_path: Path, workbook_rows: list[transform.Row], engine: writers.WorkbookEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    before = path.read_bytes()
    prepared = writers._prepared_rows
    openpyxl_temp_files = set(ALL_TEMP_FILES)

    def crash_after_some_rows(*args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        for number, cells in enumerate(prepared(*args, **kwargs)):
            if number == 20:
                raise RuntimeError("disk full")
            yield cells

    monkeypatch.setattr(writers, "_prepared_rows", crash_after_some_rows)
    with pytest.raises(RuntimeError, match="disk full"):
        writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    gc.collect()  # a half-closed openpyxl stream would complain here
    assert path.read_bytes() == before
    assert _temp_files(tmp_path) == []
    assert set(ALL_TEMP_FILES) == openpyxl_temp_files
    assert all(Path(name).exists() for name in ALL_TEMP_FILES)


@pytest.mark.parametrize("engine", ENGINES)
def test_workbook_failure_after_the_temp_file_is_written_leaves_the_previous_file(
    tmp_path: Path, workbook_rows: list[transform.Row], engine: writers.WorkbookEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    before = path.read_bytes()
    seen_temp: list[Path] = []

    def fail_to_hash(temp: Path) -> tuple[int, str]:
        seen_temp.append(temp)
        assert temp.exists() and temp.parent == tmp_path
        raise OSError("I/O error")

    monkeypatch.setattr(writers, "_hash_file", fail_to_hash)
    with pytest.raises(OSError, match="I/O error"):
        writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows, engine=engine)
    assert seen_temp
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Systems CMDB.xlsx"]


def test_workbook_row_generator_that_raises_leaves_the_previous_file(
    tmp_path: Path, workbook_rows: list[transform.Row]
) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows)
    before = path.read_bytes()

    def rows_then_crash() -> Iterator[transform.Row]:
        yield from workbook_rows[:10]
        raise RuntimeError("NetBox went away")

    with pytest.raises(RuntimeError):
        writers.write_workbook(path, WORKBOOK_COLUMNS, rows_then_crash())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Systems CMDB.xlsx"]


def test_workbook_rejects_duplicate_column_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        writers.write_workbook(tmp_path / "x.xlsx", ("Name", "name"), [("a", "b")])


def test_column_widths_use_the_longest_line_and_cap_at_50() -> None:
    rows = [("short", "line one\nthe second line", "y" * 80, 123456)]
    assert writers.column_widths(("Name", "Multi", "Long", "N"), rows) == [7, 17, 50, 8]


# Column order from an .xlsx


def test_read_workbook_order_returns_the_first_row(tmp_path: Path, workbook_rows: list[transform.Row]) -> None:
    path = tmp_path / "Systems CMDB.xlsx"
    writers.write_workbook(path, WORKBOOK_COLUMNS, workbook_rows)
    assert writers.read_workbook_order(path) == list(WORKBOOK_COLUMNS)


def test_read_workbook_order_from_an_operator_file_skips_blanks(tmp_path: Path) -> None:
    path = tmp_path / "order.xlsx"
    workbook = Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.append(["ID", " Name ", None, "Tags"])
    worksheet.append(["ignored", "second", "row", ""])
    workbook.save(path)
    order = writers.read_workbook_order(path)
    assert order == ["ID", "Name", "Tags"]
    assert transform.workbook_column_order(order)[:3] == ("ID", "Name", "Tags")
