"""The openpyxl and XlsxWriter workbook engines: benchmark comparisons (``bench/writers_bench.py``) and test oracles
(``exports/tests/test_writers.py``) for the production writer (``exports.workbook``), never used by production code.
``write_workbook`` takes an ``engine`` and otherwise meets the production contract: same checks, same cells; the
bytes differ between engines. It uses the writer's public interface only: ``exports.workbook.write_workbook_with``
(an engine's save function behind the production checks and column plan) and the cell rules of ``exports.cells``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zipfile import ZIP_DEFLATED

import xlsxwriter
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo
from openpyxl.writer.excel import ExcelWriter

from exports.atomic import FileInfo
from exports.cells import TABLE_STYLE, TEXT, ColumnPlan, PinnedZipFile, excel_width, prepared_rows, table_ref
from exports.workbook import Save, save_xml, write_workbook_with

WorkbookEngine = Literal["xml", "openpyxl", "xlsxwriter"]


def _discard_openpyxl_stream(worksheet: Any) -> None:
    """After a failure mid-stream, close openpyxl's half-written sheet XML and delete its temp file, which lives in
    the system temp dir and would otherwise stay until the worker process exits. This reaches into openpyxl's
    internals, so every step is allowed to fail: it must never hide the original error."""
    writer = getattr(worksheet, "_writer", None)
    for generator in (getattr(worksheet, "_rows", None), getattr(writer, "xf", None)):
        if generator is not None:
            with suppress(Exception):
                generator.close()
    if writer is not None:
        with suppress(Exception):
            writer.cleanup()


def _save_openpyxl(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: ColumnPlan,
    sheet: str,
    table: str,
    timestamp: datetime,
) -> None:
    """openpyxl write-only: rows stream to a temp file, so memory stays flat; every sheet setting goes first."""
    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    worksheet.freeze_panes = "B2"
    for index, width in enumerate(plan.widths, 1):
        worksheet.column_dimensions[get_column_letter(index)].width = excel_width(width)
    ref = table_ref(len(columns), len(rows))
    excel_table = Table(
        displayName=table,
        ref=ref,
        autoFilter=AutoFilter(ref=ref),
        tableStyleInfo=TableStyleInfo(
            name=TABLE_STYLE, showFirstColumn=False, showLastColumn=False, showRowStripes=True, showColumnStripes=False
        ),
    )
    # Write-only sheets cannot be read back, so openpyxl cannot name the table columns from the header cells.
    excel_table.tableColumns = [TableColumn(id=index, name=name) for index, name in enumerate(columns, 1)]
    with warnings.catch_warnings():
        # openpyxl warns that write-only tables need their columns set by hand, which is done just above.
        warnings.filterwarnings("ignore", message="In write-only mode you must add table columns manually")
        worksheet.add_table(excel_table)

    def as_text_cell(value: str) -> Any:
        # openpyxl makes "=..." a formula and "#N/A" an error unless the cell type is forced to text.
        cell = WriteOnlyCell(worksheet, value=value)
        cell.data_type = "s"
        return cell

    every_column = list(range(len(columns)))
    try:
        for cells in prepared_rows([columns], [TEXT] * len(columns), every_column, as_text_cell):
            worksheet.append(cells)
        for cells in prepared_rows(rows, kinds, plan.careful, as_text_cell):
            worksheet.append(cells)
    except BaseException:
        _discard_openpyxl_stream(worksheet)
        raise
    workbook.properties.created = workbook.properties.modified = timestamp
    # What Workbook.save does, minus stamping "modified" with the current time and the zip members with today.
    with PinnedZipFile(temp, "w", ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(workbook, archive).write_data()


def _save_xlsxwriter(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: ColumnPlan,
    sheet: str,
    table: str,
    timestamp: datetime,
    *,
    constant_memory: bool = False,
) -> None:
    """XlsxWriter: normal mode holds every cell until ``close()`` (memory grows with the rows); constant_memory
    streams but cannot add a table, so it only serves the benchmark."""
    workbook = xlsxwriter.Workbook(
        str(temp),
        {
            # Without these, "=..." becomes a formula and "http://..." a hyperlink (capped at 65,530 per sheet).
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "constant_memory": constant_memory,
        },
    )
    # XlsxWriter already pins the zip member dates; the document date is the only moving part.
    workbook.set_properties({"created": timestamp})
    try:
        worksheet = workbook.add_worksheet(sheet)
        worksheet.freeze_panes(1, 1)
        for index, width in enumerate(plan.widths):
            worksheet.set_column(index, index, width)
        write_string = worksheet.write_string
        write_number = worksheet.write_number
        write_boolean = worksheet.write_boolean
        for col, name in enumerate(columns):
            write_string(0, col, name)
        for row_number, cells in enumerate(prepared_rows(rows, kinds, plan.careful, None), 1):
            for col, value in enumerate(cells):
                if value is None:
                    continue
                kind = type(value)
                if kind is str:
                    write_string(row_number, col, value)
                elif kind is bool:
                    write_boolean(row_number, col, value)
                else:
                    write_number(row_number, col, value)
        if not constant_memory:
            worksheet.add_table(
                0,
                0,
                max(len(rows), 1),
                len(columns) - 1,
                {
                    "name": table,
                    "style": TABLE_STYLE,
                    "banded_rows": True,
                    "columns": [{"header": name} for name in columns],
                },
            )
    finally:
        workbook.close()


_ENGINES: dict[str, Save] = {
    "xml": save_xml,
    "openpyxl": _save_openpyxl,
    "xlsxwriter": _save_xlsxwriter,
}


def write_workbook(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    engine: WorkbookEngine = "xml",
    **options: Any,
) -> FileInfo:
    """``exports.workbook.write_workbook`` with the workbook saved by ``engine``: ``"xml"`` (the production
    engine), ``"openpyxl"`` (write-only, streams, memory stays flat: the reference implementation) or
    ``"xlsxwriter"`` (normal mode: it holds every cell until the end, about 530 MB more for 50,000 x 66). All three
    give the same cells; the bytes differ between engines."""
    return write_workbook_with(_ENGINES[engine], path, columns, rows, **options)
