"""Write CMDB rows to an Excel workbook, atomically (see ``exports.atomic``): the production engine, which
writes the SpreadsheetML itself (parts in ``exports.xlsxparts``), text as shared strings or inline, the sheet streamed
into the zip a batch of rows at a time. Also ``read_workbook_order``. The openpyxl and XlsxWriter engines it is
checked against live in ``bench.workbooks``. No Django; settings arrive as arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import math
import os
import re
import struct
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import accumulate, chain, count, groupby, islice, repeat
from operator import lt
from pathlib import Path
from typing import IO, Any
from zipfile import ZIP_DEFLATED

from isal import isal_zlib
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.writer.theme import theme_xml

from exports.atomic import FileInfo, PendingFile, atomic_path, check_widths, hash_file
from exports.cells import (
    AUTO,
    DATE,
    DATETIME,
    DEFAULT_SHEET,
    DEFAULT_TABLE,
    DEFAULT_TIMESTAMP,
    EXCEL_MAX_ROWS,
    EXCEL_MAX_TEXT,
    MAX_COLUMN_WIDTH,
    NUMBER,
    TEXT,
    ColumnPlan,
    PinnedZipFile,
    check_names,
    column_kinds,
    excel_text,
    plan_columns,
    typed,
)
from exports.columns import NUMERIC_COLUMNS, TEXT_COLUMNS
from exports.constants import XML_ILLEGAL_CHARS
from exports.xlsxparts import (
    DATE_STYLE,
    DATETIME_STYLE,
    NS_MAIN,
    NS_REL,
    PACKAGE_RELS_PART,
    SHEET_TAIL,
    STYLES_PART,
    STYLES_PART_DATES,
    XML_BATCH_ROWS,
    XML_CELL_MARKUP,
    XML_COMPRESS_LEVEL,
    XML_HEAD,
    XML_NUMBER_CHARS,
    app_part,
    content_types_part,
    core_part,
    escape_attribute,
    escape_text,
    sheet_head,
    sheet_rels_part,
    table_part,
    workbook_part,
    workbook_rels_part,
    xml_parts,
)

# Excel's day 0 in its 1900 date system (the 1900 leap-year bug makes it the 30th, not the 31st).
_EXCEL_EPOCH = datetime(1899, 12, 30)

# Saves a workbook's parts to a temp path: (temp, columns, rows, kinds, plan, sheet, table, timestamp).
Save = Callable[..., None]


def _column_batches(
    rows: Iterable[Sequence[Any]], kinds: Sequence[str], careful: Sequence[int], size: int
) -> Iterator[list[Sequence[Any]]]:
    """The rows, ``size`` at a time, as columns; careful columns already converted by ``typed``."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        columns: list[Sequence[Any]] = list(zip(*batch, strict=True))
        for index in careful:
            kind = kinds[index]
            columns[index] = [typed(value, kind) for value in columns[index]]
        yield columns


def _xml_cell(letter: str, number: str, value: Any, string_index: Callable[[str], str]) -> str:
    """One cell of any type; an empty string for no cell. The per-cell path, for columns that need it."""
    if value is None or isinstance(value, str):
        return f'<c r="{letter}{number}" t="s"><v>{string_index(value)}</v></c>' if value else ""
    if isinstance(value, datetime):
        serial = (value - _EXCEL_EPOCH).total_seconds() / 86400
        return f'<c r="{letter}{number}" s="{DATETIME_STYLE}"><v>{serial!r}</v></c>'
    if isinstance(value, date):
        return f'<c r="{letter}{number}" s="{DATE_STYLE}"><v>{(value - _EXCEL_EPOCH.date()).days}</v></c>'
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
    plan: ColumnPlan,
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
    converted = [index for index in plan.careful if plan.shapes[index] == AUTO]
    for batch in _column_batches(rows, kinds, converted, XML_BATCH_ROWS):
        numbers = list(map(str, range(first, first + len(batch[0]))))
        first += len(numbers)
        parts: list[Iterable[str]] = [[f'<row r="{number}">' for number in numbers]]
        for letter, shape, values in zip(letters, plan.shapes, batch, strict=True):
            if shape == TEXT:
                indexes = list(map(string_index, values))
                if any(indexes):
                    parts.append(
                        [
                            f'<c r="{letter}{number}" t="s"><v>{index}</v></c>' if index else ""
                            for number, index in zip(numbers, indexes, strict=True)
                        ]
                    )
            elif shape == NUMBER:
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
    """The shared-strings part, a batch of strings at a time. Strings hold no NUL (``XML_ILLEGAL_CHARS``), so a
    batch is joined on it, escaped by a few C-speed replaces and split again."""
    yield f'{XML_HEAD}<sst xmlns="{NS_MAIN}" uniqueCount="{unique}">'
    iterator = iter(strings)
    while batch := list(islice(iterator, XML_BATCH_ROWS)):
        escaped = escape_text("\0".join(batch)).split("\0")
        yield '<si><t xml:space="preserve">' + '</t></si><si><t xml:space="preserve">'.join(escaped) + "</t></si>"
    yield "</sst>"


def _has_dates(kinds: Sequence[str]) -> bool:
    """Whether the sheet has date columns: only then do the styles carry date formats (other workbooks keep their
    bytes)."""
    return DATE in kinds or DATETIME in kinds


def _write_encoded(stream: IO[bytes], chunks: Iterable[str]) -> None:
    for chunk in chunks:
        stream.write(chunk.encode())


@dataclass(frozen=True, slots=True)
class ExtraSheet:
    """A sheet after the main one (the xml engine only): its name and its rows, the first being a header. Cells
    are text (inline, never a formula) or numbers; ``""`` and ``None`` leave a cell empty. No table, no typing.

    ``rows`` is a sequence, or any iterable when ``shape`` gives its rows and columns: it is then read once, a
    batch of rows at a time, and never held whole (a sheet read back from a file)."""

    name: str
    rows: Iterable[Sequence[Any]]
    shape: tuple[int, int] | None = None

    def dimensions(self) -> tuple[int, int]:
        """Its rows and its columns (at least one), as given or counted."""
        if self.shape is not None:
            return self.shape
        if not isinstance(self.rows, Sequence):
            raise ValueError(f"Sheet {self.name!r}: rows that are not a sequence need their shape")
        return len(self.rows), max(map(len, self.rows), default=1)


def _xml_extra_sheet(extra: ExtraSheet, string_index: Callable[[str], str], *, inline: bool = False) -> Iterator[str]:
    """An extra sheet's part, a batch of rows per string: header row frozen, text in the shared strings (added
    after the main sheet's, whose indexes stay as they are) or ``inline``, a column of a batch at a time as in the
    main sheet."""
    size, width = extra.dimensions()
    yield "".join(
        (
            f'{XML_HEAD}<worksheet xmlns="{NS_MAIN}" xmlns:r="{NS_REL}">',
            f'<dimension ref="A1:{get_column_letter(width)}{max(1, size)}"/>',
            '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" ',
            'state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>',
            '<sheetFormatPr defaultRowHeight="15"/><sheetData>',
        )
    )
    letters = [get_column_letter(index) for index in range(1, width + 1)]
    padding = ("",) * width
    first = 1
    rows = iter(extra.rows)
    while batch := [(*row, *padding[len(row) :]) for row in islice(rows, XML_BATCH_ROWS)]:
        if first + len(batch) - 1 > size or set(map(len, batch)) != {width}:
            raise ValueError(f"Sheet {extra.name!r} has more rows or columns than its shape {(size, width)}")
        numbers = list(map(str, range(first, first + len(batch))))
        first += len(batch)
        parts: list[Iterable[str]] = [[f'<row r="{number}">' for number in numbers]]
        for letter, values in zip(letters, zip(*batch, strict=True), strict=True):
            if inline:
                parts.append(_xml_inline_extra_column(letter, numbers, values))
            elif all(value.__class__ is str for value in values):
                texts = [string_index(excel_text(value)) if value else "" for value in values]
                parts.append(
                    [
                        f'<c r="{letter}{number}" t="s"><v>{text}</v></c>' if text else ""
                        for number, text in zip(numbers, texts, strict=True)
                    ]
                )
            else:
                parts.append(
                    [
                        _xml_cell(letter, number, excel_text(value) if isinstance(value, str) else value, string_index)
                        for number, value in zip(numbers, values, strict=True)
                    ]
                )
        parts.append(repeat("</row>", len(numbers)))
        yield "".join(chain.from_iterable(zip(*parts, strict=False)))
    if first - 1 != size:
        raise ValueError(f"Sheet {extra.name!r} has {first - 1} rows, not the {size} of its shape")
    yield (
        '</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    )


def _xml_inline_extra_column(letter: str, numbers: Sequence[str], values: Sequence[Any]) -> list[str]:
    """A column of an extra sheet's batch as inline cells (``""`` for no cell): a column of short text without a
    character XML cannot carry is escaped as one string (joined on ``_SPLIT``) and split, a column of ints is one
    f-string a cell; other columns go cell by cell. The same cells whichever way."""
    types = set(map(type, values))
    if types == {str}:
        joined = _SPLIT.join(values)
        if (
            max(map(len, values)) <= EXCEL_MAX_TEXT // 2
            and joined.count(_SPLIT) == len(values) - 1
            and not _ILLEGAL_BUT_SPLIT.search(joined)
        ):
            head = f'<c r="{letter}'
            return [
                f'{head}{number}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>' if text else ""
                for number, text in zip(numbers, escape_text(joined).split(_SPLIT), strict=True)
            ]
    elif types == {int}:
        return [f'<c r="{letter}{number}"><v>{value!r}</v></c>' for number, value in zip(numbers, values, strict=True)]
    return [
        _xml_inline_cell(letter, number, excel_text(value) if isinstance(value, str) else value) if value != "" else ""
        for number, value in zip(numbers, values, strict=True)
    ]


def save_xml(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: ColumnPlan,
    sheet: str,
    table: str,
    timestamp: datetime,
    extra_sheets: Sequence[ExtraSheet] = (),
) -> None:
    """Write the workbook's parts as text: small parts whole, the sheet and the shared strings streamed in
    batches, so memory holds one batch of cells (plus the distinct strings, which the rows hold already)."""
    header = [excel_text(name) for name in columns]
    before, sheet_head, sheet_tail, after = xml_parts(
        header,
        plan.widths,
        len(rows),
        sheet,
        table,
        timestamp,
        [extra.name for extra in extra_sheets],
        dates=_has_dates(kinds),
    )
    # Text -> its index as text, numbered as first seen; "" is no string and maps to "".
    strings: defaultdict[str, str] = defaultdict(map(str, count()).__next__)
    strings[""] = ""
    # An upper bound on the sheet's size decides whether it needs Zip64, ahead of writing it.
    row_bound = 30 + sum(XML_CELL_MARKUP + max(length, XML_NUMBER_CHARS) for length in plan.longest)
    sheet_bound = len(sheet_head) + len(sheet_tail) + (len(rows) + 1) * row_bound
    with PinnedZipFile(temp, "w", ZIP_DEFLATED, compresslevel=XML_COMPRESS_LEVEL) as archive:
        for name, text in before:
            archive.writestr(name, text)
        sheet_rows = _xml_sheet_rows(header, rows, kinds, plan, strings.__getitem__)
        with archive.open(archive.member("xl/worksheets/sheet1.xml", sheet_bound), "w") as stream:
            _write_encoded(stream, chain((sheet_head,), sheet_rows, (sheet_tail,)))
        for name, text in after:
            archive.writestr(name, text)
        for number, extra in enumerate(extra_sheets, 2):
            # Streamed as the main sheet is: an upper bound on its size decides on Zip64.
            size, width = extra.dimensions()
            bound = 1000 + size * (30 + width * (XML_CELL_MARKUP + XML_NUMBER_CHARS))
            with archive.open(archive.member(f"xl/worksheets/sheet{number}.xml", bound), "w") as stream:
                _write_encoded(stream, _xml_extra_sheet(extra, strings.__getitem__))
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


def _sized_plan(columns: Sequence[str], sizes: ColumnSizes, cap: int = MAX_COLUMN_WIDTH) -> ColumnPlan:
    """The plan from sizes known ahead: the widths ``plan_columns`` would fit; every column converted per batch."""
    if len(sizes.lines) != len(columns) or len(sizes.values) != len(columns):
        raise ValueError(f"Column sizes for {len(sizes.values):,} columns, not {len(columns):,}")
    return ColumnPlan(
        widths=[min(cap, max(len(name), line) + 2) for name, line in zip(columns, sizes.lines, strict=True)],
        careful=list(range(len(columns))),
        shapes=[AUTO] * len(columns),
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
        return f'<c r="{letter}{number}" t="inlineStr"><is><t xml:space="preserve">{escape_text(value)}</t></is></c>'
    return _xml_cell(letter, number, value, str)  # str: only text consults the index, and text is handled above


_NUMBER_TYPES = frozenset((int, float, type(None)))
# A data row's XML is made with NUL where its number goes (in ``<row r="">`` and each cell's reference), so the same
# bytes serve whatever row the row lands on: the number is put in by one ``replace`` (``_numbered``). XML cannot
# carry NUL, so no cell holds one. A column of a batch is checked and escaped as one string, joined on ``_SPLIT``
# (XML cannot carry it either), then split: one f-string per cell; a column with no value makes no cells at all.
_ROW = "\0"
_SPLIT = "\x01"
_ROW_OPEN = f'<row r="{_ROW}">'
_INLINE_END = "</t></is></c>"
# Characters XML cannot carry, but _SPLIT: a column joined on _SPLIT is searched for them, its _SPLITs counted.
_ILLEGAL_BUT_SPLIT = re.compile(XML_ILLEGAL_CHARS.pattern.replace("\\x00-\\x08", "\\x00\\x02-\\x08"))


def _split_cells(head: str, joined: str, tail: str) -> list[str]:
    """``joined``'s values (separated by ``_SPLIT``) each between ``head`` and ``tail``; an empty value, no cell."""
    return [f"{head}{value}{tail}" if value else "" for value in joined.split(_SPLIT)]


def _xml_inline_column(letter: str, values: Sequence[Any], kind: str, short: bool) -> list[str] | None:
    """One column of a batch as cells (``_ROW`` for the row's number), text inline (``t="inlineStr"``, never a
    formula). Text columns (not number columns) of short text (``short``) without a character XML cannot carry are
    kept as they are, checked for the whole column at once; other columns are converted by ``typed`` (whole ints and
    ``""`` need no converting, but in a text column). A column of text or of numbers (and empty cells) is made by a
    few joins and a split; only a mixed column (or one of dates) goes cell by cell. ``None``: no cell at all (a
    device-only column of VMs)."""
    types = set(map(type, values))
    texts: Sequence[Any]
    if types == {str} and not any(values):
        return None
    if types == {str} and kind not in (NUMBER, DATE, DATETIME) and short:
        joined = _SPLIT.join(values)
        if joined.count(_SPLIT) == len(values) - 1 and not _ILLEGAL_BUT_SPLIT.search(joined):
            return _split_cells(
                f'<c r="{letter}{_ROW}" t="inlineStr"><is><t xml:space="preserve">', escape_text(joined), _INLINE_END
            )
        texts = [typed(value, kind) for value in values]
    elif types == {int} and kind != TEXT:
        # typed() keeps ints; repr() of an int or a float is its shortest round-trip form.
        head = f'<c r="{letter}{_ROW}"><v>'
        return [f"{head}{value!r}</v></c>" for value in values]
    else:
        texts = [typed(value, kind) for value in values]
    types = set(map(type, texts))
    if types <= _NUMBER_TYPES and str not in types:
        # typed() leaves only finite floats.
        numbers = _SPLIT.join(["" if value is None else repr(value) for value in texts])
        return _split_cells(f'<c r="{letter}{_ROW}"><v>', numbers, "</v></c>")
    if not types <= {str, type(None)}:
        return [_xml_inline_cell(letter, _ROW, value) if value is not None else "" for value in texts]
    joined = escape_text(_SPLIT.join([text or "" for text in texts]))
    return _split_cells(f'<c r="{letter}{_ROW}" t="inlineStr"><is><t xml:space="preserve">', joined, _INLINE_END)


def _xml_data_rows(
    batch: Sequence[Sequence[Any]], letters: Sequence[str], kinds: Sequence[str], short: Sequence[bool]
) -> list[str]:
    """Each row of ``batch`` as its ``<row>`` element, ``_ROW`` where its number goes. A row's XML depends on its
    values alone, not on the rows beside it in the batch."""
    made = (
        _xml_inline_column(letter, values, kind, fits)
        for letter, kind, fits, values in zip(letters, kinds, short, zip(*batch, strict=True), strict=True)
    )
    cells = [column for column in made if column is not None]
    return list(map("".join, zip(repeat(_ROW_OPEN, len(batch)), *cells, repeat("</row>"))))


def _numbered(rows: Iterable[str], first: int) -> str:
    """``rows`` (``_xml_data_rows``) numbered from ``first``, as one string."""
    return "".join(map(str.replace, rows, repeat(_ROW), map(str, count(first))))


def _xml_inline_rows(
    header: Sequence[str], rows: Iterable[Sequence[Any]], kinds: Sequence[str], plan: ColumnPlan
) -> Iterator[str]:
    """``<row>`` elements, one string per batch of rows, in one pass over ``rows``: text inline, so nothing is kept
    between batches (shared strings would grow with every distinct value)."""
    letters = [get_column_letter(index) for index in range(1, len(header) + 1)]
    yield '<row r="1">' + "".join(map(_xml_inline_cell, letters, repeat("1"), header)) + "</row>"
    short = [longest <= EXCEL_MAX_TEXT // 2 for longest in plan.longest]
    iterator = iter(rows)
    first = 2
    while batch := list(islice(iterator, _XML_INLINE_BATCH_ROWS)):
        check_widths(batch, len(header), first - 1)
        yield _numbered(_xml_data_rows(batch, letters, kinds, short), first)
        first += len(batch)


def _save_xml_inline(
    temp: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Sequence[str],
    plan: ColumnPlan,
    sheet: str,
    table: str,
    timestamp: datetime,
) -> None:
    """The xml engine's workbook with its text inline and no shared strings, the rows read once, a batch at a time:
    memory does not grow with the rows."""
    header = [excel_text(name) for name in columns]
    before, sheet_head, sheet_tail, after = xml_parts(
        header, plan.widths, len(rows), sheet, table, timestamp, shared_strings=False, dates=_has_dates(kinds)
    )
    # An upper bound on the sheet's size decides whether it needs Zip64: an escape takes at most 5 bytes a character.
    row_bound = 30 + sum(_XML_INLINE_MARKUP + 5 * max(length, XML_NUMBER_CHARS) for length in plan.longest)
    sheet_bound = len(sheet_head) + len(sheet_tail) + (len(rows) + 1) * row_bound
    with PinnedZipFile(temp, "w", ZIP_DEFLATED, compresslevel=XML_COMPRESS_LEVEL) as archive:
        for name, text in before:
            archive.writestr(name, text)
        sheet_rows = _xml_inline_rows(header, rows, kinds, plan)
        with archive.open(archive.member("xl/worksheets/sheet1.xml", sheet_bound), "w") as stream:
            _write_encoded(stream, chain((sheet_head,), sheet_rows, (sheet_tail,)))
        for name, text in after:
            archive.writestr(name, text)


def data_sheets_needed(rows: int) -> int:
    """How many sheets ``write_workbook_streamed`` spreads ``rows`` data rows over (``EXCEL_MAX_ROWS`` a sheet)."""
    per_sheet = EXCEL_MAX_ROWS - 1
    return max(1, -(-rows // per_sheet))


def _sheet_names(sheet: str, table: str, count: int) -> list[tuple[str, str]]:
    """The data sheets' names and their tables' names: ``sheet`` and ``table``, then ``sheet (2)`` and ``table2``...
    (a sheet name is cut so that its number fits Excel's 31 characters)."""
    names = [(sheet, table)]
    for number in range(2, count + 1):
        suffix = f" ({number})"
        names.append((sheet[: 31 - len(suffix)] + suffix, f"{table}{number}"))
    return names


# Where a run keeps its workbook's data rows' XML (``RowsXml``), beside its row spools.
ROWS_XML = ".workbook.rows"
# The data rows' XML a workbook keeps for the next run's (``RowsXml``): a header (the format and ``_rows_xml_key``),
# then per batch of rows its size, its CRC-32 and its ``marshal``led (keys, rows' XML), deflated by ISA-L.
_ROWS_XML_MAGIC = b"enreach rows xml 2\n"
_ROWS_XML_LEVEL = 1
_ROWS_XML_LENGTH = struct.Struct("<QI")
# The code a row's XML comes from: a change to it makes every row again.
_ROWS_XML_CODE = ("workbook.py", "xlsxparts.py", "cells.py", "constants.py", "columns.py", "transform.py")


@dataclass(frozen=True, slots=True)
class RowsXml:
    """What lets ``write_workbook_streamed`` keep its data rows' XML for the next run and reuse the previous run's:
    ``path`` receives this workbook's (written once the workbook is), ``previous`` is the previous run's file (or
    ``None``), and ``keys`` gives, batch by batch in step with the rows' batches, each row's key (``int``s,
    ascending over the whole workbook) and whether the row is the very row the previous run wrote under that key
    (``True``: its XML is taken from ``previous`` when that was written with the same columns, typing and code).

    ``picked``: ``keys`` gives instead each row's key and its pick, as ``exports.files`` keeps them for the merged
    CSV: ``-1`` for a row made now (its key is its own), else how many of the previous file's rows to pass over
    before the row's (its key is then only a lower bound: the rows below it are passed over first, the previous
    run's rows of another kind). Only the rows made now, and the reused rows whose XML ``previous`` does not hold,
    are read from their batch (``rows[index]``, and ``rows.key(index)`` the key of a reused one): a batch may make
    its rows on demand.

    A row's XML is kept without its number (``_ROW``), so a reused row may land anywhere: an incremental run makes
    only its new and changed rows' XML, and writes the same bytes as a full run."""

    path: Path
    previous: Path | None
    keys: Iterable[tuple[Sequence[int], Sequence[bool]]] | Iterable[tuple[Sequence[int], Sequence[int]]]
    picked: bool = False


def _rows_xml_key(columns: Sequence[str], kinds: Sequence[str]) -> bytes:
    here = Path(__file__).parent
    code = b"".join((here / name).read_bytes() for name in _ROWS_XML_CODE)
    return hashlib.sha256(repr((tuple(columns), tuple(kinds))).encode() + code).hexdigest().encode()


def _rows_xml_read(path: Path | None, key: bytes) -> Iterator[tuple[int, bytes]]:
    """The (key, XML) of each row in ``path``, in order (``_rows_xml_batches``)."""
    for keys, rows in _rows_xml_batches(path, key):
        yield from zip(keys, rows, strict=True)


def _rows_xml_batches(path: Path | None, key: bytes) -> Generator[tuple[list[int], list[bytes]]]:
    """The (keys, XML) of each batch of rows in ``path``, in order; none when it is missing or of another key (or
    code), and none after a part that cannot be read (a damaged file): those rows are made again."""
    if path is None:
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115  # closed below, when the generator ends or is closed
    except OSError:
        return
    with handle:
        if handle.readline() != _ROWS_XML_MAGIC or handle.readline().rstrip(b"\n") != key:
            return
        while header := handle.read(_ROWS_XML_LENGTH.size):
            try:
                size, crc = _ROWS_XML_LENGTH.unpack(header)
                packed = handle.read(size)
                if isal_zlib.crc32(packed) != crc:
                    return
                data = isal_zlib.decompress(packed, -isal_zlib.MAX_WBITS)
                keys, rows = marshal.loads(data)  # noqa: S302  # a run's own file
                if (
                    type(keys) is not list
                    or type(rows) is not list
                    or len(keys) != len(rows)
                    or not set(map(type, rows)) <= {bytes}
                ):
                    return
            except (OSError, ValueError, TypeError, EOFError, struct.error, isal_zlib.error):  # type: ignore[misc]  # its stub calls the class an instance
                return
            yield keys, rows


class _RowsXmlWriter(PendingFile):
    """This workbook's rows' XML, written to a temp file beside ``path`` and put in place by ``commit``."""

    def __init__(self, path: Path, key: bytes) -> None:
        super().__init__(path)
        self.write(_ROWS_XML_MAGIC + key + b"\n")

    def add(self, keys: list[int], rows: list[bytes]) -> None:
        compressor = isal_zlib.compressobj(_ROWS_XML_LEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
        data = compressor.compress(marshal.dumps((keys, rows))) + compressor.flush()
        self.write(_ROWS_XML_LENGTH.pack(len(data), isal_zlib.crc32(data)))
        self.write(data)


_OUT_OF_STEP = "The previous run's rows XML is out of step with its rows"


class _RowsXmlMaker:
    """The data rows' XML batch by batch: taken from the previous run's where ``RowsXml`` says a row is the same,
    made otherwise, and kept for the next run.

    The previous run's rows are read a batch at a time into a window (``_fill``), addressed by their index in its
    file: ``cursor`` is the first not passed over yet. A batch's picked rows are looked up by list operations over
    the batch, not one Python step per row: at 250,000 rows the per-row steps took about a second."""

    def __init__(self, rows_xml: RowsXml, columns: Sequence[str], kinds: Sequence[str], plan: ColumnPlan) -> None:
        key = _rows_xml_key(columns, kinds)
        self.letters = [get_column_letter(index) for index in range(1, len(columns) + 1)]
        self.width = len(columns)
        self.kinds = kinds
        self.short = [longest <= EXCEL_MAX_TEXT // 2 for longest in plan.longest]
        self.picked = rows_xml.picked
        self.key_batches: Iterator[tuple[Sequence[int], Sequence[Any]]] = iter(rows_xml.keys)
        self.pending: tuple[list[int], list[Any]] = ([], [])
        self.previous = _rows_xml_batches(rows_xml.previous, key)
        self.window_keys: list[int] = []
        self.window_xml: list[bytes] = []
        self.window_start = 0  # the previous file's index of the window's first row
        self.cursor = 0  # the previous file's index of the first row not passed over
        self.ended = False  # the previous file is read to its end (or to a part that cannot be read)
        self.last_key: float = -1
        self.rows = 0
        self.writer = _RowsXmlWriter(rows_xml.path, key)
        self.behind: _WritesBehind | None = None  # where the kept XML is written, in order with the sheets'

    def _keys(self, count: int) -> tuple[list[int], list[Any]]:
        """The next ``count`` rows' keys and marks (reused or picks), however ``RowsXml.keys`` cuts them."""
        keys, marks = self.pending
        while len(keys) < count:
            more = next(self.key_batches, None)
            if more is None:
                raise ValueError("Fewer row keys than rows")
            keys, marks = (keys + list(more[0]), marks + list(more[1])) if keys else (list(more[0]), list(more[1]))
        if len(keys) == count:
            self.pending = ([], [])
            return keys, marks
        self.pending = (keys[count:], marks[count:])
        return keys[:count], marks[:count]

    def _fill(self, index: int) -> None:
        """Read the previous file's batches until its row ``index`` is in the window (or the file ends), dropping
        the rows passed over."""
        while self.window_start + len(self.window_keys) <= index and not self.ended:
            frame = next(self.previous, None)
            if frame is None:
                self.ended = True
                return
            passed = self.cursor - self.window_start
            if passed > 0:
                del self.window_keys[:passed], self.window_xml[:passed]
                self.window_start = self.cursor
            self.window_keys += frame[0]
            self.window_xml += frame[1]

    def _key_at(self, index: int) -> float:
        """The key of the previous file's row ``index``; ``inf`` past its end."""
        self._fill(index)
        at = index - self.window_start
        return self.window_keys[at] if at < len(self.window_keys) else math.inf

    def _batch_picked(
        self, rows: Sequence[Sequence[Any]], keys: list[int], picks: list[int], xml: list[bytes]
    ) -> list[int]:
        """``RowsXml.picked``: the picked rows' keys (in ``keys``) and XML (in ``xml``) taken from the window; the
        rows to make."""
        taken = [index for index, pick in enumerate(picks) if pick >= 0]
        positions: list[int] = []
        cursor = self.cursor
        # The picked rows of a batch have one lower bound (the key of their kind) unless the batch spans kinds.
        for bound, group in groupby(taken, keys.__getitem__):
            while self._key_at(cursor) < bound:  # the previous run's rows of the kind before
                cursor += 1
            steps = [picks[index] + 1 for index in group]
            positions += islice(accumulate(steps, initial=cursor - 1), 1, None)
            cursor = positions[-1] + 1
        if positions:
            self._fill(positions[-1])
            self.cursor = cursor
        start, window_keys, window_xml = self.window_start, self.window_keys, self.window_xml
        # Past the previous file's end a picked row is made (its key read from its batch).
        found = bisect_left(positions, start + len(window_keys))
        for index, position in zip(taken, positions[:found], strict=False):
            keys[index] = window_keys[position - start]
            xml[index] = window_xml[position - start]
        beyond = taken[found:]
        for index in beyond:
            keys[index] = rows.key(index)  # type: ignore[attr-defined]  # a PickedBatch: the row is made
        missing = [index for index, pick in enumerate(picks) if pick < 0]
        return sorted(missing + beyond) if beyond else missing

    def _batch_reused(self, keys: list[int], reused: list[bool], xml: list[bytes]) -> list[int]:
        """``RowsXml.keys`` of reused flags: the rows' XML (in ``xml``) taken from the window by their key; the rows
        to make."""
        missing: list[int] = []
        for index, (key, again) in enumerate(zip(keys, reused, strict=True)):
            if again:
                while (previous := self._key_at(self.cursor)) < key:
                    self.cursor += 1
                if previous == key:
                    xml[index] = self.window_xml[self.cursor - self.window_start]
                    continue
            missing.append(index)
        return missing

    def batch(self, rows: Sequence[Sequence[Any]]) -> list[bytes]:
        """The XML of ``rows`` (the next rows of the workbook), ``_ROW`` where each row's number goes."""
        count = len(rows)
        keys, marks = self._keys(count)
        xml = [b""] * count
        missing = self._batch_picked(rows, keys, marks, xml) if self.picked else self._batch_reused(keys, marks, xml)
        if self.picked and count:
            # Keys ascend over the whole workbook: a previous file that does not match its rows' picks is refused.
            if keys[0] <= self.last_key or not all(map(lt, keys, islice(keys, 1, None))):
                raise ValueError(_OUT_OF_STEP)
            self.last_key = keys[-1]
        if missing:
            made_rows = [rows[index] for index in missing]
            if set(map(len, made_rows)) - {self.width}:
                for index in missing:
                    check_widths([rows[index]], self.width, self.rows + index + 1)
            made = _xml_data_rows(made_rows, self.letters, self.kinds, self.short)
            for index, row in zip(missing, made, strict=True):
                xml[index] = row.encode()
        self.rows += count
        if self.behind is not None:
            self.behind.submit(self.writer.add, keys, xml, size=sum(map(len, xml)))
        else:
            self.writer.add(keys, xml)
        return xml

    def _keys_left(self) -> bool:
        return bool(self.pending[0]) or any(len(keys) for keys, _ in self.key_batches)

    def close(self, *, keep: bool) -> None:
        self.previous.close()
        if keep and not self._keys_left():
            self.writer.commit()
        else:
            self.writer.discard()


# The rows ``_RowsXmlMaker`` looks up and makes at a time (but ``RowsXml.picked``'s, a batch of the spool each): an
# incremental run's few changed rows are made a group of columns per 1,000 rows rather than per 250; the writes stay
# a batch of 250 rows each (``_XML_INLINE_BATCH_ROWS``).
_XML_MADE_ROWS = 1000


def _xml_rows_kept(batches: Iterable[Sequence[Sequence[Any]]], maker: _RowsXmlMaker) -> Iterator[list[bytes]]:
    """The data rows' XML through ``maker`` (``_ROW`` where its number goes), a list per batch of ``batches``
    (``RowsXml.picked``: a batch's rows are read only where ``maker`` makes them), else per ``_XML_MADE_ROWS``
    rows."""
    if maker.picked:
        for batch in batches:
            if len(batch):
                yield maker.batch(batch)
        return
    iterator = chain.from_iterable(batches)
    while batch := list(islice(iterator, _XML_MADE_ROWS)):
        yield maker.batch(batch)


class _Pieces:
    """Items from an iterator of lists, taken a list of a given size at a time (fewer at the end)."""

    __slots__ = ("_at", "_buffer", "_lists")

    def __init__(self, lists: Iterable[list[bytes]]) -> None:
        self._lists = iter(lists)
        self._buffer: list[bytes] = []
        self._at = 0

    def take(self, size: int) -> list[bytes]:
        buffer, at = self._buffer, self._at
        while len(buffer) - at < size:
            more = next(self._lists, None)
            if more is None:
                break
            buffer, at = buffer[at:] + more if at < len(buffer) else more, 0
        piece = buffer[at : at + size]
        self._buffer, self._at = buffer, at + len(piece)
        return piece


def _xml_rows_numbered(
    header: Sequence[str], pieces: _Pieces, count: int, letters: Sequence[str], written: list[int]
) -> Iterator[bytes]:
    """A sheet's ``count`` rows from their XML (``_xml_rows_kept``): the header row, then the rows numbered from 2,
    as bytes; the same pieces as ``_xml_inline_rows`` (a batch of ``_XML_INLINE_BATCH_ROWS`` rows each), since how
    the sheet is cut into writes shapes its deflated bytes. ``written`` receives the rows written (fewer than
    ``count`` when ``pieces`` end first)."""
    yield ('<row r="1">' + "".join(map(_xml_inline_cell, letters, repeat("1"), header)) + "</row>").encode()
    placeholder = _ROW.encode()
    for first in range(2, count + 2, _XML_INLINE_BATCH_ROWS):
        piece = pieces.take(min(_XML_INLINE_BATCH_ROWS, count + 2 - first))
        if not piece:
            return
        written[0] += len(piece)
        numbers = map(b"%d".__mod__, range(first, first + len(piece)))
        yield b"".join(map(bytes.replace, piece, repeat(placeholder), numbers))


def write_workbook_streamed(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    batches: Iterable[Sequence[Sequence[Any]]],
    *,
    rows: int,
    sizes: ColumnSizes,
    sheet: str = DEFAULT_SHEET,
    table: str = DEFAULT_TABLE,
    numeric_columns: Collection[str] = NUMERIC_COLUMNS,
    text_columns: Collection[str] = TEXT_COLUMNS,
    timestamp: datetime = DEFAULT_TIMESTAMP,
    extra_sheets: Sequence[ExtraSheet] | Callable[[], Sequence[ExtraSheet]] = (),
    date_columns: Collection[str] = (),
    datetime_columns: Collection[str] = (),
    rows_xml: RowsXml | None = None,
) -> FileInfo:
    """Write ``rows`` rows, read once from ``batches`` (batches of rows, each in ``columns`` order), as an .xlsx at
    ``path``, atomically: the export's workbook, whose rows stream from disk and are never all in memory.

    Widths and the sheet's size come from ``sizes`` (measured as the rows passed before, ``exports.cells.
    ColumnMeter``); text is written inline (``t="inlineStr"``), not as shared strings, whose table would grow with
    every distinct value: so memory stays flat whatever the rows. Same cells, typing, widths, frozen panes and table
    styling as ``write_workbook``.

    Excel's edge: a sheet holds ``EXCEL_MAX_ROWS`` rows, header included. More rows continue on further sheets of the
    same shape, ``<sheet> (2)``, ``<sheet> (3)``..., each with the header, its own Excel table (``<table>2``...) and
    the same widths, so nothing is cut and every sheet filters and sorts like the first. ``extra_sheets`` follow
    them; given as a function, it is called once the data sheets are written (what they hold may still be in the
    making: the data-quality report's findings), and the workbook's other parts follow the sheets in the archive
    instead of preceding them. Fewer or more rows in ``batches`` than ``rows`` raise ``ValueError``.

    ``rows_xml`` keeps the data rows' XML for the next run and takes the rows the previous run wrote from its
    (``RowsXml``): the same bytes, only the new and changed rows made.
    """
    target = Path(path)
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(UTC).replace(tzinfo=None)
    timestamp = timestamp.replace(microsecond=0)
    check_names(columns, sheet, table)
    per_sheet = EXCEL_MAX_ROWS - 1  # read when called: a test lowers it
    if per_sheet < 1:
        raise ValueError("A sheet must hold at least one data row")
    counts = [min(per_sheet, rows - start) for start in range(0, rows, per_sheet)] or [0]
    data_sheets = _sheet_names(sheet, table, len(counts))
    kinds = column_kinds(columns, numeric_columns, text_columns, date_columns, datetime_columns)
    plan = _sized_plan(columns, sizes)
    header = [excel_text(name) for name in columns]

    def parts(extras: Sequence[ExtraSheet]) -> list[tuple[str, str]]:
        """The workbook's parts but its sheets, once the sheets' names are known."""
        for extra in extras:
            check_names(["x"], extra.name, table)
        all_names = [name for name, _ in data_sheets] + [extra.name for extra in extras]
        if len({name.casefold() for name in all_names}) != len(all_names):
            raise ValueError("Sheet names must be unique")
        names = [escape_attribute(name) for name in all_names]
        sheets_after = len(all_names) - 1
        return [
            ("[Content_Types].xml", content_types_part(sheets_after, shared_strings=False, tables=len(counts))),
            ("_rels/.rels", PACKAGE_RELS_PART),
            ("docProps/app.xml", app_part(names[0], names[1:])),
            ("docProps/core.xml", core_part(timestamp)),
            ("xl/workbook.xml", workbook_part(names[0], names[1:])),
            ("xl/_rels/workbook.xml.rels", workbook_rels_part(sheets_after, shared_strings=False)),
            ("xl/styles.xml", STYLES_PART_DATES if _has_dates(kinds) else STYLES_PART),
            ("xl/theme/theme1.xml", theme_xml),
        ]

    later = extra_sheets if callable(extra_sheets) else None
    extras: Sequence[ExtraSheet] = () if callable(extra_sheets) else extra_sheets
    before = [] if later is not None else parts(extras)
    row_bound = 30 + sum(_XML_INLINE_MARKUP + 5 * max(length, XML_NUMBER_CHARS) for length in plan.longest)
    written = 0
    maker = _RowsXmlMaker(rows_xml, columns, kinds, plan) if rows_xml is not None else None
    # The data rows, or (with ``rows_xml``) their XML.
    source: Iterator[Any] = chain.from_iterable(batches)
    pieces = _Pieces(_xml_rows_kept(batches, maker)) if maker is not None else None
    with atomic_path(target) as temp, contextlib.ExitStack() as cleanup:
        if maker is not None:
            cleanup.callback(maker.close, keep=False)  # the kept XML is committed below once the workbook is written
        behind = _WritesBehind()
        cleanup.callback(behind.close, drop=True)
        if maker is not None:
            maker.behind = behind
        with PinnedZipFile(temp, "w", ZIP_DEFLATED, compresslevel=XML_COMPRESS_LEVEL) as archive:
            for name, text in before:
                archive.writestr(name, text)
            for number, (count_here, (_, table_name)) in enumerate(zip(counts, data_sheets, strict=True), 1):
                head = sheet_head(len(columns), plan.widths, count_here, selected=number == 1)
                bound = len(head) + len(SHEET_TAIL) + (count_here + 1) * row_bound
                part = _counted(islice(source, count_here))
                numbered = [0]
                with (
                    archive.open(archive.member(f"xl/worksheets/sheet{number}.xml", bound), "w") as stream,
                    behind.settled(),
                ):
                    if pieces is None:
                        chunks: Iterator[bytes] = map(
                            str.encode, chain((head,), _xml_inline_rows(header, part, kinds, plan), (SHEET_TAIL,))
                        )
                    else:
                        # The same writes as the other branch (each batch one), so the same deflated bytes.
                        letters = [get_column_letter(index) for index in range(1, len(columns) + 1)]
                        rows_here = _xml_rows_numbered(header, pieces, count_here, letters, numbered)
                        chunks = chain((head.encode(),), rows_here, (SHEET_TAIL.encode(),))
                    for chunk in chunks:
                        behind.submit(stream.write, chunk, size=len(chunk))
                here = part.count if pieces is None else numbered[0]
                if here != count_here:
                    raise ValueError(f"{written + here:,} rows to write, not the {rows:,} announced")
                written += here
                archive.writestr(f"xl/worksheets/_rels/sheet{number}.xml.rels", sheet_rels_part(number))
                archive.writestr(f"xl/tables/table{number}.xml", table_part(header, count_here, table_name, number))
            if next(source, None) if pieces is None else pieces.take(1):
                raise ValueError(f"More rows to write than the {rows:,} announced")
            if later is not None:
                extras = later()
                after = parts(extras)
            else:
                after = []
            for number, extra in enumerate(extras, len(counts) + 1):
                size, width = extra.dimensions()
                bound = 1000 + size * (30 + width * (_XML_INLINE_MARKUP + 5 * XML_NUMBER_CHARS))
                with (
                    archive.open(archive.member(f"xl/worksheets/sheet{number}.xml", bound), "w") as stream,
                    behind.settled(),
                ):
                    # Deflated beside the Python that makes the next rows, as the data sheets are; the same writes.
                    for text in _xml_extra_sheet(extra, str, inline=True):
                        chunk = text.encode()
                        behind.submit(stream.write, chunk, size=len(chunk))
            for name, text in after:
                archive.writestr(name, text)
        behind.close()  # the kept rows' XML is written
        size, sha256 = hash_file(temp)
        if maker is not None:
            cleanup.pop_all()
            maker.close(keep=True)
    return FileInfo(path=target, size=size, sha256=sha256, rows=written)


# The bytes ``_WritesBehind`` holds at most beside the oldest write (about two pieces of a sheet, 250 rows each; a
# batch of kept rows' XML, larger, waits alone): eight writes of any size held the writing child's peak 14 MB higher
# at 500,000 rows.
_BEHIND_BYTES = 1 << 20


class _WritesBehind:
    """Writes to the sheets and the kept rows' XML, handed in order to one thread: deflating them (ISA-L lets go of
    the interpreter lock while it deflates) runs beside the Python that makes the next rows, on a second core when
    there is one. The thread's bytes are the same as written in place: one thread, the same calls in the same order.
    ``settled()`` surrounds the writes to one stream: they are all done when it ends (their error raised), or, when
    the block raised, the rest dropped before the stream closes. ``submit`` waits while the writes not done hold more
    than ``_BEHIND_BYTES`` (``size``: the bytes a write holds) but for the oldest: memory stays flat."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="workbook-writes")
        self._pending: deque[tuple[Future[Any], int]] = deque()
        self._held = 0

    def submit(self, call: Callable[..., Any], *args: Any, size: int) -> None:
        self._pending.append((self._pool.submit(call, *args), size))
        self._held += size
        while len(self._pending) > 1 and self._held - self._pending[0][1] > _BEHIND_BYTES:
            future, done = self._pending.popleft()
            self._held -= done
            future.result()

    def wait(self) -> None:
        while self._pending:
            future, done = self._pending.popleft()
            self._held -= done
            future.result()

    def _drop(self) -> None:
        for future, _ in self._pending:
            future.cancel()
        for future, _ in self._pending:
            with contextlib.suppress(BaseException):
                future.exception()
        self._pending.clear()
        self._held = 0

    @contextlib.contextmanager
    def settled(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._drop()
            raise
        try:
            self.wait()
        except BaseException:
            self._drop()
            raise

    def close(self, *, drop: bool = False) -> None:
        """Wait for the writes handed over (or, ``drop``, drop those not begun) and end the thread."""
        try:
            if drop:
                self._drop()
            else:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)


class _counted:  # an iterator wrapper, named as one
    """An iterator that counts what it hands out."""

    __slots__ = ("_source", "count")

    def __init__(self, source: Iterator[Any]) -> None:
        self._source = source
        self.count = 0

    def __iter__(self) -> _counted:
        return self

    def __next__(self) -> Any:
        item = next(self._source)
        self.count += 1
        return item


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
    extra_sheets: Sequence[ExtraSheet] = (),
    sizes: ColumnSizes | None = None,
    date_columns: Collection[str] = (),
    datetime_columns: Collection[str] = (),
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
    The workbook's SpreadsheetML is written here, text as shared strings, the sheet streamed into the zip a batch of
    rows at a time, so memory stays flat; ``bench.workbooks`` writes the same cells with openpyxl and XlsxWriter
    for comparison (``bench/writers_bench.py`` has the figures).

    ``extra_sheets`` come after the main sheet, which stays byte for byte what it is without them.

    ``date_columns`` and ``datetime_columns`` hold ISO dates and UTC timestamps as text: they become Excel dates
    (``yyyy-mm-dd``, ``yyyy-mm-dd hh:mm:ss``); text that is not one stays text.

    ``sizes`` (no extra sheets), the columns' longest line and value known ahead (an index over the
    rows has them cheaply), spares the pass over the rows: a ``rows`` sequence that makes its rows on demand is read
    once, a batch at a time, and its text is written inline instead of as shared strings, so memory does not grow
    with the rows (the CMDB's filtered downloads). Same widths, typing and styling; other bytes.
    """
    return write_workbook_with(
        save_xml,
        path,
        columns,
        rows,
        sheet=sheet,
        table=table,
        numeric_columns=numeric_columns,
        text_columns=text_columns,
        timestamp=timestamp,
        extra_sheets=extra_sheets,
        sizes=sizes,
        date_columns=date_columns,
        datetime_columns=datetime_columns,
    )


def write_workbook_with(
    save: Save,
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    sheet: str = DEFAULT_SHEET,
    table: str = DEFAULT_TABLE,
    numeric_columns: Collection[str] = NUMERIC_COLUMNS,
    text_columns: Collection[str] = TEXT_COLUMNS,
    timestamp: datetime = DEFAULT_TIMESTAMP,
    extra_sheets: Sequence[ExtraSheet] = (),
    sizes: ColumnSizes | None = None,
    date_columns: Collection[str] = (),
    datetime_columns: Collection[str] = (),
) -> FileInfo:
    """``write_workbook`` with ``save`` writing the parts (``save_xml``, the production engine, or a comparison
    engine of ``bench.workbooks``): the checks, the typing and the column plan are the same whichever engine saves."""
    engine = "xml" if save is save_xml else "other"
    target = Path(path)
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(UTC).replace(tzinfo=None)
    timestamp = timestamp.replace(microsecond=0)
    check_names(columns, sheet, table)
    for extra in extra_sheets:
        check_names(["x"], extra.name, table)
    if extra_sheets and (engine != "xml" or len({sheet, *(e.name for e in extra_sheets)}) != 1 + len(extra_sheets)):
        raise ValueError("Extra sheets need the xml engine and names of their own")
    if not isinstance(rows, Sequence):
        rows = list(rows)
    if len(rows) + 1 > EXCEL_MAX_ROWS:
        raise ValueError(f"{len(rows):,} rows do not fit in a sheet of {EXCEL_MAX_ROWS:,} rows (header included)")
    kinds = column_kinds(columns, numeric_columns, text_columns, date_columns, datetime_columns)
    if sizes is not None:
        if engine != "xml" or extra_sheets:
            raise ValueError("Column sizes known ahead need the xml engine and no extra sheets")
        plan = _sized_plan(columns, sizes)
    else:
        check_widths(rows, len(columns))
        plan = plan_columns(columns, rows, kinds)
    with atomic_path(target) as temp:
        if sizes is not None:
            _save_xml_inline(temp, columns, rows, kinds, plan, sheet, table, timestamp)
        elif extra_sheets:
            save_xml(temp, columns, rows, kinds, plan, sheet, table, timestamp, extra_sheets)
        else:
            save(temp, columns, rows, kinds, plan, sheet, table, timestamp)
        size, sha256 = hash_file(temp)
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
