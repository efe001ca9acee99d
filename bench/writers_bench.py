"""Benchmark the CMDB writers on ~50,000 realistic merged rows.

Usage: ``.venv/bin/python bench/writers_bench.py [--devices 20000] [--vms 30000] [--repeat 1]``

The rows come from the real NetBox sample objects (``../shared/netbox-sample``) cycled with fresh ids and names and
run through ``exports.transform``, so widths, long comments, leading-zero serials and ``=`` strings are all there.
Each variant runs in its own subprocess so memory peaks do not mix; the peak is the process's resident high-water
mark (``VmHWM``) reset after the rows are built (``/proc/self/clear_refs``), i.e. rows + writer. The parent then
opens every workbook's zip and checks the contract (an Excel table, panes frozen at B2, no formula cells).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import workbooks as oracle  # noqa: E402
from devtools.netbox import sample_dir  # noqa: E402
from exports import cells, csvfiles, transform, workbook  # noqa: E402
from exports.columns import MERGED_COLUMNS, NUMERIC_COLUMNS, TEXT_COLUMNS, WORKBOOK_COLUMNS  # noqa: E402
from exports.render import Row  # noqa: E402
from integrations.netbox import records  # noqa: E402

SAMPLE = sample_dir()  # the samples in devtools/, or $NETBOX_SAMPLE_DIR

VARIANTS: dict[str, str] = {
    "xml": "SpreadsheetML written directly, streamed into the zip (exports.workbook.write_workbook, production)",
    "openpyxl-write-only": "openpyxl write-only + lxml (bench.workbooks engine=openpyxl)",
    "openpyxl-write-only-no-lxml": "openpyxl write-only, OPENPYXL_LXML=False (informational)",
    "xlsxwriter-table": "XlsxWriter normal mode + table (bench.workbooks engine=xlsxwriter)",
    "xlsxwriter-constant-memory": "XlsxWriter constant_memory, no table (informational)",
    "pandas-to-excel": "pandas DataFrame.to_excel (naive baseline)",
    "csv": "write_csv, merged columns",
    "csv-module": "csv.writer straight to a file, merged columns (the floor for write_csv, informational)",
}


def _results(name: str) -> list[dict[str, Any]]:
    return json.loads((SAMPLE / name).read_text(encoding="utf-8"))["results"]  # type: ignore[no-any-return]


def build_rows(devices: int, vms: int) -> list[Row]:
    """Merged rows from the sample records, cycled with unique ids and names."""
    device_samples = [records.device_from_api(item) for item in _results("devices_page.json")]
    vm_samples = [records.virtual_machine_from_api(item) for item in _results("virtual_machines_page.json")]
    lookups = transform.Lookups.from_records(
        sites=[records.site_from_api(item) for item in _results("sites_page.json")],
        tenants=[records.tenant_from_api(item) for item in _results("tenants_page.json")],
        contact_assignments=[
            records.contact_assignment_from_api(item) for item in _results("contact_assignments_page.json")
        ],
    )
    device_records = [
        replace(device_samples[i % len(device_samples)], id=i + 1, name=f"{device_samples[i % 25].name}-{i:05d}")
        for i in range(devices)
    ]
    vm_records = [
        replace(vm_samples[i % len(vm_samples)], id=i + 1, name=f"{vm_samples[i % 25].name}-{i:05d}")
        for i in range(vms)
    ]
    return transform.merged_rows(transform.device_rows(device_records, lookups), transform.vm_rows(vm_records, lookups))


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _rss_mb(field: str) -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pandas(path: Path, columns: tuple[str, ...], rows: list[Row]) -> None:
    import pandas as pd

    pd.DataFrame(rows, columns=list(columns)).to_excel(path, sheet_name=cells.DEFAULT_SHEET, index=False)


def _csv_module(path: Path, columns: tuple[str, ...], rows: list[Row]) -> None:
    # What write_csv adds on top of this: row length checks, sha256, fsync, the atomic rename.
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def _constant_memory(path: Path, columns: tuple[str, ...], rows: list[Row]) -> None:
    # The same preparation as write_workbook, then XlsxWriter's streaming mode (which cannot add the table).
    kinds = cells.column_kinds(columns, NUMERIC_COLUMNS, TEXT_COLUMNS)
    plan = cells.plan_columns(columns, rows, kinds)
    oracle._save_xlsxwriter(
        path,
        columns,
        rows,
        kinds,
        plan,
        cells.DEFAULT_SHEET,
        cells.DEFAULT_TABLE,
        cells.DEFAULT_TIMESTAMP,
        constant_memory=True,
    )


def run_variant(variant: str, devices: int, vms: int, out: Path) -> dict[str, Any]:
    """Build the rows, reset the memory peak, write once and report (runs inside the child process)."""
    started = time.perf_counter()
    merged = build_rows(devices, vms)
    workbook_rows = transform.reorder(merged, MERGED_COLUMNS, WORKBOOK_COLUMNS)
    build_seconds = time.perf_counter() - started
    if variant == "pandas-to-excel":
        import pandas  # noqa: F401  (imported before the reset so its own footprint is not billed to to_excel)
    rows_mb = _rss_mb("VmRSS")
    exact_peak = _reset_peak()

    columns = WORKBOOK_COLUMNS
    path = out / f"{variant}.xlsx"
    action: Callable[[], object]
    if variant == "xml":
        action = lambda: workbook.write_workbook(path, columns, workbook_rows)  # noqa: E731
    elif variant in ("openpyxl-write-only", "openpyxl-write-only-no-lxml"):
        action = lambda: oracle.write_workbook(path, columns, workbook_rows, engine="openpyxl")  # noqa: E731
    elif variant == "xlsxwriter-table":
        action = lambda: oracle.write_workbook(path, columns, workbook_rows, engine="xlsxwriter")  # noqa: E731
    elif variant == "xlsxwriter-constant-memory":
        action = lambda: _constant_memory(path, columns, workbook_rows)  # noqa: E731
    elif variant == "pandas-to-excel":
        action = lambda: _pandas(path, columns, workbook_rows)  # noqa: E731
    elif variant == "csv":
        path = out / f"{variant}.csv"
        action = lambda: csvfiles.write_csv(path, MERGED_COLUMNS, merged)  # noqa: E731
    elif variant == "csv-module":
        path = out / f"{variant}.csv"
        action = lambda: _csv_module(path, MERGED_COLUMNS, merged)  # noqa: E731
    else:
        raise SystemExit(f"unknown variant {variant}")

    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started

    from openpyxl import xml as openpyxl_xml

    return {
        "variant": variant,
        "rows": len(merged),
        "columns": len(columns),
        "build_seconds": build_seconds,
        "seconds": seconds,
        "rows_mb": rows_mb,
        "peak_mb": _rss_mb("VmHWM"),
        "exact_peak": exact_peak,
        "size_mb": path.stat().st_size / 1e6,
        "path": str(path),
        "lxml": openpyxl_xml.LXML,
    }


def check_contract(path: Path) -> str:
    """What the workbook at ``path`` lacks of the contract, by looking inside its zip ("ok" if nothing)."""
    if path.suffix != ".xlsx":
        return "n/a"
    missing = []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        tables = [name for name in names if name.startswith("xl/tables/")]
        if not tables:
            missing.append("table")
        elif cells.TABLE_STYLE not in archive.read(tables[0]).decode():
            missing.append("table style")
        sheet = next(name for name in names if name.startswith("xl/worksheets/sheet"))
        with archive.open(sheet) as handle:
            head = handle.read(1 << 16).decode(errors="replace")
            if 'topLeftCell="B2"' not in head:
                missing.append("freeze B2")
            formulas = "<f>" in head
            while not formulas and (chunk := handle.read(1 << 22)):
                formulas = b"<f>" in chunk
        if formulas:
            missing.append("text (formula cells)")
    return "ok" if not missing else "missing: " + ", ".join(missing)


def main() -> None:
    """Run every variant in its own subprocess and print seconds, memory and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--vms", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the fastest is reported")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        default=100.0,
        help="most a writer may add on top of the rows; the whole export must stay under 600 MB (issue 3)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_variant(args.child, args.devices, args.vms, Path(args.out))))
        return

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="writers-bench-") as out:
        for variant in args.variants:
            env = dict(os.environ)
            if variant.endswith("no-lxml"):
                env["OPENPYXL_LXML"] = "False"
            runs = []
            for _ in range(args.repeat):
                command = [sys.executable, __file__, "--child", variant, "--out", out]
                command += ["--devices", str(args.devices), "--vms", str(args.vms)]
                completed = subprocess.run(command, capture_output=True, text=True, env=env)
                if completed.returncode:
                    raise SystemExit(f"{variant} failed:\n{completed.stderr}")
                runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            best = min(runs, key=lambda run: run["seconds"])
            best["contract"] = check_contract(Path(best["path"]))
            results[variant] = best
            print(f"  {variant}: {best['seconds']:.2f} s", file=sys.stderr, flush=True)

    first = next(iter(results.values()))
    print(
        f"\n{first['rows']:,} merged rows x {first['columns']} columns "
        f"(transform {first['build_seconds']:.2f} s, rows in memory ~{first['rows_mb']:.0f} MB RSS)\n"
    )
    pandas_seconds = results.get("pandas-to-excel", {}).get("seconds")
    header = f"{'variant':<30} {'seconds':>8} {'peak MB':>8} {'+MB':>7} {'file MB':>8} {'vs pandas':>9}  contract"
    print(header)
    print("-" * len(header))
    for variant, result in results.items():
        ratio = f"{result['seconds'] / pandas_seconds:.2f}x" if pandas_seconds else "-"
        print(
            f"{variant:<30} {result['seconds']:>8.2f} {result['peak_mb']:>8.0f} "
            f"{result['peak_mb'] - result['rows_mb']:>7.0f} {result['size_mb']:>8.1f} {ratio:>9}  {result['contract']}"
        )
    print("\n+MB: peak resident memory while writing, minus the resident size with the rows already built.")
    if not first["exact_peak"]:
        print("(could not reset the peak; peak MB includes building the rows)")
    budget = args.memory_budget_mb
    for result in results.values():
        extra = result["peak_mb"] - result["rows_mb"]
        if result["contract"] == "ok" and extra > budget:
            result["contract"] = f"missing: bounded memory (+{extra:.0f} MB > {budget:.0f} MB)"
            print(f"{result['variant']}: {result['contract']}")
    meeting = {name: r for name, r in results.items() if r["contract"] == "ok"}
    if meeting:
        fastest = min(meeting, key=lambda name: meeting[name]["seconds"])
        print(f"Fastest variant meeting the workbook contract: {fastest} ({VARIANTS[fastest]})")
        for name, result in meeting.items():
            if name != fastest:
                print(f"  {name}: {result['seconds'] / meeting[fastest]['seconds']:.2f}x its time")


if __name__ == "__main__":
    main()
