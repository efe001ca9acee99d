"""Excel's sheet edge with the real limit (issue 25): more rows than a sheet holds, through the export's writer.

Usage: ``.venv/bin/python bench/excel_edge_bench.py [--extra 1000] [--libreoffice]``

Writes ``EXCEL_MAX_ROWS - 1 + extra`` rows (1,048,575 data rows fill the first sheet with its header) of a few
columns through ``exports.workbook.write_workbook_streamed``, the export's writer, then reads the workbook back:
openpyxl (read-only) counts each sheet's rows and checks the first and last IDs of each sheet and its table; with
``--libreoffice``, ``soffice --headless --convert-to csv`` converts every sheet and the rows are counted again (a few
minutes and a few GB for a sheet of a million rows). Prints the time, the peak memory and the verdicts; exits non-zero
when a check fails. The test suite checks the same with the limit lowered (``exports/tests/test_writers.py``).
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exports.cells import EXCEL_MAX_ROWS, ColumnMeter  # noqa: E402
from exports.workbook import ColumnSizes, write_workbook_streamed  # noqa: E402

COLUMNS = ("Name", "ID", "Site", "Serial number")
BATCH = 5000


def _rows(total: int) -> Iterator[list[tuple[str, int, str, str]]]:
    for start in range(0, total, BATCH):
        yield [
            (f"device-{number:07d}", number, f"site-{number % 97}", f"SN{number * 7919 % 10_000_019:08d}")
            for number in range(start + 1, min(total, start + BATCH) + 1)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", type=int, default=1000, help="rows beyond what the first sheet holds")
    parser.add_argument("--libreoffice", action="store_true", help="also convert every sheet with LibreOffice")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    per_sheet = EXCEL_MAX_ROWS - 1
    total = per_sheet + args.extra
    work = Path(tempfile.mkdtemp(prefix="excel-edge-"))
    checks: list[tuple[str, bool]] = []
    try:
        meter = ColumnMeter(len(COLUMNS))
        for batch in _rows(total):
            meter.add(batch)
        path = work / "edge.xlsx"
        started = time.perf_counter()
        info = write_workbook_streamed(
            path, COLUMNS, _rows(total), rows=total, sizes=ColumnSizes(lines=meter.lines, values=meter.values)
        )
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{total:,} rows ({per_sheet:,} a sheet): written in {seconds:.1f} s, {info.size / 1e6:.1f} MB, "
              f"peak {peak:.0f} MB (this process)")  # fmt: skip

        from openpyxl import load_workbook

        started = time.perf_counter()
        book = load_workbook(path, read_only=True)
        expected = [
            ("NetBox Inventory", per_sheet, 1, per_sheet),
            ("NetBox Inventory (2)", args.extra, per_sheet + 1, total),
        ]
        checks.append((f"sheets {book.sheetnames}", book.sheetnames == [name for name, *_ in expected]))
        for (name, rows, first_id, last_id), sheet in zip(expected, book.worksheets, strict=False):
            values = sheet.iter_rows(values_only=True)
            header = next(values)
            count, first, last = 0, None, None
            for row in values:
                count += 1
                first = row[1] if first is None else first
                last = row[1]
            checks.append((f"openpyxl: {name}: header + {count:,} rows, IDs {first}..{last}",
                           header == COLUMNS and (count, first, last) == (rows, first_id, last_id)))  # fmt: skip
        book.close()
        print(f"openpyxl read it in {time.perf_counter() - started:.1f} s")
        with zipfile.ZipFile(path) as archive:  # each sheet's table (openpyxl reads tables only by loading it all)
            for number, ref in ((1, f"A1:D{per_sheet + 1}"), (2, f"A1:D{args.extra + 1}")):
                table = archive.read(f"xl/tables/table{number}.xml").decode()
                checks.append((f"table{number}.xml covers {ref}", f'ref="{ref}"' in table))

        if args.libreoffice:
            if shutil.which("soffice") is None:
                raise SystemExit("LibreOffice is missing: `make test-deps` installs libreoffice-calc-nogui")
            out = work / "lo"
            options = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
            started = time.perf_counter()
            subprocess.run(
                ["soffice", f"-env:UserInstallation=file://{out / 'profile'}", "--headless", "--convert-to", options,
                 "--outdir", str(out), str(path)],
                check=True, capture_output=True, timeout=3600,
            )  # fmt: skip
            print(f"LibreOffice converted it in {time.perf_counter() - started:.1f} s")
            for name, rows, _first, _last in expected:
                with (out / f"edge-{name}.csv").open(newline="", encoding="utf-8") as handle:
                    count = sum(1 for _ in csv.reader(handle)) - 1
                checks.append((f"LibreOffice: {name}: {count:,} rows", count == rows))
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for name, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    sys.exit(0 if all(passed for _, passed in checks) else 1)


if __name__ == "__main__":
    main()
