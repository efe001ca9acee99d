"""The export files' writing API, in one place for its callers: CSV (``exports.csvfiles``), the workbook
(``exports.workbook``, its cells in ``exports.cells`` and its XML parts in ``exports.xlsxparts``), both written
atomically (``exports.atomic``). This module only re-exports; it owns no logic.
"""

from exports.atomic import FILE_MODE, FileInfo
from exports.cells import (
    DEFAULT_SHEET,
    DEFAULT_TABLE,
    DEFAULT_TIMESTAMP,
    EXCEL_MAX_COLUMNS,
    EXCEL_MAX_ROWS,
    EXCEL_MAX_TEXT,
    MAX_COLUMN_WIDTH,
    TABLE_STYLE,
    column_widths,
)
from exports.csvfiles import write_csv
from exports.workbook import ColumnSizes, ExtraSheet, read_workbook_order, write_workbook

__all__ = [
    "DEFAULT_SHEET",
    "DEFAULT_TABLE",
    "DEFAULT_TIMESTAMP",
    "EXCEL_MAX_COLUMNS",
    "EXCEL_MAX_ROWS",
    "EXCEL_MAX_TEXT",
    "FILE_MODE",
    "MAX_COLUMN_WIDTH",
    "TABLE_STYLE",
    "ColumnSizes",
    "ExtraSheet",
    "FileInfo",
    "column_widths",
    "read_workbook_order",
    "write_csv",
    "write_workbook",
]
