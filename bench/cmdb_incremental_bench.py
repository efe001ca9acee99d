"""The CMDB table's build in an incremental run: from scratch, from the previous run's table, and by the row map.

Usage::

    .venv/bin/python bench/cmdb_incremental_bench.py [--rows 250000] [--changed 0.01] [--repeat 3] [--template CSV]

A merged CSV of ``--rows`` rows (40 % devices, 60 % VMs; ``devtools.cmdbdata`` scales the merged CSV of a real export
of the fake NetBox, ``--template`` or one made here) is the previous run's; its table file is built once. The next
run's CSV is that one with ``--changed`` of its rows changed as an incremental export changes them (a new *Last
updated*; one in three a new description, one in five another status, one in ten a renamed object, one in ten another
memory size), a tenth of that deleted and as many added, written with its index and row map as the export writes
them. Then, alternately ``--repeat`` times, the next run's table is built from scratch, from the previous run's table
without the row map (``csv_write``: every row parsed) and with it (``csv_write_mapped``: the copied rows taken from the
previous table), each in a child forked from this process as the after-run step forks it
(``cmdb.tablefiles.table_build_child``); the CSVs are made in a child of their own, so this process
holds no more than what it imported, as a run's process holds no freed heap after trimming it. Printed: each build's
seconds, the child's peak private memory (``Private_Clean + Private_Dirty`` of ``smaps_rollup``, sampled every
20 ms) and peak RSS, the ratios of the medians, the load average, and whether the builds wrote the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _private_mb(pid: int) -> float:
    fields: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except (OSError, ProcessLookupError):
        return 0.0
    for line in lines:
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0])
    return (fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)) / 1024


def _changed(source: Path, target: Path, share: float, seed: int = 25) -> int:
    """``source`` with ``share`` of its rows changed, a tenth of that deleted and as many added, written as the export
    writes it (with its index and row map); rows changed."""
    from exports.csvfiles import write_csv
    from exports.rowmap import row_map_write

    rng = random.Random(seed)
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    column = {label: index for index, label in enumerate(header)}
    count = max(1, int(len(rows) * share))
    origins = list(range(len(rows)))  # each row's row in ``source``, or -1: the row map an incremental run writes
    for number, index in enumerate(rng.sample(range(len(rows)), count)):
        row = rows[index]
        origins[index] = -1
        row[column["Last updated"]] = f"2026-12-07T{number // 3600 % 24:02d}:{number // 60 % 60:02d}:{number % 60:02d}Z"
        if number % 3 == 0:
            row[column["Description"]] = f"changed in run 2 ({number})"
        if number % 5 == 0:
            row[column["Status"]] = rng.choice(["Planned", "Offline", "Staged"])
        if number % 10 == 0:
            row[column["Name"]] = f"{row[column['Name']]}-renamed"
        if number % 10 == 5:
            row[column["Memory (MB)"]] = str(rng.randrange(1, 1 << 20))
    removed = set(rng.sample(range(len(rows)), max(1, count // 10)))
    kept = [row for index, row in enumerate(rows) if index not in removed]
    origins = [origin for index, origin in enumerate(origins) if index not in removed]
    for number in range(max(1, count // 10)):
        row = list(rng.choice(kept))
        row[column["ID"]] = str(10_000_000 + number)
        row[column["Name"]] = f"added-{number:06d}"
        kept.append(row)
        origins.append(-1)
    info = write_csv(target, header, kept, index=True)
    row_map_write(target, origins, sha256=info.sha256, previous=source.parent.name, previous_rows=len(rows))
    return count


def _build(csv_path: Path, previous: Path | None) -> tuple[float, float, float, float]:
    """(seconds, CPU seconds, peak private MB, peak RSS MB) of building ``csv_path``'s table file in a forked
    child."""
    from cmdb import tablefiles

    target = tablefiles.table_path(csv_path)
    target.unlink(missing_ok=True)
    sha256 = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            tablefiles.table_build_child(csv_path, sha256, None, previous)
        except BaseException:
            os._exit(1)
        os._exit(0)
    peak = 0.0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _private_mb(pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit("the build failed")
    return seconds, usage.ru_utime + usage.ru_stime, peak, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of the rows changed (default 0.01)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--template", type=Path, help="a merged CSV of a real export to scale")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cmdb-incremental-") as work_dir:
        work = Path(work_dir)
        from devtools.cmdbdata import merged_csv_scale
        from enreach.forked import forked

        before, after = work / "runs" / "000001", work / "runs" / "000002"
        before.mkdir(parents=True)
        after.mkdir(parents=True)
        previous_csv, next_csv = before / "netbox_merged_export.csv", after / "netbox_merged_export.csv"
        devices = args.rows * 2 // 5

        def prepare() -> int:
            if args.template is None:
                from bench.cmdb_storage_bench import _template

                template = _template(work)
            else:
                template = args.template
            merged_csv_scale(template, previous_csv, devices=devices, vms=args.rows - devices)
            return _changed(previous_csv, next_csv, args.changed)

        # In a child of its own: reading every row into Python lists leaves this process a heap of freed pages that
        # the build children would reuse (and copy) as no run's process does (it trims its heap before the after-run
        # steps), which blurs their peak by 20-40 MB at 500,000 rows.
        with forked(prepare) as result:
            changed = result()
        import pyarrow  # noqa: F401  # imported before the children fork, as the run's process has it

        from cmdb import tablefiles
        from exports.rowmap import row_map_path

        seconds, _, peak, _ = _build(previous_csv, None)
        previous = tablefiles.table_path(previous_csv)
        print(f"{args.rows:,} rows, {changed:,} changed; the previous run's table: {seconds:.2f} s, {peak:.0f} MB")
        load = os.getloadavg()
        modes = (("scratch", None), ("previous", previous), ("mapped", previous))
        results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _ in modes}
        files: dict[str, bytes] = {}
        row_map, hidden = row_map_path(next_csv), row_map_path(next_csv).with_suffix(".hidden")
        for _ in range(args.repeat):
            for name, source in modes:
                if name != "mapped":  # without the row map: every row parsed (``csv_write``)
                    row_map.rename(hidden)
                try:
                    results[name].append(_build(next_csv, source))
                finally:
                    if hidden.exists():
                        hidden.rename(row_map)
                files[name] = hashlib.sha256(tablefiles.table_path(next_csv).read_bytes()).digest()
        load_after = os.getloadavg()
        labels = (("scratch", "from scratch"), ("previous", "from the previous table"), ("mapped", "by the row map"))
        for name, label in labels:
            runs = results[name]
            times = ", ".join(f"{seconds:.2f}" for seconds, _, _, _ in runs)
            print(
                f"{label:>24}: {statistics.median(run[0] for run in runs):.2f} s (runs {times}), "
                f"{statistics.median(run[1] for run in runs):.2f} CPU s; child peak "
                f"{max(run[2] for run in runs):.0f} MB private, {max(run[3] for run in runs):.0f} MB RSS"
            )
        for name, base in (("previous", "scratch"), ("mapped", "previous")):
            ratios = [
                statistics.median(run[field] for run in results[name])
                / statistics.median(run[field] for run in results[base])
                for field in (0, 1)
            ]
            print(f"{name} / {base} (medians): {ratios[0]:.2f} wall, {ratios[1]:.2f} CPU")
        print(f"same bytes: {files['scratch'] == files['previous'] == files['mapped']}")
        print(f"load average: {load[0]:.1f} before, {load_after[0]:.1f} after")


if __name__ == "__main__":
    main()
