"""Benchmark the data-quality report alone over a run's row spools (issue 25): its time and its memory.

Usage: ``.venv/bin/python bench/quality_bench.py FOLDER [--repeat 3] [--times 1]`` where FOLDER holds a run's
``.device.rows`` and ``.vm.rows`` (a run folder of ``bench/export_bench.py --keep``, default column set). Each repeat
runs in a fresh process (``--child``), as the export's process does: the import of what the report needs, the
report's wall and CPU seconds, and its peak memory (``ru_maxrss``) against the process before the report. ``--times
N`` reads the spools N times over (N times the objects: a 50,000-object folder stands for 250,000 with ``--times 5``).
The findings CSV's sha256 and size are printed, to compare before and after.
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


def child(folder: Path, times: int) -> dict[str, Any]:
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

    rows = {
        "device": KindRows("device", DEVICE_COLUMNS, batches("device"), folder / "devices.csv"),
        "vm": KindRows("vm", VM_COLUMNS, batches("vm"), folder / "vms.csv"),
    }
    before_rss = _rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    from quality.report import report_write
    from quality.rules import quality_config_build

    imported = time.perf_counter() - started
    config = quality_config_build(today=TODAY, allowed={"DTAP state": ["Development", "Test", "Production"]})
    with tempfile.TemporaryDirectory() as out:
        written = report_write(config, rows, Path(out))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        info = written.files.get("data_quality.csv")
        summary = written.result
        return {
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.folder, args.times)))
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
