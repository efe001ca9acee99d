"""Write CMDB rows to CSV and to an Excel workbook, atomically.

Every file is written to a hidden temp file in the target's directory (``.<name>.<random>.tmp``) and moved over the
target with ``os.replace`` only once it is complete and flushed to disk, so readers see the previous file or the new
one, never half of one; on any exception the temp file is removed and the target is untouched.

CSV: UTF-8 without a BOM, the csv module's default dialect (RFC 4180: ``\\r\\n`` between records, fields with commas,
quotes or line breaks quoted, line breaks inside a field kept as they are). Values are written exactly: ``""`` is
an empty field, numbers as ``str()`` (shortest round-trip form). ``excel_safe=True`` is for people who double-click
the CSV into Excel: a string starting with ``=``, ``+``, ``-`` or ``@`` gets a leading apostrophe, and the file starts
with a UTF-8 BOM, without which Excel decodes the file in the local code page and mangles non-ASCII names.

Workbook: see ``write_workbook``. The default engine writes the SpreadsheetML parts itself, streaming the sheet into
the zip; openpyxl (the reference implementation) and XlsxWriter remain available. Neither module imports Django;
settings arrive as arguments.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import secrets
import shutil
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, count, islice, repeat
from pathlib import Path
from typing import IO, Any, Literal
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import xlsxwriter
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo
from openpyxl.writer.excel import ExcelWriter
from openpyxl.writer.theme import theme_xml

from exports.constants import XML_ILLEGAL_CHARS
from exports.transform import NUMERIC_COLUMNS, TEXT_COLUMNS

WorkbookEngine = Literal["xml", "openpyxl", "xlsxwriter"]

DEFAULT_SHEET = "NetBox Inventory"
DEFAULT_TABLE = "NetBoxInventory"
TABLE_STYLE = "TableStyleMedium9"
MAX_COLUMN_WIDTH = 50
# Excel's limit per cell, counted in UTF-16 code units; longer text makes Excel "repair" the file.
EXCEL_MAX_TEXT = 32767
# Excel's sheet size: rows (header included) and columns.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384

# OWASP's list of characters that start a formula in a spreadsheet (tab and carriage return too).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Export files are readable by the service's group (a backup or web server user), never by everyone.
FILE_MODE = 0o640
_CSV_CHUNK_ROWS = 2000
_HASH_CHUNK = 1 << 20
_UTF8_BOM = b"\xef\xbb\xbf"
# Workbooks carry a document date and zip member dates; pinning them makes equal rows give equal bytes (and hashes).
DEFAULT_TIMESTAMP = datetime(2000, 1, 1)
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# openpyxl refuses them too, so they are all dropped from workbook text (the CSV keeps them).
_ILLEGAL_XML_CHARS = XML_ILLEGAL_CHARS
# Bounded so that a digit string never becomes inf or trips Python's limit on int conversion.
_NUMBER_TEXT = re.compile(r"-?\d{1,300}(?:\.\d{1,300})?")
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
        os.chmod(temp, FILE_MODE)
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


def _check_widths(rows: Sequence[Sequence[Any]], width: int, first: int = 1) -> None:
    """Raise ``ValueError`` naming the first row (numbered from ``first``) that does not have ``width`` values."""
    if set(map(len, rows)) - {width}:
        for number, row in enumerate(rows, first):
            _check_width(row, width, number)


class _ListSink:
    """A file for ``csv.writer`` that collects each record in a list: cheaper than writing to a ``StringIO``."""

    __slots__ = ("write",)

    def __init__(self, parts: list[str]) -> None:
        self.write = parts.append


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
    written = 0
    parts: list[str] = []
    writer = csv.writer(_ListSink(parts))
    with _atomic_path(target) as temp, open(temp, "xb") as out:

        def flush() -> None:
            nonlocal size
            data = "".join(parts).encode("utf-8")
            parts.clear()
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
            _check_widths(chunk, width, written + 1)
            writer.writerows(map(_excel_safe, chunk) if excel_safe else chunk)
            written += len(chunk)
            flush()
        flush()
        out.flush()
        os.fsync(out.fileno())
    return FileInfo(path=target, size=size, sha256=digest.hexdigest(), rows=written)


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
_PLAIN_TYPES = frozenset((str, int, float, bool, type(None)))


def _column_kinds(columns: Sequence[str], numeric: Collection[str], text: Collection[str]) -> list[str]:
    return [_TEXT if name in text else _NUMBER if name in numeric else _AUTO for name in columns]


@dataclass(frozen=True, slots=True)
class _ColumnPlan:
    """What the first pass over the rows learned, per column: its width; whether its cells need converting one by
    one (``careful``, column indexes); its ``shape``, which lets the xml engine write a whole column of a batch at
    once (``_TEXT``: only ``str``; ``_NUMBER``: only ``int``/``float`` and ``""``; ``_AUTO``: anything else, and
    columns whose values need converting for every engine); and the length of its longest value in characters
    (uncapped, for sizing the sheet)."""

    widths: list[int]
    careful: list[int]
    shapes: list[str]
    longest: list[int]


def _plan_columns(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], kinds: Sequence[str], cap: int = MAX_COLUMN_WIDTH
) -> _ColumnPlan:
    """Measure every column in one pass. Joining a column's text lets C code do the scanning (longest line,
    control characters, a leading ``=`` or ``#``), so per-cell Python work is only spent on the few columns that
    need it: with 50,000 rows that is the difference between seconds and a fraction of one."""
    widths: list[int] = []
    careful: list[int] = []
    shapes: list[str] = []
    longest: list[int] = []
    # zip(*rows) hands over one column at a time; an empty export still has its columns.
    data: Iterable[Sequence[Any]] = zip(*rows, strict=True) if rows else repeat((), len(columns))
    for index, (name, kind, values) in enumerate(zip(columns, kinds, data, strict=True)):
        # Rows repeat their values a lot, so the checks run over each column's distinct values.
        distinct = set(values)
        types = set(map(type, distinct))
        if types <= {str}:
            # The common case: all text, blanks included (they join as empty lines, which change nothing).
            joined = "\n".join(distinct)
            separators = max(len(distinct) - 1, 0)
            has_text = len(joined) > separators
            longest_text = max(map(len, distinct), default=0)
            multi_line = joined.count("\n") > separators
            others: list[Any] = []
        else:
            # A set merges 1, 1.0 and True (and 0.0 and -0.0), which differ in type and print differently.
            types = set(map(type, values))
            pool = distinct if types <= {str, int} else values
            texts = [value for value in pool if type(value) is str and value] if str in types else []
            others = [value for value in pool if type(value) is not str and value is not None]
            joined = "\n".join(texts)
            has_text = bool(texts)
            longest_text = max(map(len, texts), default=0)
            multi_line = "\n" in joined
        longest_line = max(map(len, joined.split("\n"))) if multi_line else longest_text
        longest_other = max(map(len, map(str, others)), default=0)
        widths.append(min(cap, max(len(name), longest_line, longest_other) + 2))
        longest.append(max(longest_text, longest_other))
        floats = [value for value in others if type(value) is float] if float in types else []
        converted = bool(
            (kind == _TEXT and others)
            or (kind == _NUMBER and has_text)
            or not types <= _PLAIN_TYPES
            # Excel has no NaN or infinity; the sum of finite floats can only overflow, which just costs a closer look.
            or not math.isfinite(sum(floats, 0.0))
            or _ILLEGAL_XML_CHARS.search(joined)
            or longest_text > EXCEL_MAX_TEXT // 2
        )
        # A leading "=" (formula) or "#" (error value) makes openpyxl and XlsxWriter guess a type; a line start is
        # enough to look closer. Shared strings are never formulas, so the xml engine needs no closer look for these.
        guessed = joined.startswith(("=", "#")) or "\n=" in joined or "\n#" in joined
        if converted or guessed:
            careful.append(index)
        if converted:
            shapes.append(_AUTO)
        elif types <= {str}:
            shapes.append(_TEXT)
        elif not has_text and types <= {str, int, float}:
            shapes.append(_NUMBER)
        else:
            shapes.append(_AUTO)
    return _ColumnPlan(widths=widths, careful=careful, shapes=shapes, longest=longest)


def column_widths(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, cap: int = MAX_COLUMN_WIDTH) -> list[int]:
    """Column widths in Excel character units: the longest line in the column (header included) plus room for the
    filter button, at most ``cap``."""
    return _plan_columns(columns, rows, [_AUTO] * len(columns), cap).widths


def _typed(value: Any, kind: str) -> Any:
    """The value to store: ``None`` (no cell), a number, a bool, or text. Text columns never hold numbers; numeric
    columns turn digit strings into numbers; other columns follow the Python type. NaN and infinities, which Excel
    cannot store, leave the cell empty."""
    if value is None or value == "":
        return None
    if kind == _TEXT:
        text = value if isinstance(value, str) else str(value)
    elif isinstance(value, bool | int):
        return value
    elif isinstance(value, float):
        return value if math.isfinite(value) else None
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

    def member(self, name: str, size: int = 0) -> ZipInfo:
        """A new member called ``name``, compressed as the archive is. ``size`` (bytes, an upper bound is enough)
        decides whether it needs Zip64 extensions: Excel is strict about Zip64, so only members that need them get
        them."""
        info = ZipInfo(name, date_time=_ZIP_DATE_TIME)
        info.compress_type = self.compression
        if sys.version_info >= (3, 13):
            info.compress_level = self.compresslevel
        else:
            # ZipFile.open(ZipInfo, "w") only deflates at the archive's level if the member says so.
            info._compresslevel = self.compresslevel  # type: ignore[attr-defined]
        info.external_attr = 0o600 << 16
        info.file_size = size
        return info

    def writestr(self, zinfo_or_arcname: str | ZipInfo, data: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(zinfo_or_arcname, ZipInfo):
            zinfo_or_arcname = self.member(zinfo_or_arcname)
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        # Streamed, not read whole: openpyxl hands over the write-only sheet as a temp file this way.
        name = arcname if arcname is not None else os.path.basename(filename)
        with (
            open(filename, "rb") as source,
            self.open(self.member(name, os.fstat(source.fileno()).st_size), "w") as target,
        ):
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


# The xml engine: the SpreadsheetML parts written as text, the sheet streamed into the zip batch by batch.

_XML_BATCH_ROWS = 1000
# Deflating the 45 MB sheet of 50,000 rows x 66 columns here: level 1 0.32 s (7.3 MB), 2 0.35 s (6.7 MB),
# 3 0.49 s (5.9 MB), 6 1.16 s (5.3 MB), against about 0.8 s for everything else. Deflating in a second thread
# while the next batch is built gained nothing measurable: the thread waits for the GIL between its C calls.
_XML_COMPRESS_LEVEL = 1
# The most markup around one cell's value: <c r="XFD1048576" t="s"><v>...</v></c>, and a value that is a
# shared-string index or a number no longer than this.
_XML_CELL_MARKUP = 40
_XML_NUMBER_CHARS = 24

_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006"
_NS_REL = f"{_NS_DOCUMENT}/relationships"
_NS_PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument"
# Text that Excel would read as an escaped character (_x0041_ is "A") gets its underscore escaped in turn.
_EXCEL_ESCAPE_LIKE = re.compile("_x[0-9A-Fa-f]{4}_")
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def _escape_text(text: str) -> str:
    """``text`` as XML element content that Excel reads back unchanged. A carriage return becomes ``&#13;``, which
    XML would otherwise turn into a line feed. Quotes need no escaping outside attributes."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "_x" in text:
        text = _EXCEL_ESCAPE_LIKE.sub(r"_x005F\g<0>", text)
    return text


def _escape_attribute(text: str) -> str:
    return text.translate(_ATTRIBUTE_ESCAPES)


def _table_column_name(name: str) -> str:
    """A table column name as Excel writes it: control characters (a line break in a header) as ``_x000a_``."""
    name = _EXCEL_ESCAPE_LIKE.sub(r"_x005F\g<0>", name)
    name = re.sub(r"[\t\n\r]", lambda match: f"_x{ord(match.group()):04x}_", name)
    return _escape_attribute(name)


def _xml_parts(
    columns: Sequence[str],
    widths: Sequence[int],
    rows: int,
    sheet: str,
    table: str,
    timestamp: datetime,
    extra: Sequence[str] = (),
) -> tuple[list[tuple[str, str]], str, str, list[tuple[str, str]]]:
    """The package around the cells: the parts before the sheet, the sheet's head and tail, the parts after it.

    ``extra`` names further sheets (``xl/worksheets/sheet2.xml`` on), written by the caller; with none, the parts
    are exactly those of a one-sheet workbook."""
    last = get_column_letter(len(columns))
    extra_names = [_escape_attribute(name) for name in extra]
    numbers = range(2, len(extra) + 2)
    ref = _table_ref(len(columns), rows)
    stamp = timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    sheet_name = _escape_attribute(sheet)
    content_types = "".join(
        (
            f'{_XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">',
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>',
            '<Default Extension="xml" ContentType="application/xml"/>',
            f'<Override PartName="/docProps/app.xml" ContentType="{_CT}.extended-properties+xml"/>',
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>',
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.spreadsheetml.sheet.main+xml"/>',
            f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.spreadsheetml.styles+xml"/>',
            f'<Override PartName="/xl/theme/theme1.xml" ContentType="{_CT}.theme+xml"/>',
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.spreadsheetml.worksheet+xml"/>',
            *(
                f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_CT}.spreadsheetml.worksheet+xml"/>'
                for n in numbers
            ),
            f'<Override PartName="/xl/tables/table1.xml" ContentType="{_CT}.spreadsheetml.table+xml"/>',
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_CT}.spreadsheetml.sharedStrings+xml"/>',
            "</Types>",
        )
    )
    package_rels = "".join(
        (
            f'{_XML_HEAD}<Relationships xmlns="{_NS_PACKAGE_REL}">',
            f'<Relationship Id="rId1" Type="{_NS_REL}/officeDocument" Target="xl/workbook.xml"/>',
            f'<Relationship Id="rId2" Type="{_NS_PACKAGE_REL}/metadata/core-properties" Target="docProps/core.xml"/>',
            f'<Relationship Id="rId3" Type="{_NS_REL}/extended-properties" Target="docProps/app.xml"/>',
            "</Relationships>",
        )
    )
    app = "".join(
        (
            f'{_XML_HEAD}<Properties xmlns="{_NS_DOCUMENT}/extended-properties" ',
            f'xmlns:vt="{_NS_DOCUMENT}/docPropsVTypes">',
            "<Application>Microsoft Excel</Application><DocSecurity>0</DocSecurity><ScaleCrop>false</ScaleCrop>",
            '<HeadingPairs><vt:vector size="2" baseType="variant"><vt:variant><vt:lpstr>Worksheets</vt:lpstr>',
            f"</vt:variant><vt:variant><vt:i4>{1 + len(extra)}</vt:i4></vt:variant></vt:vector></HeadingPairs>",
            f'<TitlesOfParts><vt:vector size="{1 + len(extra)}" baseType="lpstr"><vt:lpstr>{sheet_name}</vt:lpstr>',
            *(f"<vt:lpstr>{name}</vt:lpstr>" for name in extra_names),
            "</vt:vector>",
            "</TitlesOfParts><LinksUpToDate>false</LinksUpToDate><SharedDoc>false</SharedDoc>",
            "<HyperlinksChanged>false</HyperlinksChanged><AppVersion>12.0000</AppVersion></Properties>",
        )
    )
    core = "".join(
        (
            f"{_XML_HEAD}<cp:coreProperties ",
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" ',
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" ',
            'xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>',
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>',
            "</cp:coreProperties>",
        )
    )
    workbook = "".join(
        (
            f'{_XML_HEAD}<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><workbookPr/>',
            '<bookViews><workbookView xWindow="240" yWindow="15" windowWidth="16095" windowHeight="9660"/>',
            f'</bookViews><sheets><sheet name="{sheet_name}" sheetId="1" r:id="rId1"/>',
            *(
                f'<sheet name="{name}" sheetId="{n}" r:id="rId{n + 3}"/>'
                for n, name in zip(numbers, extra_names, strict=True)
            ),
            "</sheets>",
            '<calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>',
        )
    )
    workbook_rels = "".join(
        (
            f'{_XML_HEAD}<Relationships xmlns="{_NS_PACKAGE_REL}">',
            f'<Relationship Id="rId1" Type="{_NS_REL}/worksheet" Target="worksheets/sheet1.xml"/>',
            f'<Relationship Id="rId2" Type="{_NS_REL}/theme" Target="theme/theme1.xml"/>',
            f'<Relationship Id="rId3" Type="{_NS_REL}/styles" Target="styles.xml"/>',
            f'<Relationship Id="rId4" Type="{_NS_REL}/sharedStrings" Target="sharedStrings.xml"/>',
            *(
                f'<Relationship Id="rId{n + 3}" Type="{_NS_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
                for n in numbers
            ),
            "</Relationships>",
        )
    )
    styles = "".join(
        (
            f'{_XML_HEAD}<styleSheet xmlns="{_NS_MAIN}">',
            '<fonts count="1"><font><sz val="11"/><color theme="1"/><name val="Calibri"/><family val="2"/>',
            '<scheme val="minor"/></font></fonts>',
            '<fills count="2"><fill><patternFill patternType="none"/></fill>',
            '<fill><patternFill patternType="gray125"/></fill></fills>',
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>',
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>',
            '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>',
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>',
            f'<dxfs count="0"/><tableStyles count="0" defaultTableStyle="{TABLE_STYLE}" ',
            'defaultPivotStyle="PivotStyleLight16"/></styleSheet>',
        )
    )
    cols = "".join(
        f'<col min="{index}" max="{index}" width="{_excel_width(width)!r}" customWidth="1"/>'
        for index, width in enumerate(widths, 1)
    )
    sheet_head = "".join(
        (
            f'{_XML_HEAD}<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">',
            f'<dimension ref="A1:{last}{rows + 1}"/>',
            '<sheetViews><sheetView tabSelected="1" workbookViewId="0">',
            '<pane xSplit="1" ySplit="1" topLeftCell="B2" activePane="bottomRight" state="frozen"/>',
            '<selection pane="topRight" activeCell="B1" sqref="B1"/>',
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>',
            '<selection pane="bottomRight" activeCell="B2" sqref="B2"/>',
            '</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>',
            f"<cols>{cols}</cols><sheetData>",
        )
    )
    sheet_tail = "".join(
        (
            '</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>',
            '<tableParts count="1"><tablePart r:id="rId1"/></tableParts></worksheet>',
        )
    )
    sheet_rels = "".join(
        (
            f'{_XML_HEAD}<Relationships xmlns="{_NS_PACKAGE_REL}">',
            f'<Relationship Id="rId1" Type="{_NS_REL}/table" Target="../tables/table1.xml"/>',
            "</Relationships>",
        )
    )
    table_columns = "".join(
        f'<tableColumn id="{index}" name="{_table_column_name(name)}"/>' for index, name in enumerate(columns, 1)
    )
    table_xml = "".join(
        (
            f'{_XML_HEAD}<table xmlns="{_NS_MAIN}" id="1" name="{_escape_attribute(table)}" ',
            f'displayName="{_escape_attribute(table)}" ref="{ref}" totalsRowShown="0">',
            f'<autoFilter ref="{ref}"/><tableColumns count="{len(columns)}">{table_columns}</tableColumns>',
            f'<tableStyleInfo name="{TABLE_STYLE}" showFirstColumn="0" showLastColumn="0" showRowStripes="1" ',
            'showColumnStripes="0"/></table>',
        )
    )
    before = [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", package_rels),
        ("docProps/app.xml", app),
        ("docProps/core.xml", core),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", workbook_rels),
        ("xl/styles.xml", styles),
        ("xl/theme/theme1.xml", theme_xml),
    ]
    after = [("xl/worksheets/_rels/sheet1.xml.rels", sheet_rels), ("xl/tables/table1.xml", table_xml)]
    return before, sheet_head, sheet_tail, after


def _column_batches(
    rows: Iterable[Sequence[Any]], kinds: Sequence[str], careful: Sequence[int], size: int
) -> Iterator[list[Sequence[Any]]]:
    """The rows, ``size`` at a time, as columns; careful columns already converted by ``_typed``."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        columns: list[Sequence[Any]] = list(zip(*batch, strict=True))
        for index in careful:
            kind = kinds[index]
            columns[index] = [_typed(value, kind) for value in columns[index]]
        yield columns


def _xml_cell(letter: str, number: str, value: Any, string_index: Callable[[str], str]) -> str:
    """One cell of any type; an empty string for no cell. The per-cell path, for columns that need it."""
    if value is None or isinstance(value, str):
        return f'<c r="{letter}{number}" t="s"><v>{string_index(value)}</v></c>' if value else ""
    if isinstance(value, bool):
        return f'<c r="{letter}{number}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int):
        return f'<c r="{letter}{number}"><v>{int(value)!r}</v></c>'
    if isinstance(value, float) and math.isfinite(value):
        return f'<c r="{letter}{number}"><v>{float(value)!r}</v></c>'
    return ""


def _xml_sheet_rows(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    kinds: Sequence[str],
    plan: _ColumnPlan,
    string_index: Callable[[str], str],
) -> Iterator[str]:
    """``<row>`` elements, one string per batch of rows. Text goes to the shared strings (``string_index`` gives a
    string's index, as text, and ``""`` for ``""``), so it is never a formula and each distinct value is escaped
    and stored once. A whole column of a batch is written by one comprehension, and the batch is assembled by
    ``str.join``: the per-cell Python work is one f-string."""
    letters = [get_column_letter(index) for index in range(1, len(header) + 1)]
    cells = (
        f'<c r="{letter}1" t="s"><v>{string_index(name)}</v></c>' for letter, name in zip(letters, header, strict=True)
    )
    yield '<row r="1">' + "".join(cells) + "</row>"
    first = 2
    converted = [index for index in plan.careful if plan.shapes[index] == _AUTO]
    for batch in _column_batches(rows, kinds, converted, _XML_BATCH_ROWS):
        numbers = list(map(str, range(first, first + len(batch[0]))))
        first += len(numbers)
        parts: list[Iterable[str]] = [[f'<row r="{number}">' for number in numbers]]
        for letter, shape, values in zip(letters, plan.shapes, batch, strict=True):
            if shape == _TEXT:
                indexes = list(map(string_index, values))
                if any(indexes):
                    parts.append(
                        [
                            f'<c r="{letter}{number}" t="s"><v>{index}</v></c>' if index else ""
                            for number, index in zip(numbers, indexes, strict=True)
                        ]
                    )
            elif shape == _NUMBER:
                # str() of an int or a float is its shortest round-trip form; "" stays "".
                texts = list(map(str, values))
                if any(texts):
                    parts.append(
                        [
                            f'<c r="{letter}{number}"><v>{text}</v></c>' if text else ""
                            for number, text in zip(numbers, texts, strict=True)
                        ]
                    )
            else:
                parts.append(
                    [
                        _xml_cell(letter, number, value, string_index)
                        for number, value in zip(numbers, values, strict=True)
                    ]
                )
        parts.append(repeat("</row>", len(numbers)))
        yield "".join(chain.from_iterable(zip(*parts, strict=False)))  # the last part repeats "</row>" forever


def _xml_shared_strings(strings: Iterable[str], unique: int) -> Iterator[str]:
    """The shared-strings part, a batch of strings at a time. Strings hold no NUL (``_ILLEGAL_XML_CHARS``), so a
    batch is joined on it, escaped by a few C-speed replaces and split again."""
    yield f'{_XML_HEAD}<sst xmlns="{_NS_MAIN}" uniqueCount="{unique}">'
    iterator = iter(strings)
    while batch := list(islice(iterator, _XML_BATCH_ROWS)):
        escaped = _escape_text("\0".join(batch)).split("\0")
        yield '<si><t xml:space="preserve">' + '</t></si><si><t xml:space="preserve">'.join(escaped) + "</t></si>"
    yield "</sst>"


def _write_encoded(stream: IO[bytes], chunks: Iterable[str]) -> None:
    for chunk in chunks:
        stream.write(chunk.encode())


@dataclass(frozen=True, slots=True)
class ExtraSheet:
    """A sheet after the main one (the xml engine only): its name and its rows, the first being a header. Cells
    are text (inline, never a formula) or numbers; ``""`` and ``None`` leave a cell empty. No table, no typing."""

    name: str
    rows: Sequence[Sequence[Any]]


def _xml_extra_sheet(rows: Sequence[Sequence[Any]], string_index: Callable[[str], str]) -> Iterator[str]:
    """An extra sheet's part, a batch of rows per string: header row frozen, text in the shared strings (added
    after the main sheet's, whose indexes stay as they are), a column of a batch at a time as in the main sheet."""
    width = max(map(len, rows), default=1)
    yield "".join(
        (
            f'{_XML_HEAD}<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">',
            f'<dimension ref="A1:{get_column_letter(width)}{max(1, len(rows))}"/>',
            '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" ',
            'state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>',
            '<sheetFormatPr defaultRowHeight="15"/><sheetData>',
        )
    )
    letters = [get_column_letter(index) for index in range(1, width + 1)]
    padding = ("",) * width
    first = 1
    for start in range(0, len(rows), _XML_BATCH_ROWS):
        batch = [(*row, *padding[len(row) :]) for row in rows[start : start + _XML_BATCH_ROWS]]
        numbers = list(map(str, range(first, first + len(batch))))
        first += len(batch)
        parts: list[Iterable[str]] = [[f'<row r="{number}">' for number in numbers]]
        for letter, values in zip(letters, zip(*batch, strict=True), strict=True):
            if all(value.__class__ is str for value in values):
                texts = [string_index(_excel_text(value)) if value else "" for value in values]
                parts.append(
                    [
                        f'<c r="{letter}{number}" t="s"><v>{text}</v></c>' if text else ""
                        for number, text in zip(numbers, texts, strict=True)
                    ]
                )
            else:
                parts.append(
                    [
                        _xml_cell(letter, number, _excel_text(value) if isinstance(value, str) else value, string_index)
                        for number, value in zip(numbers, values, strict=True)
                    ]
                )
        parts.append(repeat("</row>", len(numbers)))
        yield "".join(chain.from_iterable(zip(*parts, strict=False)))
    yield (
        '</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    )


def _save_xml(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: _ColumnPlan,
    sheet: str,
    table: str,
    timestamp: datetime,
    extra_sheets: Sequence[ExtraSheet] = (),
) -> None:
    """Write the workbook's parts as text: small parts whole, the sheet and the shared strings streamed in
    batches, so memory holds one batch of cells (plus the distinct strings, which the rows hold already)."""
    header = [_excel_text(name) for name in columns]
    before, sheet_head, sheet_tail, after = _xml_parts(
        header, plan.widths, len(rows), sheet, table, timestamp, [extra.name for extra in extra_sheets]
    )
    # Text -> its index as text, numbered as first seen; "" is no string and maps to "".
    strings: defaultdict[str, str] = defaultdict(map(str, count()).__next__)
    strings[""] = ""
    # An upper bound on the sheet's size decides whether it needs Zip64, ahead of writing it.
    row_bound = 30 + sum(_XML_CELL_MARKUP + max(length, _XML_NUMBER_CHARS) for length in plan.longest)
    sheet_bound = len(sheet_head) + len(sheet_tail) + (len(rows) + 1) * row_bound
    with _PinnedZipFile(temp, "w", ZIP_DEFLATED, compresslevel=_XML_COMPRESS_LEVEL) as archive:
        for name, text in before:
            archive.writestr(name, text)
        sheet_rows = _xml_sheet_rows(header, rows, kinds, plan, strings.__getitem__)
        with archive.open(archive.member("xl/worksheets/sheet1.xml", sheet_bound), "w") as stream:
            _write_encoded(stream, chain((sheet_head,), sheet_rows, (sheet_tail,)))
        for name, text in after:
            archive.writestr(name, text)
        for number, extra in enumerate(extra_sheets, 2):
            # Rendered first: its exact size decides on Zip64, which Excel wants only where needed.
            chunks = [chunk.encode() for chunk in _xml_extra_sheet(extra.rows, strings.__getitem__)]
            member = archive.member(f"xl/worksheets/sheet{number}.xml", sum(map(len, chunks)))
            with archive.open(member, "w") as stream:
                for chunk in chunks:
                    stream.write(chunk)
        del strings[""]
        # UTF-8 takes at most 3 bytes per character here, an escape at most 5 (&amp;), the markup 40 per string.
        strings_bound = 200 + 5 * sum(map(len, strings)) + 40 * len(strings)
        with archive.open(archive.member("xl/sharedStrings.xml", strings_bound), "w") as stream:
            _write_encoded(stream, _xml_shared_strings(strings, len(strings)))


@dataclass(frozen=True, slots=True)
class ColumnSizes:
    """What a caller that indexes its rows knows ahead, per column and header excluded: the longest line and the
    longest value, in characters. Given to ``write_workbook``, it replaces the pass over the rows (see there)."""

    lines: Sequence[int]
    values: Sequence[int]


def _sized_plan(columns: Sequence[str], sizes: ColumnSizes, cap: int = MAX_COLUMN_WIDTH) -> _ColumnPlan:
    """The plan from sizes known ahead: the widths ``_plan_columns`` would fit; every column converted per batch."""
    if len(sizes.lines) != len(columns) or len(sizes.values) != len(columns):
        raise ValueError(f"Column sizes for {len(sizes.values):,} columns, not {len(columns):,}")
    return _ColumnPlan(
        widths=[min(cap, max(len(name), line) + 2) for name, line in zip(columns, sizes.lines, strict=True)],
        careful=list(range(len(columns))),
        shapes=[_AUTO] * len(columns),
        longest=list(sizes.values),
    )


# Inline text makes a batch's cells several times larger than shared-string indexes: smaller batches keep the
# peak low (50,000 rows x 66 columns of the CMDB: about 19 MB of Python allocations at 1,000 rows a batch).
_XML_INLINE_BATCH_ROWS = 250
# An inline text cell without its reference and text: at most 10 characters of reference ("XFD1048576").
_XML_INLINE_MARKUP = 70


def _xml_inline_cell(letter: str, number: str, value: Any) -> str:
    """One cell of any type, text inline; an empty string for no cell."""
    if isinstance(value, str):
        return f'<c r="{letter}{number}" t="inlineStr"><is><t xml:space="preserve">{_escape_text(value)}</t></is></c>'
    return _xml_cell(letter, number, value, str)  # str: only text consults the index, and text is handled above


def _xml_inline_cells(letter: str, numbers: Sequence[str], values: Sequence[Any], kind: str, short: bool) -> list[str]:
    """One column of a batch as cells, text inline (``t="inlineStr"``, never a formula). Text columns (not number
    columns) of short text (``short``) without a character XML cannot carry are kept as they are, checked for the
    whole column at once; other columns are converted by ``_typed`` cell by cell."""
    if (
        kind != _NUMBER
        and short
        and all(value.__class__ is str for value in values)
        and not _ILLEGAL_XML_CHARS.search("\n".join(values))
    ):
        texts: Sequence[Any] = values
    else:
        texts = [_typed(value, kind) for value in values]
    if not all(text is None or text.__class__ is str for text in texts):
        return [_xml_inline_cell(letter, number, value) for number, value in zip(numbers, texts, strict=True)]
    # No NUL is left (XML cannot carry it), so the column is escaped as one string.
    escaped = _escape_text("\0".join([text or "" for text in texts])).split("\0")
    return [
        f'<c r="{letter}{number}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>' if text else ""
        for number, text in zip(numbers, escaped, strict=True)
    ]


def _xml_inline_rows(
    header: Sequence[str], rows: Iterable[Sequence[Any]], kinds: Sequence[str], plan: _ColumnPlan
) -> Iterator[str]:
    """``<row>`` elements, one string per batch of rows, in one pass over ``rows``: text inline, so nothing is kept
    between batches (shared strings would grow with every distinct value)."""
    letters = [get_column_letter(index) for index in range(1, len(header) + 1)]
    yield '<row r="1">' + "".join(map(_xml_inline_cell, letters, repeat("1"), header)) + "</row>"
    short = [longest <= EXCEL_MAX_TEXT // 2 for longest in plan.longest]
    iterator = iter(rows)
    first = 2
    while batch := list(islice(iterator, _XML_INLINE_BATCH_ROWS)):
        _check_widths(batch, len(header), first - 1)
        numbers = list(map(str, range(first, first + len(batch))))
        first += len(batch)
        parts: list[Iterable[str]] = [[f'<row r="{number}">' for number in numbers]]
        for letter, kind, fits, values in zip(letters, kinds, short, zip(*batch, strict=True), strict=True):
            parts.append(_xml_inline_cells(letter, numbers, values, kind, fits))
        parts.append(repeat("</row>", len(numbers)))
        yield "".join(chain.from_iterable(zip(*parts, strict=False)))


_SHARED_STRINGS_TYPE = (
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_CT}.spreadsheetml.sharedStrings+xml"/>'
)
_SHARED_STRINGS_REL = f'<Relationship Id="rId4" Type="{_NS_REL}/sharedStrings" Target="sharedStrings.xml"/>'


def _save_xml_inline(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: _ColumnPlan,
    sheet: str,
    table: str,
    timestamp: datetime,
) -> None:
    """The xml engine's workbook with its text inline and no shared strings, the rows read once, a batch at a time:
    memory does not grow with the rows."""
    header = [_excel_text(name) for name in columns]
    before, sheet_head, sheet_tail, after = _xml_parts(header, plan.widths, len(rows), sheet, table, timestamp)
    before[0] = (before[0][0], before[0][1].replace(_SHARED_STRINGS_TYPE, ""))
    before[5] = (before[5][0], before[5][1].replace(_SHARED_STRINGS_REL, ""))
    # An upper bound on the sheet's size decides whether it needs Zip64: an escape takes at most 5 bytes a character.
    row_bound = 30 + sum(_XML_INLINE_MARKUP + 5 * max(length, _XML_NUMBER_CHARS) for length in plan.longest)
    sheet_bound = len(sheet_head) + len(sheet_tail) + (len(rows) + 1) * row_bound
    with _PinnedZipFile(temp, "w", ZIP_DEFLATED, compresslevel=_XML_COMPRESS_LEVEL) as archive:
        for name, text in before:
            archive.writestr(name, text)
        sheet_rows = _xml_inline_rows(header, rows, kinds, plan)
        with archive.open(archive.member("xl/worksheets/sheet1.xml", sheet_bound), "w") as stream:
            _write_encoded(stream, chain((sheet_head,), sheet_rows, (sheet_tail,)))
        for name, text in after:
            archive.writestr(name, text)


_ENGINES: dict[str, Callable[..., None]] = {
    "xml": _save_xml,
    "openpyxl": _save_openpyxl,
    "xlsxwriter": _save_xlsxwriter,
}


_INVALID_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")
# Excel's rule for table names: a letter, "_" or a backslash first, then letters, digits, "_", "." and backslashes,
# and nothing that reads as a cell reference ("A1", "R1C1", "R", "C").
_TABLE_NAME = re.compile(r"(?:[^\W\d]|\\)[\w.\\]{0,254}")
_CELL_REFERENCE = re.compile(r"[A-Za-z]{1,3}\d+|[Rr]\d*[Cc]?\d*|[Cc]\d*")


def _check_names(columns: Sequence[str], sheet: str, table: str) -> None:
    """Names Excel would refuse or "repair" raise ``ValueError`` before anything is written."""
    if not columns or len(columns) > EXCEL_MAX_COLUMNS:
        raise ValueError(f"A sheet holds 1 to {EXCEL_MAX_COLUMNS:,} columns, not {len(columns):,}")
    if not all(isinstance(name, str) and _excel_text(name).strip() for name in columns):
        raise ValueError("Excel table column names must be non-empty text")
    if len({name.casefold() for name in columns}) != len(columns):
        raise ValueError("Excel table column names must be unique (case-insensitive)")
    if not 0 < len(sheet) <= 31 or _INVALID_SHEET_NAME.search(sheet) or sheet.startswith("'") or sheet.endswith("'"):
        raise ValueError(f"Invalid sheet name {sheet!r}: 1 to 31 characters, none of []:*?/\\, no outer quotes")
    if not _TABLE_NAME.fullmatch(table) or _CELL_REFERENCE.fullmatch(table):
        raise ValueError(f"Invalid table name {table!r}: a letter or _ first, then letters, digits, _ and .")


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
    engine: WorkbookEngine = "xml",
    extra_sheets: Sequence[ExtraSheet] = (),
    sizes: ColumnSizes | None = None,
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

    ``rows`` is materialised if it is not a sequence: the widths need a pass before the first row is written. More
    rows or columns than a sheet holds raise ``ValueError``, as do an invalid sheet or table name.
    ``engine``: ``"xml"`` (the default and by far the fastest: writes the SpreadsheetML itself, text as shared
    strings, the sheet streamed into the zip a batch of rows at a time, so memory stays flat), ``"openpyxl"``
    (write-only, streams, memory stays flat: the reference implementation) or ``"xlsxwriter"`` (normal mode: it
    holds every cell until the end, about 530 MB more for 50,000 x 66). All three meet the rest of the contract and
    give the same cells; the bytes differ between engines. ``bench/writers_bench.py`` has the figures.

    ``extra_sheets`` (xml engine only) come after the main sheet, which stays byte for byte what it is without them.

    ``sizes`` (xml engine only, no extra sheets), the columns' longest line and value known ahead (an index over the
    rows has them cheaply), spares the pass over the rows: a ``rows`` sequence that makes its rows on demand is read
    once, a batch at a time, and its text is written inline instead of as shared strings, so memory does not grow
    with the rows (the CMDB's filtered downloads). Same widths, typing and styling; other bytes.
    """
    target = Path(path)
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(UTC).replace(tzinfo=None)
    timestamp = timestamp.replace(microsecond=0)
    _check_names(columns, sheet, table)
    for extra in extra_sheets:
        _check_names(["x"], extra.name, table)
    if extra_sheets and (engine != "xml" or len({sheet, *(e.name for e in extra_sheets)}) != 1 + len(extra_sheets)):
        raise ValueError("Extra sheets need the xml engine and names of their own")
    if not isinstance(rows, Sequence):
        rows = list(rows)
    if len(rows) + 1 > EXCEL_MAX_ROWS:
        raise ValueError(f"{len(rows):,} rows do not fit in a sheet of {EXCEL_MAX_ROWS:,} rows (header included)")
    kinds = _column_kinds(columns, numeric_columns, text_columns)
    if sizes is not None:
        if engine != "xml" or extra_sheets:
            raise ValueError("Column sizes known ahead need the xml engine and no extra sheets")
        plan = _sized_plan(columns, sizes)
    else:
        _check_widths(rows, len(columns))
        plan = _plan_columns(columns, rows, kinds)
    save = _ENGINES[engine]
    with _atomic_path(target) as temp:
        if sizes is not None:
            _save_xml_inline(temp, columns, rows, kinds, plan, sheet, table, timestamp)
        elif extra_sheets:
            _save_xml(temp, columns, rows, kinds, plan, sheet, table, timestamp, extra_sheets)
        else:
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
