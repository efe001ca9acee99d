"""Benchmark the export's workbook writer alone (``exports.workbook.write_workbook_streamed``) at a given size.

Usage: ``.venv/bin/python bench/workbook_bench.py [--rows 250000] [--changed 0.01] [--base /path/to/other/checkout]``

The rows are the writers benchmark's (real NetBox sample objects cycled, ``bench.writers_bench.build_rows``), built
once and cached in the temp folder. Each measurement runs in its own subprocess and prints wall and CPU seconds:

- ``plain``: the workbook as an export wrote it before it kept its rows' XML (no ``RowsXml``);
- ``full``: a full run's workbook, keeping its rows' XML;
- ``incremental``: the next run's, ``--changed`` of the rows changed and the first row deleted (every later row
  shifts up a number), reusing the full run's rows' XML; its bytes are checked against a full write of the same rows.

``--base`` runs ``plain`` in another checkout (say, main) too, alternately with this one's, for before/after ratios.
Each line gives the process's peak memory (maximum RSS, the rows it holds included).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _rows(count: int, folder: Path) -> list[list[Any]]:
    cache = folder / f"workbook-bench-rows-{count}.pickle"
    if cache.exists():
        return pickle.loads(cache.read_bytes())  # this benchmark's own file
    from bench.writers_bench import build_rows
    from exports import transform
    from exports.columns import MERGED_COLUMNS, WORKBOOK_COLUMNS

    devices = count * 2 // 5
    rows = [
        list(row) for row in transform.reorder(build_rows(devices, count - devices), MERGED_COLUMNS, WORKBOOK_COLUMNS)
    ]
    cache.write_bytes(pickle.dumps(rows))
    return rows


def measure(mode: str, count: int, changed: float, folder: Path) -> dict[str, Any]:
    """One write (in this process), its seconds and its file."""
    from exports import cells, workbook
    from exports.columns import WORKBOOK_COLUMNS

    rows = _rows(count, folder)
    keys = list(range(len(rows)))
    reused = [False] * len(rows)
    previous = None
    if mode == "incremental":
        step = max(1, round(1 / changed)) if changed else len(rows) + 1
        name_at = WORKBOOK_COLUMNS.index("Name")
        for index in range(step // 2, len(rows), step):
            rows[index][name_at] += " (changed)"
        reused = [index % step != step // 2 for index in range(len(rows))]
        rows, keys, reused = rows[1:], keys[1:], reused[1:]
        previous = folder / "full.rows"
    meter = cells.ColumnMeter(len(WORKBOOK_COLUMNS))
    for start in range(0, len(rows), 2000):
        meter.add(rows[start : start + 2000])
    sizes = workbook.ColumnSizes(lines=meter.lines, values=meter.values)
    batches = (rows[start : start + 2000] for start in range(0, len(rows), 2000))
    extra: dict[str, Any] = {}
    if mode != "plain":
        key_batches = [
            (keys[start : start + 2000], reused[start : start + 2000]) for start in range(0, len(rows), 2000)
        ]
        extra["rows_xml"] = workbook.RowsXml(folder / f"{mode}.rows", previous, key_batches)
    wall, cpu = time.perf_counter(), time.process_time()
    info = workbook.write_workbook_streamed(
        folder / f"{mode}.xlsx", WORKBOOK_COLUMNS, batches, rows=len(rows), sizes=sizes, **extra
    )
    result = {"mode": mode, "rows": len(rows), "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    result |= {"size_mb": info.size / 1e6, "sha256": info.sha256, "load": os.getloadavg()[0]}
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the rows held included
    if mode == "incremental":
        check = workbook.write_workbook_streamed(
            folder / "check.xlsx", WORKBOOK_COLUMNS, [rows], rows=len(rows), sizes=sizes
        )
        result["same_as_full_write"] = check.sha256 == info.sha256
    return result


def _run(root: Path, mode: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "bench" / "workbook_bench.py"), "--child", mode, "--folder", str(folder)]
    command += ["--rows", str(args.rows), "--changed", str(args.changed)]
    env = dict(os.environ, PYTHONPATH=str(root))
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, check=False)
    if completed.returncode:
        raise SystemExit(f"{mode} in {root} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--base", type=Path, help="another checkout whose workbook writer runs 'plain' alternately")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
        print(json.dumps(measure(args.child, args.rows, args.changed, args.folder)))
        return
    with tempfile.TemporaryDirectory(prefix="workbook-bench-") as temp:
        folder = Path(temp)
        _run(ROOT, "plain", args, folder)  # builds and caches the rows
        for number in range(args.repeat):
            runs = []
            if args.base is not None:
                runs.append(("base plain", _run(args.base, "plain", args, folder)))
            runs += [(mode, _run(ROOT, mode, args, folder)) for mode in ("plain", "full", "incremental")]
            for label, result in runs:
                same = (
                    f"  same bytes as a full write: {result['same_as_full_write']}"
                    if "same_as_full_write" in result
                    else ""
                )
                print(
                    f"[{number + 1}] {label:<12} {result['rows']:>9,} rows  {result['wall']:6.2f} s wall  "
                    f"{result['cpu']:6.2f} s CPU  {result['size_mb']:6.1f} MB  peak {result['peak_mb']:6.0f} MB  "
                    f"load {result['load']:.1f}{same}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
