"""The SpreadsheetML parts of a workbook other than its rows, written as text: content types, relationships,
document properties, workbook, styles, theme, the sheet's head and tail and its table; and XML escaping as Excel reads
it. Used by ``exports.workbook``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from openpyxl.utils import get_column_letter
from openpyxl.writer.theme import theme_xml

from exports.cells import TABLE_STYLE, _excel_width, _table_ref

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
