"""What a workbook's cells are, whichever engine writes them: Excel's limits and names, text made acceptable to
Excel, each column's typing, width and write plan, and the zip with pinned dates. Shared by the production writer
(``exports.workbook``) and the comparison engines in ``bench.workbooks``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import repeat
from typing import IO, Any
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from isal import isal_zlib
from openpyxl.utils import get_column_letter

from exports.atomic import HASH_CHUNK
from exports.constants import XML_ILLEGAL_CHARS

DEFAULT_SHEET = "NetBox Inventory"
DEFAULT_TABLE = "NetBoxInventory"
TABLE_STYLE = "TableStyleMedium9"
MAX_COLUMN_WIDTH = 50
# Excel's limit per cell, counted in UTF-16 code units; longer text makes Excel "repair" the file.
EXCEL_MAX_TEXT = 32767
# Excel's sheet size: rows (header included) and columns.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
# Workbooks carry a document date and zip member dates; pinning them makes equal rows give equal bytes (and hashes).
DEFAULT_TIMESTAMP = datetime(2000, 1, 1)
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# Bounded so that a digit string never becomes inf or trips Python's limit on int conversion.
_NUMBER_TEXT = re.compile(r"-?\d{1,300}(?:\.\d{1,300})?")
# Strings openpyxl would store as error cells instead of text.
_EXCEL_ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))


def excel_text(text: str) -> str:
    """Text Excel accepts: no XML-illegal control characters, at most 32,767 UTF-16 code units."""
    if XML_ILLEGAL_CHARS.search(text):
        text = XML_ILLEGAL_CHARS.sub("", text)
    # Fewer than half the limit in code points cannot exceed it in UTF-16 units; skip the encode for those.
    if len(text) > EXCEL_MAX_TEXT // 2:
        encoded = text.encode("utf-16-le")
        if len(encoded) > 2 * EXCEL_MAX_TEXT:
            text = encoded[: 2 * EXCEL_MAX_TEXT].decode("utf-16-le", errors="ignore")
    return text


# How a column's values are typed in the workbook (dates and date-times: text as NetBox writes them, stored as
# Excel dates with a date format).
NUMBER, TEXT, AUTO, DATE, DATETIME = "n", "s", "a", "d", "t"
_PLAIN_TYPES = frozenset((str, int, float, bool, type(None)))
_DATE_TEXT = re.compile(r"\d{4}-\d\d-\d\d")
_DATETIME_TEXT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?")


def column_kinds(
    columns: Sequence[str],
    numeric: Collection[str],
    text: Collection[str],
    dates: Collection[str] = (),
    datetimes: Collection[str] = (),
) -> list[str]:
    return [
        TEXT
        if name in text
        else NUMBER
        if name in numeric
        else DATE
        if name in dates
        else DATETIME
        if name in datetimes
        else AUTO
        for name in columns
    ]


def _as_date(text: str, kind: str) -> date | None:
    """A date column's text as a ``date`` (``datetime`` for a date-time column, in UTC, naive); ``None`` when it is
    not one (the cell then keeps the text)."""
    try:
        if kind == DATE and _DATE_TEXT.fullmatch(text):
            return date.fromisoformat(text)
        if kind == DATETIME and _DATETIME_TEXT.fullmatch(text):
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return moment.replace(microsecond=0)
    except ValueError:
        return None
    return None


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """What the first pass over the rows learned, per column: its width; whether its cells need converting one by
    one (``careful``, column indexes); its ``shape``, which lets the xml engine write a whole column of a batch at
    once (``TEXT``: only ``str``; ``NUMBER``: only ``int``/``float`` and ``""``; ``AUTO``: anything else, and
    columns whose values need converting for every engine); and the length of its longest value in characters
    (uncapped, for sizing the sheet)."""

    widths: list[int]
    careful: list[int]
    shapes: list[str]
    longest: list[int]


def plan_columns(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], kinds: Sequence[str], cap: int = MAX_COLUMN_WIDTH
) -> ColumnPlan:
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
            (kind == TEXT and others)
            or (kind == NUMBER and has_text)
            or (kind in (DATE, DATETIME) and has_text)
            or not types <= _PLAIN_TYPES
            # Excel has no NaN or infinity; the sum of finite floats can only overflow, which just costs a closer look.
            or not math.isfinite(sum(floats, 0.0))
            or XML_ILLEGAL_CHARS.search(joined)
            or longest_text > EXCEL_MAX_TEXT // 2
        )
        # A leading "=" (formula) or "#" (error value) makes openpyxl and XlsxWriter guess a type; a line start is
        # enough to look closer. Shared strings are never formulas, so the xml engine needs no closer look for these.
        guessed = joined.startswith(("=", "#")) or "\n=" in joined or "\n#" in joined
        if converted or guessed:
            careful.append(index)
        if converted:
            shapes.append(AUTO)
        elif types <= {str}:
            shapes.append(TEXT)
        elif not has_text and types <= {str, int, float}:
            shapes.append(NUMBER)
        else:
            shapes.append(AUTO)
    return ColumnPlan(widths=widths, careful=careful, shapes=shapes, longest=longest)


class ColumnMeter:
    """What ``plan_columns`` measures for the widths, gathered a batch of rows at a time: per column (header
    excluded), the longest line and the longest value in characters (``lines`` and ``values``; the sizes of
    ``exports.workbook.ColumnSizes``). Rows that pass once (a streamed export) are measured as they pass, and the
    workbook written later gets the widths and sheet sizes a pass over all the rows would give.

    Beside each longest line and value, how many rows have one that long (``line_counts``, ``value_counts``; 0 when
    the longest is 0): what lets an incremental run take the previous run's sizes for the rows it reuses without
    measuring them again (``without``)."""

    __slots__ = ("line_counts", "lines", "value_counts", "values")

    def __init__(self, width: int) -> None:
        self.lines = [0] * width
        self.values = [0] * width
        self.line_counts = [0] * width
        self.value_counts = [0] * width

    def _count(self, index: int, line: int, line_count: int, value: int, value_count: int) -> None:
        for sizes, counts, size, count in (
            (self.lines, self.line_counts, line, line_count),
            (self.values, self.value_counts, value, value_count),
        ):
            if size > sizes[index]:
                sizes[index], counts[index] = size, count
            elif size == sizes[index] and size:
                counts[index] += count

    def add(self, rows: Sequence[Sequence[Any]], only: Sequence[int] | None = None) -> None:
        """Measure ``rows`` (only the columns ``only`` when given)."""
        if not rows:
            return
        lines, longest = self.lines, self.values
        columns: Iterable[tuple[int, Sequence[Any]]] = (
            enumerate(zip(*rows, strict=True))
            if only is None
            else ((index, [row[index] for row in rows]) for index in only)
        )
        for index, values in columns:
            distinct = set(values)
            if all(value.__class__ is str for value in distinct):
                longest_text = max(map(len, distinct))
                # A line is never longer than its value: nothing to count unless a value is as long as before.
                if longest_text and (longest_text >= lines[index] or longest_text >= longest[index]):
                    value_count = list(map(len, values)).count(longest_text)
                    joined = "\n".join(distinct)
                    if joined.count("\n") > len(distinct) - 1:  # multi-line values: each one's longest line
                        line_of = {value: max(map(len, value.split("\n"))) for value in distinct}
                        line = max(line_of.values())
                        line_count = list(map(line_of.__getitem__, values)).count(line)
                    else:
                        line, line_count = longest_text, value_count
                    self._count(index, line, line_count, longest_text, value_count)
                continue
            types = set(map(type, distinct))
            if types == {type(None)}:
                continue
            if str not in types and type(None) not in types:  # numbers (and bools): as they print
                value_sizes = list(map(len, map(str, values)))
                value = max(value_sizes)
                count = value_sizes.count(value)
                self._count(index, value, count, value, count)
                continue
            # As plan_columns: a set merges 1, 1.0 and True, which print differently; each row measured apart.
            line_sizes = []
            value_sizes = []
            for value in values:
                if value.__class__ is str:
                    value_sizes.append(len(value))
                    line_sizes.append(max(map(len, value.split("\n"))) if "\n" in value else len(value))
                elif value is None:
                    value_sizes.append(0)
                    line_sizes.append(0)
                else:
                    size = len(str(value))
                    value_sizes.append(size)
                    line_sizes.append(size)
            line, value = max(line_sizes), max(value_sizes)
            self._count(index, line, line_sizes.count(line), value, value_sizes.count(value))

    def merge(self, other: ColumnMeter) -> None:
        """Measure ``other``'s rows too (as if they had been added here)."""
        for index in range(len(self.lines)):
            self._count(index, other.lines[index], other.line_counts[index], 0, 0)
            self._count(index, 0, 0, other.values[index], other.value_counts[index])

    def without(self, dropped: ColumnMeter) -> ColumnMeter | None:
        """These rows' sizes without the ``dropped`` rows (some of them, measured apart), or ``None`` where that
        cannot be known without measuring the rows left: every row as long as a longest one dropped."""
        left = ColumnMeter(len(self.lines))
        for sizes, counts, left_sizes, left_counts, dropped_sizes, dropped_counts in (
            (self.lines, self.line_counts, left.lines, left.line_counts, dropped.lines, dropped.line_counts),
            (self.values, self.value_counts, left.values, left.value_counts, dropped.values, dropped.value_counts),
        ):
            for index, (size, count) in enumerate(zip(sizes, counts, strict=True)):
                if dropped_sizes[index] > size:
                    return None  # not rows of these
                if size and dropped_sizes[index] == size:
                    count -= dropped_counts[index]
                    if count <= 0:
                        return None
                left_sizes[index], left_counts[index] = size, count
        return left

    def without_measuring(self, dropped: ColumnMeter) -> tuple[ColumnMeter, list[int]]:
        """``without`` where it can be known, column by column: these rows' sizes without the ``dropped`` rows, and the
        columns whose sizes cannot be known without measuring the rows left (left at 0 in the meter returned)."""
        left = ColumnMeter(len(self.lines))
        unknown = []
        for index in range(len(self.lines)):
            known = []
            for size, count, dropped_size, dropped_count in (
                (self.lines[index], self.line_counts[index], dropped.lines[index], dropped.line_counts[index]),
                (self.values[index], self.value_counts[index], dropped.values[index], dropped.value_counts[index]),
            ):
                if dropped_size > size:
                    break
                if size and dropped_size == size:
                    count -= dropped_count
                    if count <= 0:
                        break
                known.append((size, count))
            if len(known) < 2:
                unknown.append(index)
                continue
            (left.lines[index], left.line_counts[index]), (left.values[index], left.value_counts[index]) = known
        return left, unknown

    def forget(self, columns: Iterable[int]) -> None:
        """Sizes of ``columns`` back to nothing measured."""
        for index in columns:
            self.lines[index] = self.values[index] = self.line_counts[index] = self.value_counts[index] = 0

    def state(self) -> dict[str, list[int]]:
        return {name: list(getattr(self, name)) for name in self.__slots__}

    @classmethod
    def of_state(cls, state: Any, width: int) -> ColumnMeter | None:
        """A meter from its ``state()``; ``None`` unless it is one, of ``width`` columns."""
        meter = cls(width)
        if not isinstance(state, dict):
            return None
        for name in cls.__slots__:
            sizes = state.get(name)
            if not isinstance(sizes, list) or len(sizes) != width or not all(type(size) is int for size in sizes):
                return None
            setattr(meter, name, list(sizes))
        return meter


def column_widths(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, cap: int = MAX_COLUMN_WIDTH) -> list[int]:
    """Column widths in Excel character units: the longest line in the column (header included) plus room for the
    filter button, at most ``cap``."""
    return plan_columns(columns, rows, [AUTO] * len(columns), cap).widths


def typed(value: Any, kind: str) -> Any:
    """The value to store: ``None`` (no cell), a number, a bool, a date (date and date-time columns), or text. Text
    columns never hold numbers; numeric columns turn digit strings into numbers, date columns ISO dates into dates;
    other columns follow the Python type. NaN and infinities, which Excel
    cannot store, leave the cell empty."""
    if value is None or value == "":
        return None
    if kind == TEXT:
        text = value if isinstance(value, str) else str(value)
    elif isinstance(value, bool | int):
        return value
    elif isinstance(value, float):
        return value if math.isfinite(value) else None
    else:
        text = value if isinstance(value, str) else str(value)
        if kind == NUMBER and _NUMBER_TEXT.fullmatch(text):
            return float(text) if "." in text else int(text)
        if kind in (DATE, DATETIME) and (moment := _as_date(text, kind)) is not None:
            return moment
    return excel_text(text) or None


def prepared_rows(
    rows: Iterable[Sequence[Any]], kinds: Sequence[str], careful: Sequence[int], guard: Callable[[str], Any] | None
) -> Iterator[list[Any]]:
    """Rows as lists of ``None`` (no cell), numbers, bools and text; ``guard`` wraps text an engine would misread."""
    for row in rows:
        cells = [None if value == "" else value for value in row]
        for index in careful:
            value = cells[index]
            if value is not None:
                value = typed(value, kinds[index])
                if guard is not None and type(value) is str and (value[0] == "=" or value in _EXCEL_ERROR_CODES):
                    value = guard(value)
                cells[index] = value
        yield cells


# Deflate levels ISA-L offers; PinnedZipFile members at these levels are deflated by it.
ISAL_LEVELS = (0, 1, 2, 3)


# zipfile's writer of a member (``ZipFile.open(..., "w")``), which its type stubs leave out.
_ZIP_WRITE_FILE: Any = zipfile._ZipWriteFile  # type: ignore[attr-defined]


class _IsalCrcWriteFile(_ZIP_WRITE_FILE):
    """A zip member's writer (``zipfile``'s own) whose CRC-32 is ISA-L's: the same value as zlib's, at several times
    its speed: the 540 MB of sheets of a workbook of 250,000 rows take zlib's 0.14 s of CPU and ISA-L's 0.04 s."""

    _crc: int
    _file_size: int
    _compress_size: int

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if isinstance(data, (bytes, bytearray)):
            nbytes = len(data)
        else:
            data = memoryview(data)
            nbytes = data.nbytes
        self._file_size += nbytes
        self._crc = isal_zlib.crc32(data, self._crc)
        if self._compressor:
            data = self._compressor.compress(data)
            self._compress_size += len(data)
        self._fileobj.write(data)
        return nbytes


class PinnedZipFile(ZipFile):
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

    def open(self, name: Any, mode: Any = "r", pwd: Any = None, *, force_zip64: bool = False) -> IO[bytes]:
        """As ``ZipFile.open``; a member written at a level of ISA-L's (0 to 3, ``ISAL_LEVELS``) is deflated by ISA-L
        (python-isal), about 5 times zlib's speed at level 1 and a little smaller: still plain deflate, which every
        zip reader inflates."""
        stream = super().open(name, mode, pwd, force_zip64=force_zip64)
        if mode == "w" and self.compression == ZIP_DEFLATED:
            if isinstance(name, ZipInfo):
                level = name.compress_level if sys.version_info >= (3, 13) else name._compresslevel  # type: ignore[attr-defined]
            else:
                level = self.compresslevel
            if level in ISAL_LEVELS:
                # Swapped before anything is written through the stream.
                stream._compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)  # type: ignore[attr-defined]
            if type(stream) is _ZIP_WRITE_FILE:
                stream.__class__ = _IsalCrcWriteFile  # the same member writer, its CRC-32 computed by ISA-L
        return stream

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
            shutil.copyfileobj(source, target, HASH_CHUNK)


def excel_width(characters: int) -> float:
    """A width in characters as Excel stores it: with its 5-pixel padding for Calibri 11 (50 -> 50.7109375), the
    same value XlsxWriter's ``set_column`` writes, so both engines give identical columns."""
    pixels = int(characters * 7 + 0.5) + 5
    return int(pixels / 7 * 256) / 256


def table_ref(width: int, rows: int) -> str:
    # Excel needs at least one data row under a table header; an empty export gets one empty row.
    return f"A1:{get_column_letter(width)}{max(rows, 1) + 1}"


_INVALID_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")
# Excel's rule for table names: a letter, "_" or a backslash first, then letters, digits, "_", "." and backslashes,
# and nothing that reads as a cell reference ("A1", "R1C1", "R", "C").
_TABLE_NAME = re.compile(r"(?:[^\W\d]|\\)[\w.\\]{0,254}")
_CELL_REFERENCE = re.compile(r"[A-Za-z]{1,3}\d+|[Rr]\d*[Cc]?\d*|[Cc]\d*")


def check_names(columns: Sequence[str], sheet: str, table: str) -> None:
    """Names Excel would refuse or "repair" raise ``ValueError`` before anything is written."""
    if not columns or len(columns) > EXCEL_MAX_COLUMNS:
        raise ValueError(f"A sheet holds 1 to {EXCEL_MAX_COLUMNS:,} columns, not {len(columns):,}")
    if not all(isinstance(name, str) and excel_text(name).strip() for name in columns):
        raise ValueError("Excel table column names must be non-empty text")
    if len({name.casefold() for name in columns}) != len(columns):
        raise ValueError("Excel table column names must be unique (case-insensitive)")
    if not 0 < len(sheet) <= 31 or _INVALID_SHEET_NAME.search(sheet) or sheet.startswith("'") or sheet.endswith("'"):
        raise ValueError(f"Invalid sheet name {sheet!r}: 1 to 31 characters, none of []:*?/\\, no outer quotes")
    if not _TABLE_NAME.fullmatch(table) or _CELL_REFERENCE.fullmatch(table):
        raise ValueError(f"Invalid table name {table!r}: a letter or _ first, then letters, digits, _ and .")
