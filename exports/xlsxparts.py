"""The SpreadsheetML parts of a workbook other than its rows, written as text, one function or constant per part:
content types, relationships, document properties, workbook, styles, theme, the main sheet's head and tail and its
table, composed by ``xml_parts``; and XML escaping as Excel reads it. Used by ``exports.workbook``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from openpyxl.utils import get_column_letter
from openpyxl.writer.theme import theme_xml

from exports.cells import TABLE_STYLE, excel_width, table_ref

# The xml engine: the SpreadsheetML parts written as text, the sheet streamed into the zip batch by batch.

XML_BATCH_ROWS = 1000
# Deflating the 45 MB sheet of 50,000 rows x 66 columns with zlib: level 1 0.32 s (7.3 MB), 2 0.35 s (6.7 MB),
# 3 0.49 s (5.9 MB), 6 1.16 s (5.3 MB), against about 0.8 s for everything else. Deflating in a second thread
# while the next batch is built gained nothing measurable: the thread waits for the GIL between its C calls.
# ISA-L (``exports.cells.PinnedZipFile``) deflates the inline sheet of 50,000 rows (92 MB) at level 1 in 0.06 s CPU
# (8.75 MB) where zlib took 0.31 s (9.34 MB); zlib-ng 0.17 s (11.6 MB). Levels 0 to 3 are ISA-L's.
XML_COMPRESS_LEVEL = 1
# The most markup around one cell's value: <c r="XFD1048576" t="s"><v>...</v></c>, and a value that is a
# shared-string index or a number no longer than this.
XML_CELL_MARKUP = 40
XML_NUMBER_CHARS = 24

XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006"
NS_REL = f"{_NS_DOCUMENT}/relationships"
_NS_PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "application/vnd.openxmlformats-officedocument"
# Text that Excel would read as an escaped character (_x0041_ is "A") gets its underscore escaped in turn.
_EXCEL_ESCAPE_LIKE = re.compile("_x[0-9A-Fa-f]{4}_")
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def escape_text(text: str) -> str:
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


def escape_attribute(text: str) -> str:
    """``text`` as an XML attribute value (a sheet or table name)."""
    return text.translate(_ATTRIBUTE_ESCAPES)


_escape_attribute = escape_attribute


def _table_column_name(name: str) -> str:
    """A table column name as Excel writes it: control characters (a line break in a header) as ``_x000a_``."""
    name = _EXCEL_ESCAPE_LIKE.sub(r"_x005F\g<0>", name)
    name = re.sub(r"[\t\n\r]", lambda match: f"_x{ord(match.group()):04x}_", name)
    return _escape_attribute(name)


def content_types_part(extra: int, *, shared_strings: bool = True, tables: int = 1) -> str:
    """``[Content_Types].xml``: the main sheet, ``extra`` further sheets, the ``tables`` tables (``table1.xml`` on),
    and the shared strings."""
    return "".join(
        (
            f'{XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">',
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>',
            '<Default Extension="xml" ContentType="application/xml"/>',
            f'<Override PartName="/docProps/app.xml" ContentType="{CT}.extended-properties+xml"/>',
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>',
            f'<Override PartName="/xl/workbook.xml" ContentType="{CT}.spreadsheetml.sheet.main+xml"/>',
            f'<Override PartName="/xl/styles.xml" ContentType="{CT}.spreadsheetml.styles+xml"/>',
            f'<Override PartName="/xl/theme/theme1.xml" ContentType="{CT}.theme+xml"/>',
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{CT}.spreadsheetml.worksheet+xml"/>',
            *(
                f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{CT}.spreadsheetml.worksheet+xml"/>'
                for n in range(2, extra + 2)
            ),
            *(
                f'<Override PartName="/xl/tables/table{n}.xml" ContentType="{CT}.spreadsheetml.table+xml"/>'
                for n in range(1, tables + 1)
            ),
            SHARED_STRINGS_TYPE if shared_strings else "",
            "</Types>",
        )
    )


SHARED_STRINGS_TYPE = f'<Override PartName="/xl/sharedStrings.xml" ContentType="{CT}.spreadsheetml.sharedStrings+xml"/>'
SHARED_STRINGS_REL = f'<Relationship Id="rId4" Type="{NS_REL}/sharedStrings" Target="sharedStrings.xml"/>'
PACKAGE_RELS_PART = "".join(
    (
        f'{XML_HEAD}<Relationships xmlns="{_NS_PACKAGE_REL}">',
        f'<Relationship Id="rId1" Type="{NS_REL}/officeDocument" Target="xl/workbook.xml"/>',
        f'<Relationship Id="rId2" Type="{_NS_PACKAGE_REL}/metadata/core-properties" Target="docProps/core.xml"/>',
        f'<Relationship Id="rId3" Type="{NS_REL}/extended-properties" Target="docProps/app.xml"/>',
        "</Relationships>",
    )
)


def app_part(sheet: str, extra: Sequence[str]) -> str:
    """``docProps/app.xml``: the application and the sheets' names (escaped already)."""
    return "".join(
        (
            f'{XML_HEAD}<Properties xmlns="{_NS_DOCUMENT}/extended-properties" ',
            f'xmlns:vt="{_NS_DOCUMENT}/docPropsVTypes">',
            "<Application>Microsoft Excel</Application><DocSecurity>0</DocSecurity><ScaleCrop>false</ScaleCrop>",
            '<HeadingPairs><vt:vector size="2" baseType="variant"><vt:variant><vt:lpstr>Worksheets</vt:lpstr>',
            f"</vt:variant><vt:variant><vt:i4>{1 + len(extra)}</vt:i4></vt:variant></vt:vector></HeadingPairs>",
            f'<TitlesOfParts><vt:vector size="{1 + len(extra)}" baseType="lpstr"><vt:lpstr>{sheet}</vt:lpstr>',
            *(f"<vt:lpstr>{name}</vt:lpstr>" for name in extra),
            "</vt:vector>",
            "</TitlesOfParts><LinksUpToDate>false</LinksUpToDate><SharedDoc>false</SharedDoc>",
            "<HyperlinksChanged>false</HyperlinksChanged><AppVersion>12.0000</AppVersion></Properties>",
        )
    )


def core_part(timestamp: datetime) -> str:
    """``docProps/core.xml``: the document's created and modified date."""
    stamp = timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return "".join(
        (
            f"{XML_HEAD}<cp:coreProperties ",
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" ',
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" ',
            'xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>',
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>',
            "</cp:coreProperties>",
        )
    )


def workbook_part(sheet: str, extra: Sequence[str]) -> str:
    """``xl/workbook.xml``: the sheets, in order (names escaped already)."""
    return "".join(
        (
            f'{XML_HEAD}<workbook xmlns="{NS_MAIN}" xmlns:r="{NS_REL}"><workbookPr/>',
            '<bookViews><workbookView xWindow="240" yWindow="15" windowWidth="16095" windowHeight="9660"/>',
            f'</bookViews><sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/>',
            *(f'<sheet name="{name}" sheetId="{n}" r:id="rId{n + 3}"/>' for n, name in enumerate(extra, 2)),
            "</sheets>",
            '<calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>',
        )
    )


def workbook_rels_part(extra: int, *, shared_strings: bool = True) -> str:
    """``xl/_rels/workbook.xml.rels``: the sheets, the theme, the styles and the shared strings."""
    return "".join(
        (
            f'{XML_HEAD}<Relationships xmlns="{_NS_PACKAGE_REL}">',
            f'<Relationship Id="rId1" Type="{NS_REL}/worksheet" Target="worksheets/sheet1.xml"/>',
            f'<Relationship Id="rId2" Type="{NS_REL}/theme" Target="theme/theme1.xml"/>',
            f'<Relationship Id="rId3" Type="{NS_REL}/styles" Target="styles.xml"/>',
            SHARED_STRINGS_REL if shared_strings else "",
            *(
                f'<Relationship Id="rId{n + 3}" Type="{NS_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
                for n in range(2, extra + 2)
            ),
            "</Relationships>",
        )
    )


STYLES_PART = "".join(
    (
        f'{XML_HEAD}<styleSheet xmlns="{NS_MAIN}">',
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

# With date columns: two more cell formats, dates (style 1) and date-times (style 2).
DATE_STYLE, DATETIME_STYLE = "1", "2"
STYLES_PART_DATES = STYLES_PART.replace(
    '<fonts count="1">',
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts><fonts count="1">',
).replace(
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>',
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>',
)


def sheet_head(width: int, widths: Sequence[int], rows: int, *, selected: bool = True) -> str:
    """The main sheet up to its rows: its size, the frozen header row and first column, the columns' widths.
    ``selected``: the sheet whose tab is selected when the workbook opens (one only)."""
    cols = "".join(
        f'<col min="{index}" max="{index}" width="{excel_width(characters)!r}" customWidth="1"/>'
        for index, characters in enumerate(widths, 1)
    )
    return "".join(
        (
            f'{XML_HEAD}<worksheet xmlns="{NS_MAIN}" xmlns:r="{NS_REL}">',
            f'<dimension ref="A1:{get_column_letter(width)}{rows + 1}"/>',
            (
                '<sheetViews><sheetView tabSelected="1" workbookViewId="0">'
                if selected
                else '<sheetViews><sheetView workbookViewId="0">'
            ),
            '<pane xSplit="1" ySplit="1" topLeftCell="B2" activePane="bottomRight" state="frozen"/>',
            '<selection pane="topRight" activeCell="B1" sqref="B1"/>',
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>',
            '<selection pane="bottomRight" activeCell="B2" sqref="B2"/>',
            '</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>',
            f"<cols>{cols}</cols><sheetData>",
        )
    )


SHEET_TAIL = "".join(
    (
        '</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>',
        '<tableParts count="1"><tablePart r:id="rId1"/></tableParts></worksheet>',
    )
)


def sheet_rels_part(number: int = 1) -> str:
    """``xl/worksheets/_rels/sheet<n>.xml.rels``: the sheet's table, ``table<number>.xml``."""
    return "".join(
        (
            f'{XML_HEAD}<Relationships xmlns="{_NS_PACKAGE_REL}">',
            f'<Relationship Id="rId1" Type="{NS_REL}/table" Target="../tables/table{number}.xml"/>',
            "</Relationships>",
        )
    )


SHEET_RELS_PART = sheet_rels_part(1)


def table_part(columns: Sequence[str], rows: int, table: str, number: int = 1) -> str:
    """``xl/tables/table<number>.xml``: the Excel table over a sheet, with its filter, columns and style."""
    ref = table_ref(len(columns), rows)
    table_columns = "".join(
        f'<tableColumn id="{index}" name="{_table_column_name(name)}"/>' for index, name in enumerate(columns, 1)
    )
    return "".join(
        (
            f'{XML_HEAD}<table xmlns="{NS_MAIN}" id="{number}" name="{_escape_attribute(table)}" ',
            f'displayName="{_escape_attribute(table)}" ref="{ref}" totalsRowShown="0">',
            f'<autoFilter ref="{ref}"/><tableColumns count="{len(columns)}">{table_columns}</tableColumns>',
            f'<tableStyleInfo name="{TABLE_STYLE}" showFirstColumn="0" showLastColumn="0" showRowStripes="1" ',
            'showColumnStripes="0"/></table>',
        )
    )


def xml_parts(
    columns: Sequence[str],
    widths: Sequence[int],
    rows: int,
    sheet: str,
    table: str,
    timestamp: datetime,
    extra: Sequence[str] = (),
    *,
    shared_strings: bool = True,
    dates: bool = False,
) -> tuple[list[tuple[str, str]], str, str, list[tuple[str, str]]]:
    """The package around the cells: the parts before the sheet, the sheet's head and tail, the parts after it.

    ``extra`` names further sheets (``xl/worksheets/sheet2.xml`` on), written by the caller; with none, the parts
    are exactly those of a one-sheet workbook. ``shared_strings=False``: a workbook whose text is all inline.
    ``dates``: the styles carry the date formats date cells refer to."""
    sheet_name, extra_names = _escape_attribute(sheet), [_escape_attribute(name) for name in extra]
    before = [
        ("[Content_Types].xml", content_types_part(len(extra), shared_strings=shared_strings)),
        ("_rels/.rels", PACKAGE_RELS_PART),
        ("docProps/app.xml", app_part(sheet_name, extra_names)),
        ("docProps/core.xml", core_part(timestamp)),
        ("xl/workbook.xml", workbook_part(sheet_name, extra_names)),
        ("xl/_rels/workbook.xml.rels", workbook_rels_part(len(extra), shared_strings=shared_strings)),
        ("xl/styles.xml", STYLES_PART_DATES if dates else STYLES_PART),
        ("xl/theme/theme1.xml", theme_xml),
    ]
    after = [
        ("xl/worksheets/_rels/sheet1.xml.rels", SHEET_RELS_PART),
        ("xl/tables/table1.xml", table_part(columns, rows, table)),
    ]
    return before, sheet_head(len(columns), widths, rows), SHEET_TAIL, after
