"""Write CMDB rows to CSV and to an Excel workbook, atomically.

Every file is written to a hidden temp file in the target's directory (``.<name>.<random>.tmp``) and moved over the
target with ``os.replace`` only once it is complete and flushed to disk, so readers see the previous file or the new
one, never half of one; on any exception the temp file is removed and the target is untouched.

CSV: UTF-8 without a BOM, the csv module's default dialect (RFC 4180: ``\\r\\n`` between records, fields with commas,
quotes or line breaks quoted, line breaks inside a field kept as they are). Values are written exactly: ``""`` is
an empty field, numbers as ``str()`` (shortest round-trip form). ``excel_safe=True`` is for people who double-click
the CSV into Excel: a string starting with ``=``, ``+``, ``-`` or ``@`` gets a leading apostrophe, and the file starts
with a UTF-8 BOM, without which Excel decodes the file in the local code page and mangles non-ASCII names.

Workbook: see ``write_workbook``. Neither module imports Django; settings arrive as arguments.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import xlsxwriter
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo
from openpyxl.writer.excel import ExcelWriter

from exports.transform import NUMERIC_COLUMNS, TEXT_COLUMNS

WorkbookEngine = Literal["xlsxwriter", "openpyxl"]

DEFAULT_SHEET = "NetBox Inventory"
DEFAULT_TABLE = "NetBoxInventory"
TABLE_STYLE = "TableStyleMedium9"
MAX_COLUMN_WIDTH = 50
# Excel's limit per cell, counted in UTF-16 code units; longer text makes Excel "repair" the file.
EXCEL_MAX_TEXT = 32767

_FORMULA_PREFIXES = ("=", "+", "-", "@")
_CSV_CHUNK_ROWS = 2000
_HASH_CHUNK = 1 << 20
_UTF8_BOM = b"\xef\xbb\xbf"
# Workbooks carry a document date and zip member dates; pinning them makes equal rows give equal bytes (and hashes).
DEFAULT_TIMESTAMP = datetime(2000, 1, 1)
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# XML 1.0 cannot carry these; openpyxl refuses them, so they are dropped from workbook text (the CSV keeps them).
_ILLEGAL_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NUMBER_TEXT = re.compile(r"-?\d+(?:\.\d+)?")
# Strings openpyxl would store as error cells instead of text.
_EXCEL_ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A written file: where, how big, its SHA-256 (hex) and the number of data rows (header excluded)."""

    path: Path
    size: int
    sha256: str
    rows: int


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; move it over ``path`` on success, delete it on any failure."""
    temp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk; not every platform can open a directory.
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_width(row: Sequence[Any], width: int, number: int) -> None:
    if len(row) != width:
        raise ValueError(f"Row {number} has {len(row)} values for {width} columns")


def _excel_safe(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        "'" + value if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) else value for value in row
    )


def write_csv(
    path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[Sequence[Any]], *, excel_safe: bool = False
) -> FileInfo:
    """Write ``columns`` and ``rows`` as a CSV file at ``path``, atomically, hashing the bytes as they are written.

    ``rows`` may be any iterable (a generator is consumed once). A row of the wrong length raises ``ValueError``
    rather than shifting values into the wrong columns.
    """
    target = Path(path)
    width = len(columns)
    digest = hashlib.sha256()
    size = 0
    count = 0
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    with _atomic_path(target) as temp, open(temp, "xb") as out:

        def flush() -> None:
            nonlocal size
            data = buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            digest.update(data)
            out.write(data)
            size += len(data)

        if excel_safe:
            digest.update(_UTF8_BOM)
            out.write(_UTF8_BOM)
            size += len(_UTF8_BOM)
        writer.writerow(columns)
        iterator = iter(rows)
        # Chunks keep the encode/hash/write calls few without holding the whole file in memory.
        while chunk := list(islice(iterator, _CSV_CHUNK_ROWS)):
            for offset, row in enumerate(chunk, count + 1):
                _check_width(row, width, offset)
            writer.writerows(map(_excel_safe, chunk) if excel_safe else chunk)
            count += len(chunk)
            flush()
        flush()
        out.flush()
        os.fsync(out.fileno())
    return FileInfo(path=target, size=size, sha256=digest.hexdigest(), rows=count)


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(handle.fileno())
    return size, digest.hexdigest()


def _excel_text(text: str) -> str:
    """Text Excel accepts: no XML-illegal control characters, at most 32,767 UTF-16 code units."""
    if _ILLEGAL_XML_CHARS.search(text):
        text = _ILLEGAL_XML_CHARS.sub("", text)
    # Fewer than half the limit in code points cannot exceed it in UTF-16 units; skip the encode for those.
    if len(text) > EXCEL_MAX_TEXT // 2:
        encoded = text.encode("utf-16-le")
        if len(encoded) > 2 * EXCEL_MAX_TEXT:
            text = encoded[: 2 * EXCEL_MAX_TEXT].decode("utf-16-le", errors="ignore")
    return text


# How a column's values are typed in the workbook.
_NUMBER, _TEXT, _AUTO = "n", "s", "a"


def _column_kinds(columns: Sequence[str], numeric: Collection[str], text: Collection[str]) -> list[str]:
    return [_TEXT if name in text else _NUMBER if name in numeric else _AUTO for name in columns]


@dataclass(frozen=True, slots=True)
class _ColumnPlan:
    """What the first pass over the rows learned: widths, and the columns whose cells need converting one by one."""

    widths: list[int]
    careful: list[int]


def _plan_columns(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], kinds: Sequence[str], cap: int = MAX_COLUMN_WIDTH
) -> _ColumnPlan:
    """Measure every column in one pass. Joining a column's text lets C code do the scanning (longest line,
    control characters, a leading ``=`` or ``#``), so per-cell Python work is only spent on the few columns that
    need it: with 50,000 rows that is the difference between seconds and a fraction of one."""
    widths: list[int] = []
    careful: list[int] = []
    for index, (name, kind) in enumerate(zip(columns, kinds, strict=True)):
        values = [row[index] for row in rows]
        texts = [value for value in values if type(value) is str and value]
        others = [value for value in values if type(value) is not str and value is not None]
        joined = "\n".join(texts)
        longest = max(
            len(name),
            max(map(len, joined.split("\n")), default=0),
            max(map(len, map(str, others)), default=0),
        )
        widths.append(min(cap, longest + 2))
        if (
            (kind == _TEXT and others)
            or (kind == _NUMBER and texts)
            or _ILLEGAL_XML_CHARS.search(joined)
            # A leading "=" (formula) or "#" (error value) makes openpyxl guess a type; a line start is enough
            # to look closer.
            or joined.startswith(("=", "#"))
            or "\n=" in joined
            or "\n#" in joined
            or max(map(len, texts), default=0) > EXCEL_MAX_TEXT // 2
        ):
            careful.append(index)
    return _ColumnPlan(widths=widths, careful=careful)


def column_widths(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, cap: int = MAX_COLUMN_WIDTH) -> list[int]:
    """Column widths in Excel character units: the longest line in the column (header included) plus room for the
    filter button, at most ``cap``."""
    return _plan_columns(columns, rows, [_AUTO] * len(columns), cap).widths


def _typed(value: Any, kind: str) -> Any:
    """The value to store: ``None`` (no cell), a number, a bool, or text. Text columns never hold numbers; numeric
    columns turn digit strings into numbers; other columns follow the Python type."""
    if value is None or value == "":
        return None
    if kind == _TEXT:
        text = value if isinstance(value, str) else str(value)
    elif isinstance(value, bool | int | float):
        return value
    else:
        text = value if isinstance(value, str) else str(value)
        if kind == _NUMBER and _NUMBER_TEXT.fullmatch(text):
            return float(text) if "." in text else int(text)
    return _excel_text(text) or None


def _prepared_rows(
    rows: Iterable[Sequence[Any]], kinds: Sequence[str], careful: Sequence[int], guard: Callable[[str], Any] | None
) -> Iterator[list[Any]]:
    """Rows as lists of ``None`` (no cell), numbers, bools and text; ``guard`` wraps text an engine would misread."""
    for row in rows:
        cells = [None if value == "" else value for value in row]
        for index in careful:
            value = cells[index]
            if value is not None:
                value = _typed(value, kinds[index])
                if guard is not None and type(value) is str and (value[0] == "=" or value in _EXCEL_ERROR_CODES):
                    value = guard(value)
                cells[index] = value
        yield cells


class _PinnedZipFile(ZipFile):
    """A zip whose members all carry the same date, so the archive's bytes depend on its content alone."""

    def _member(self, name: str) -> ZipInfo:
        info = ZipInfo(name, date_time=_ZIP_DATE_TIME)
        info.compress_type = self.compression
        info.external_attr = 0o600 << 16
        return info

    def writestr(self, zinfo_or_arcname: str | ZipInfo, data: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(zinfo_or_arcname, ZipInfo):
            zinfo_or_arcname = self._member(zinfo_or_arcname)
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        # Streamed, not read whole: openpyxl hands over the write-only sheet as a temp file this way.
        name = arcname if arcname is not None else os.path.basename(filename)
        with open(filename, "rb") as source, self.open(self._member(name), "w", force_zip64=True) as target:
            shutil.copyfileobj(source, target, _HASH_CHUNK)


def _excel_width(characters: int) -> float:
    """A width in characters as Excel stores it: with its 5-pixel padding for Calibri 11 (50 -> 50.7109375), the
    same value XlsxWriter's ``set_column`` writes, so both engines give identical columns."""
    pixels = int(characters * 7 + 0.5) + 5
    return int(pixels / 7 * 256) / 256


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


def _table_ref(width: int, rows: int) -> str:
    # Excel needs at least one data row under a table header; an empty export gets one empty row.
    return f"A1:{get_column_letter(width)}{max(rows, 1) + 1}"


def _save_openpyxl(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: _ColumnPlan,
    sheet: str,
    table: str,
    timestamp: datetime,
) -> None:
    """openpyxl write-only: rows stream to a temp file, so memory stays flat; every sheet setting goes first."""
    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    worksheet.freeze_panes = "B2"
    for index, width in enumerate(plan.widths, 1):
        worksheet.column_dimensions[get_column_letter(index)].width = _excel_width(width)
    ref = _table_ref(len(columns), len(rows))
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
        for cells in _prepared_rows([columns], [_TEXT] * len(columns), every_column, as_text_cell):
            worksheet.append(cells)
        for cells in _prepared_rows(rows, kinds, plan.careful, as_text_cell):
            worksheet.append(cells)
    except BaseException:
        _discard_openpyxl_stream(worksheet)
        raise
    workbook.properties.created = workbook.properties.modified = timestamp
    # What Workbook.save does, minus stamping "modified" with the current time and the zip members with today.
    with _PinnedZipFile(temp, "w", ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(workbook, archive).write_data()


def _save_xlsxwriter(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: _ColumnPlan,
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
        for row_number, cells in enumerate(_prepared_rows(rows, kinds, plan.careful, None), 1):
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


_ENGINES: dict[str, Callable[..., None]] = {"openpyxl": _save_openpyxl, "xlsxwriter": _save_xlsxwriter}


def write_workbook(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    sheet: str = DEFAULT_SHEET,
    table: str = DEFAULT_TABLE,
    numeric_columns: Collection[str] = NUMERIC_COLUMNS,
    text_columns: Collection[str] = TEXT_COLUMNS,
    timestamp: datetime = DEFAULT_TIMESTAMP,
    engine: WorkbookEngine = "openpyxl",
) -> FileInfo:
    """Write ``columns`` and ``rows`` as an .xlsx at ``path``, atomically.

    One sheet holding an Excel table over all rows (``TableStyleMedium9``, row stripes), header row and first column
    frozen (``B2``), column widths fitted to the content (at most 50). Typing: ``text_columns`` are always text
    (serials keep leading zeros), ``numeric_columns`` are numbers (a digit string becomes one), other columns follow
    the Python type. Text is always a text cell, never a formula or an error value, whatever it starts with; control
    characters XML cannot carry are dropped and text is cut at Excel's 32,767-character cell limit. ``""`` and
    ``None`` leave the cell empty.

    ``timestamp`` is the document's created/modified date (naive means UTC). It defaults to a fixed date, and the
    zip members carry a fixed date too, so the same rows always give the same bytes; pass something derived from
    the data (such as the newest Last updated) to show a meaningful date without losing that.

    ``rows`` is materialised if it is not a sequence: the widths need a pass before the first row is written.
    ``engine``: ``"openpyxl"`` (write-only, streams, memory stays flat) or ``"xlsxwriter"`` (normal mode: a little
    faster, but it holds every cell until the end, about 530 MB more for 50,000 x 66). Both meet the rest of the
    contract; ``bench/writers_bench.py`` has the figures.
    """
    target = Path(path)
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(UTC).replace(tzinfo=None)
    timestamp = timestamp.replace(microsecond=0)
    if len({name.casefold() for name in columns}) != len(columns):
        raise ValueError("Excel table column names must be unique (case-insensitive)")
    if not isinstance(rows, Sequence):
        rows = list(rows)
    for number, row in enumerate(rows, 1):
        _check_width(row, len(columns), number)
    kinds = _column_kinds(columns, numeric_columns, text_columns)
    plan = _plan_columns(columns, rows, kinds)
    save = _ENGINES[engine]
    with _atomic_path(target) as temp:
        save(temp, columns, rows, kinds, plan, sheet, table, timestamp)
        size, sha256 = _hash_file(temp)
    return FileInfo(path=target, size=size, sha256=sha256, rows=len(rows))


def read_workbook_order(path: str | os.PathLike[str]) -> list[str]:
    """The column names in the first row of the first sheet of an .xlsx (blank cells skipped), for an
    operator-supplied column order."""
    workbook = load_workbook(Path(path), read_only=True, data_only=True)
    try:
        worksheet = workbook.worksheets[0]
        first = next(worksheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
        return [str(value).strip() for value in first if value is not None and str(value).strip()]
    finally:
        workbook.close()
