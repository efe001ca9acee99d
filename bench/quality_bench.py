"""Benchmark the data-quality report alone over a run's row spools (issue 25): its time and its memory.

Usage: ``.venv/bin/python bench/quality_bench.py FOLDER [--repeat 3] [--times 1]`` where FOLDER holds a run's
``.device.rows`` and ``.vm.rows`` (a run folder of ``bench/export_bench.py --keep``, default column set). Each repeat
runs in a fresh process (``--child``), as the export's process does: the import of what the report needs, the
report's wall and CPU seconds, and its peak memory (``ru_maxrss``) against the process before the report. ``--times
N`` reads the spools N times over (N times the objects: a 50,000-object folder stands for 250,000 with ``--times 5``).
The findings CSV's sha256 and size are printed, to compare before and after.

``--incremental 1`` instead times a full report against an incremental run's (``quality.kept``) with that percent
of the rows changed: FOLDER's rows ``--times`` over as distinct objects (ids, names and serials of each copy its
own), a full report over them (the previous run, its results kept), then the same rows with the percent changed
(cells the rules read; a few deleted and added) and the export's picks beside them, and ``--repeat`` times, in
turn, a full report and an incremental one over those: both times, their ratio, peak memory, and whether the
findings files are the same bytes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 12, 7)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(folder: Path, times: int, out: Path | None = None, previous: Path | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from exports.columns import DEVICE_COLUMNS, VM_COLUMNS
    from exports.companions import KindRows
    from exports.spool import RowSpool

    spools = {"device": RowSpool(folder / ".device.rows"), "vm": RowSpool(folder / ".vm.rows")}

    def batches(kind: str) -> Any:
        def each() -> Any:
            for _ in range(times):
                yield from spools[kind].batches()

        return each

    def picks(kind: str) -> Any:
        return RowSpool(folder / f".{kind}.merged").batches if previous is not None else None

    rows = {
        "device": KindRows("device", DEVICE_COLUMNS, batches("device"), folder / "devices.csv", previous,
                           picks("device"), folder / ".device.rows" if times == 1 else None),
        "vm": KindRows("vm", VM_COLUMNS, batches("vm"), folder / "vms.csv", previous, picks("vm"),
                       folder / ".vm.rows" if times == 1 else None),
    }  # fmt: skip
    before_rss = _rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    from quality.report import report_write
    from quality.rules import quality_config_build

    imported = time.perf_counter() - started
    config = quality_config_build(today=TODAY, allowed={"DTAP state": ["Development", "Test", "Production"]})
    with tempfile.TemporaryDirectory() as temp:
        written = report_write(config, rows, out or Path(temp))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        info = written.files.get("data_quality.csv")
        summary = written.result
        return {
            "checked": getattr(summary, "checked", -1),
            "seconds": seconds,
            "import_seconds": imported,
            "cpu_seconds": cpu_seconds,
            "rss_before_mb": before_rss,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "sha256": info.sha256 if info else None,
            "size": info.size if info else None,
            "findings": summary.findings,
            "counts": {r.rule: r.count for r in summary.results},
            "errors": {r.rule: r.error for r in summary.results if r.error},
        }


def _distinct(source: Path, target: Path, times: int) -> None:
    """FOLDER's rows ``times`` over, each copy distinct objects: ids after the last, names and serials suffixed."""
    sys.path.insert(0, str(ROOT))
    from exports.columns import DEVICE_COLUMNS, VM_COLUMNS
    from exports.spool import RowSpool

    for kind, columns in (("device", DEVICE_COLUMNS), ("vm", VM_COLUMNS)):
        at_id, at_name, at_serial = columns.index("ID"), columns.index("Name"), columns.index("Serial number")
        spool = RowSpool(source / f".{kind}.rows")
        top = max((row[at_id] for batch in spool.batches() for row in batch), default=0) + 1
        out = RowSpool(target / f".{kind}.rows")
        for copy in range(times):
            for batch in spool.batches():
                rows = []
                for row in batch:
                    values = list(row)
                    values[at_id] += copy * top
                    if copy and values[at_name]:
                        values[at_name] = f"{values[at_name]}-{copy}"
                    if copy and values[at_serial]:
                        values[at_serial] = f"{values[at_serial]}-{copy}"
                    rows.append(tuple(values))
                out.add(rows)
        out.close()


def _changed(previous: Path, target: Path, percent: float, seed: int = 1) -> int:
    """``previous``'s rows with ``percent`` of them changed (the cells the rules read), one in a thousand deleted
    and as many added after the last id, as an incremental run's spools: batches of 1,000 rows and beside them the
    export's picks (``.KIND.merged``). Returns how many rows are new."""
    import random

    sys.path.insert(0, str(ROOT))
    from exports.columns import DEVICE_COLUMNS, VM_COLUMNS
    from exports.spool import RowSpool

    rng = random.Random(seed)
    fresh = 0
    for kind, columns in (("device", DEVICE_COLUMNS), ("vm", VM_COLUMNS)):
        at = {name: columns.index(name) for name in ("ID", "Serial number", "Contacts", "IP Address", "Name")}
        # Indexed by id, as the export's spools are: the report reads only the new rows.
        rows_out, picks_out = RowSpool(target / f".{kind}.rows", key=at["ID"]), RowSpool(target / f".{kind}.merged")
        rows: list[Any] = []
        picks: list[int] = []
        passed, top, last = 0, 0, None
        for batch in RowSpool(previous / f".{kind}.rows").batches():
            for row in batch:
                top = max(top, row[at["ID"]])
                roll = rng.random() * 100
                if roll < 0.1:  # deleted
                    passed += 1
                    continue
                if roll < percent:
                    values = list(row)
                    values[at["Contacts"]] = "" if values[at["Contacts"]] else "Ops (Primary)"
                    values[at["IP Address"]] = rng.choice(("", "10.9.9.9/24"))
                    if rng.random() < 0.3:
                        values[at["Serial number"]] = rng.choice(("", f"CHANGED-{rng.randrange(50)}"))
                    rows.append(tuple(values))
                    picks.append(-1)
                    passed += 1
                    fresh += 1
                else:
                    rows.append(row)
                    picks.append(passed)
                    passed = 0
                last = row
                if len(rows) >= 1000:
                    rows_out.add(rows)
                    picks_out.add(picks)
                    rows, picks = [], []
        for _ in range(max(1, len(picks) // 1000)) if last is not None else ():
            top += 1
            values = list(last)
            values[at["ID"]] = top
            values[at["Name"]] = f"added-{top}"
            rows.append(tuple(values))
            picks.append(-1)
            fresh += 1
        rows_out.add(rows)
        picks_out.add(picks)
        rows_out.close()
        picks_out.close()
    return fresh


def _run_child(folder: Path, times: int, out: Path | None = None, previous: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, str(folder), "--times", str(times), "--child"]
    if out is not None:
        command += ["--out", str(out)]
    if previous is not None:
        command += ["--previous", str(previous)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout)


def incremental(args: argparse.Namespace) -> None:
    import os

    with tempfile.TemporaryDirectory(prefix="quality-bench-") as work:
        base, previous, current = Path(work) / "base", Path(work) / "previous", Path(work) / "current"
        for folder in (base, previous, current):
            folder.mkdir()
        _distinct(args.folder, base, args.times)
        first = _run_child(base, 1, out=previous)  # the previous run: its results kept
        for name in (".device.rows", ".vm.rows"):
            os.link(base / name, previous / name)
        fresh = _changed(previous, current, args.incremental)
        print(
            f"{args.incremental:g} % changed: {fresh:,} new rows; previous run's full report "
            f"{first['seconds']:.2f} s, {first['findings']:,} findings"
        )
        fulls, incrementals = [], []
        for number in range(args.repeat):
            full_out, incremental_out = Path(work) / f"full{number}", Path(work) / f"incremental{number}"
            full_out.mkdir()
            incremental_out.mkdir()
            full = _run_child(current, 1, out=full_out)
            part = _run_child(current, 1, out=incremental_out, previous=previous)
            same = full["sha256"] == part["sha256"] and full["counts"] == part["counts"]
            fulls.append(full["seconds"] - full["import_seconds"])
            incrementals.append(part["seconds"] - part["import_seconds"])
            print(
                f"{number + 1}: full {fulls[-1]:.2f} s (CPU {full['cpu_seconds']:.2f}, peak {full['peak_mb']:.0f} MB, "
                f"{full['checked']:,} rows checked), incremental {incrementals[-1]:.2f} s "
                f"(CPU {part['cpu_seconds']:.2f}, peak {part['peak_mb']:.0f} MB, {part['checked']:,} rows checked), "
                f"ratio {incrementals[-1] / fulls[-1]:.3f}; same file: {same} ({full['findings']:,} findings, "
                f"sha256 {full['sha256'][:16]}); load {os.getloadavg()[0]:.1f}"
            )
            if not same:
                raise SystemExit("the incremental report's file differs from the full one's")
        best_full, best_part = min(fulls), min(incrementals)
        print(f"best: full {best_full:.2f} s, incremental {best_part:.2f} s, ratio {best_part / best_full:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--incremental", type=float, default=0.0, help="percent changed: full vs incremental")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--previous", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.folder, args.times, args.out, args.previous)))
        return
    if args.incremental:
        incremental(args)
        return
    for number in range(args.repeat):
        out = subprocess.run(
            [sys.executable, __file__, str(args.folder), "--times", str(args.times), "--child"],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        result = json.loads(out.stdout)
        print(
            f"{number + 1}: {result['seconds']:.2f} s (import {result['import_seconds']:.2f}, "
            f"CPU {result['cpu_seconds']:.2f}), peak {result['peak_mb']:.0f} MB "
            f"(+{result['peak_mb'] - result['rss_before_mb']:.0f} over {result['rss_before_mb']:.0f}), "
            f"{result['findings']:,} findings, {result['size']:,} bytes, sha256 {result['sha256'][:16]}"
        )
        if number == 0:
            print("   counts", result["counts"], "errors", result["errors"])


if __name__ == "__main__":
    main()
