"""Benchmark the CMDB table (issue 25): one memory-mapped file per run, read by two web workers, at several sizes.

Usage::

    .venv/bin/python bench/cmdb_bench.py --sizes 50000,250000,500000 [--repeat 40] [--before] [--keep]

For each size (40 % devices, 60 % VMs), in one run, side by side with the growth factor against the first size:

1. The merged CSV: a real export of the loopback fake NetBox (``devtools.netbox``, 2,000 devices + 3,000 VMs) is
   the template, and ``devtools.cmdbdata.merged_csv_scale`` writes the size's rows from it straight into a run
   folder (names, ids, addresses, serials, asset tags and update times made unique per object; sites, tenants,
   racks, tags... kept). A successful ``ExportRun`` with that merged CSV becomes the latest export.
2. The build of the run's table file (``cmdb.tablefiles.table_build``, as the after-run step runs it), in a fresh
   process: wall time and peak memory (``ru_maxrss``).
3. Two web workers: fresh Django processes (``DEBUG=false``, the same SQLite database) each signed in with the test
   client (middleware, DRF, JSON). Their private memory (``Private_Clean + Private_Dirty`` of
   ``/proc/<pid>/smaps_rollup``) is read after one request that does not touch the table, and again once both have
   run everything below: what each worker adds for the table. The first worker times its first request (first
   page of the merged rows: imports pyarrow, maps the file), then its first filtered + sorted page and its first
   global search; then both run the warm scenarios ``--repeat`` times each (first page; site contains ``fra``,
   status equals ``active``, sorted by tenant then name descending; a global search, eight terms in turn): p50 and
   p95 of the first worker against the 150 ms target, and the p95 of the CPU time each request took in it
   (``time.process_time``), which the machine's other load does not stretch.

``--before`` measures the old in-memory table (``bench.cmdb_inmemory``: built from the CSV in every process) the
same way, in the same run: no build, the first request builds it.

``--downloads`` adds, after the memory is read, the first worker's filtered download of all rows (every column,
sorted by site then name) as CSV and as workbook: time, size, and the peak of the Python allocations traced while
the response is produced and read (``tracemalloc``), for all rows and for the rows with an id up to 5,000: a CSV
streams in constant memory, and the workbook writer takes its column widths from the table and writes a batch of
rows at a time, so both peaks stay about the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0
FIRST_TARGET_MS = 1000.0
MEMORY_TARGET_MB = 50.0
SEARCH_TERMS = ("fra1-srv", "stark", "10.2.", "db-prd", "zürich", "e", "acme retail", "proxmox-cl01")
FIRST_PAGE = "/api/cmdb/merged/rows/"
FILTERED = "/api/cmdb/merged/rows/?site=fra&status__eq=active&ordering=tenant,-name"
SEARCH = "/api/cmdb/merged/rows/?q={}"


def _environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ENREACH_DATA_DIR")}
    env.update(
        DJANGO_SETTINGS_MODULE="enreach.settings",
        ENREACH_VAR_DIR=str(work),
        DEBUG="false",
        SECRET_KEY=env.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(64),
        LOG_LEVEL="WARNING",
        STATIC_ROOT=str(work / "static"),
        EXPORT_SCHEDULE="",
        PYTHONPATH=str(ROOT),
    )
    return env


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _private_mb(pid: int) -> float:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0])
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


# --- the parent --------------------------------------------------------------------------------------------------


def _template(work: Path) -> Path:
    """The merged CSV of a real export of the fake NetBox (2,000 devices + 3,000 VMs)."""
    from django.conf import settings

    from devtools.netbox import FakeNetbox
    from exports.models import ExportRun
    from exports.selectors import artifact_path
    from exports.services import export_run_execute, export_run_request

    with FakeNetbox(devices=2000, vms=3000) as server:
        settings.NETBOX_URL = server.url
        settings.NETBOX_TOKEN = server.token
        run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND, force=True)
        run = export_run_execute(run=run)
    if run.status != ExportRun.Status.SUCCEEDED:
        raise SystemExit(f"the template export failed: {run.error}")
    template = work / "template.csv"
    shutil.copyfile(artifact_path(run.artifacts.get(name="netbox_merged_export.csv")), template)
    ExportRun.objects.filter(pk=run.pk).delete()
    return template


def _run_of_size(template: Path, size: int) -> tuple[Any, Path]:
    """A successful run whose merged CSV holds ``size`` rows (the newest run, so the API serves it)."""
    from django.conf import settings
    from django.utils import timezone

    from devtools.cmdbdata import merged_csv_scale
    from exports.models import ExportArtifact, ExportRun

    run = ExportRun.objects.create(
        status=ExportRun.Status.SUCCEEDED, trigger=ExportRun.Trigger.COMMAND, active=None, finished=timezone.now()
    )
    folder = Path(settings.DATA_DIR) / "runs" / f"{run.pk:06d}"
    folder.mkdir(parents=True)
    path = folder / "netbox_merged_export.csv"
    devices = size * 2 // 5
    merged_csv_scale(template, path, devices=devices, vms=size - devices)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    ExportArtifact.objects.create(
        run=run,
        kind=ExportArtifact.Kind.MERGED,
        name=path.name,
        path=str(path.relative_to(settings.DATA_DIR)),
        size=path.stat().st_size,
        sha256=sha256,
        rows=size,
    )
    run.devices, run.vms, run.finished = devices, size - devices, timezone.now()
    run.save(update_fields=["devices", "vms", "finished"])
    return run, path


def _build(env: dict[str, str], path: Path) -> tuple[float, float]:
    """(seconds, peak MB) of building the table file in a fresh process."""
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    code = (
        "import sys, time; from pathlib import Path; from cmdb.tablefiles import table_build; "
        f"t = time.perf_counter(); table_build(Path({str(path)!r}), {sha256!r}); "
        "print(time.perf_counter() - t)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the build failed ({process.returncode})")
    return float(output.strip()), usage.ru_maxrss / 1024


class Worker:
    """A web worker: a fresh Django process answering commands on stdin, one JSON line back per command."""

    def __init__(self, env: dict[str, str], username: str, password: str, *, before: bool) -> None:
        args = [sys.executable, __file__, "--worker", username, password] + (["--before"] if before else [])
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.process.pid
        self.ask({"cmd": "warm-up"})

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.pid} died")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise SystemExit(f"worker {self.pid}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.ask({"cmd": "quit"})
        self.process.wait(timeout=30)


def _measure(env: dict[str, str], repeat: int, *, before: bool, downloads: bool = False) -> dict[str, float]:
    from accounts.services import user_create

    password = secrets.token_urlsafe(16)
    username = f"bench-{secrets.token_hex(4)}"
    user_create(username=username, password=password, role="viewer")
    first, second = Worker(env, username, password, before=before), Worker(env, username, password, before=before)
    try:
        baseline = {worker.pid: _private_mb(worker.pid) for worker in (first, second)}
        firsts = first.ask({"cmd": "firsts"})
        second.ask({"cmd": "firsts"})
        warm = first.ask({"cmd": "warm", "repeat": repeat})
        second.ask({"cmd": "warm", "repeat": repeat})
        added = [_private_mb(worker.pid) - baseline[worker.pid] for worker in (first, second)]
        files = first.ask({"cmd": "downloads"}) if downloads else {}
    finally:
        first.close()
        second.close()
    return {
        "first query (ms)": firsts["first_page"],
        "first filtered + sorted page (ms)": firsts["filtered"],
        "first search (ms)": firsts["search"],
        "worker 1 private memory added (MB)": added[0],
        "worker 2 private memory added (MB)": added[1],
        **{f"{name} p50 (ms)": warm[name][0] for name in ("first page", "filtered + sorted", "search")},
        **{f"{name} p95 (ms)": warm[name][1] for name in ("first page", "filtered + sorted", "search")},
        **{f"{name} p95 CPU (ms)": warm[name][2] for name in ("first page", "filtered + sorted", "search")},
        **files,
        "rows": firsts["count"],
    }


def _table(sizes: list[int], results: dict[int, dict[str, float]], title: str) -> None:
    names = [name for name in results[sizes[0]] if name != "rows"]
    width = max(len(name) for name in names) + 2
    print(f"\n{title}")
    print(f"{'':<{width}}" + "".join(f"{size:>20,}" for size in sizes))
    for name in names:
        base = results[sizes[0]][name]
        cells = []
        for size in sizes:
            value = results[size][name]
            growth = f" (x{value / base:.1f})" if size != sizes[0] and base > 0 else ""
            cells.append(f"{value:,.1f}{growth}")
        print(f"{name:<{width}}" + "".join(f"{cell:>20}" for cell in cells))


def _verdict(sizes: list[int], results: dict[int, dict[str, float]]) -> bool:
    largest = results[sizes[-1]]
    memory = max(largest["worker 1 private memory added (MB)"], largest["worker 2 private memory added (MB)"])
    checks = [
        ("first query", largest["first query (ms)"], FIRST_TARGET_MS, "ms"),
        ("first filtered + sorted page", largest["first filtered + sorted page (ms)"], FIRST_TARGET_MS, "ms"),
        ("first search", largest["first search (ms)"], FIRST_TARGET_MS, "ms"),
        ("private memory each worker adds", memory, MEMORY_TARGET_MB, "MB"),
        ("first page p95", largest["first page p95 (ms)"], TARGET_MS, "ms"),
        ("filtered + sorted p95", largest["filtered + sorted p95 (ms)"], TARGET_MS, "ms"),
        ("search p95", largest["search p95 (ms)"], TARGET_MS, "ms"),
    ]  # fmt: skip
    print(f"\ntargets at {sizes[-1]:,} rows:")
    ok = True
    for name, value, target, unit in checks:
        met = value < target
        ok = ok and met
        print(f"  {name:<34} {value:>9.1f} {unit}  {'OK' if met else 'OVER'} (< {target:.0f} {unit})")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,250000,500000", help="rows per run, comma-separated")
    parser.add_argument("--repeat", type=int, default=40, help="warm requests per scenario")
    parser.add_argument("--before", action="store_true", help="also measure the old in-memory table")
    parser.add_argument("--downloads", action="store_true", help="also download all rows as CSV and workbook")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--worker", nargs=2, metavar=("USERNAME", "PASSWORD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker, before=args.before)
        return
    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="cmdb-bench-"))
    (work / "static").mkdir()
    env = _environment(work)
    env["BENCH_SECRET_KEY"] = env["SECRET_KEY"]
    ok = True
    try:
        _django(env)
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
        started = time.perf_counter()
        template = _template(work)
        print(f"template: a real export of the fake NetBox in {time.perf_counter() - started:.1f} s")
        after: dict[int, dict[str, float]] = {}
        before: dict[int, dict[str, float]] = {}
        for size in sizes:
            started = time.perf_counter()
            _, path = _run_of_size(template, size)
            print(f"{size:,} rows: merged CSV of {path.stat().st_size / 1e6:.0f} MB written in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
            if args.before:
                before[size] = _measure(env, args.repeat, before=True)
                print("  old in-memory table measured", flush=True)
            seconds, peak = _build(env, path)
            file_mb = (path.parent / "cmdb_table.arrow").stat().st_size / 1e6
            print(f"  table file built: {seconds:.1f} s, peak {peak:.0f} MB, {file_mb:.0f} MB on disk", flush=True)
            after[size] = {"build (s)": seconds, "build peak memory (MB)": peak, "table file (MB)": file_mb}
            after[size].update(_measure(env, args.repeat, before=False, downloads=args.downloads))
            if after[size]["rows"] != size:
                raise SystemExit(f"the API counted {after[size]['rows']:,} rows, not {size:,}")
        _table(sizes, after, "The table file, mapped by two workers (growth against the first size in brackets):")
        if before:
            _table(sizes, before, "The old in-memory table, built by each of two workers:")
        ok = _verdict(sizes, after)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\nall targets met" if ok else "\nsome targets missed")
    sys.exit(0 if ok else 1)


# --- a worker ----------------------------------------------------------------------------------------------------


def _worker(username: str, password: str, *, before: bool) -> None:
    os.environ["SECRET_KEY"] = os.environ["BENCH_SECRET_KEY"]
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.test import Client

    if before:
        from bench.cmdb_inmemory import CmdbTable as OldTable
        from cmdb import selectors

        selectors.table_open = lambda csv_path, sha256, wait=None: (OldTable.from_csv(csv_path), True)  # type: ignore[assignment]
        # What the API did with the old table: sort every match for a page, evaluate a filter to validate it.
        OldTable.select_page = (
            lambda self, query, offset, limit: (  # type: ignore[attr-defined]
                len(rows := self.select(query)),
                rows[offset : offset + limit],
            )
        )
        OldTable.check = OldTable.mask  # type: ignore[attr-defined]
    client = Client(SERVER_NAME="localhost")
    if not client.login(username=username, password=password):
        raise SystemExit("cannot sign in")

    cpu: list[float] = []  # the CPU time of each request, in ms: what the machine's other load does not change

    def get(url: str) -> tuple[float, Any]:
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        cpu.append((time.process_time() - cpu_started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.content[:200]!r}")
        return elapsed, response

    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "quit":
                print(json.dumps({}), flush=True)
                return
            if command["cmd"] == "warm-up":
                get("/api/cmdb/merged/view/")  # the whole stack, but not the table
                answer: dict[str, Any] = {}
            elif command["cmd"] == "downloads":
                answer = _downloads(get)
            elif command["cmd"] == "firsts":
                first_ms, response = get(FIRST_PAGE)
                filtered_ms, _ = get(FILTERED)
                search_ms, _ = get(SEARCH.format("stark"))
                answer = {"first_page": first_ms, "filtered": filtered_ms, "search": search_ms,
                          "count": response.json()["count"]}  # fmt: skip
            else:
                answer = {}
                scenarios = {"first page": [FIRST_PAGE], "filtered + sorted": [FILTERED],
                             "search": [SEARCH.format(term) for term in SEARCH_TERMS]}  # fmt: skip
                for name, urls in scenarios.items():
                    cpu.clear()
                    times = [get(urls[index % len(urls)])[0] for index in range(command["repeat"])]
                    answer[name] = (statistics.median(times), _percentile(times, 0.95), _percentile(cpu, 0.95))
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


def _downloads(get: Any) -> dict[str, float]:
    """The filtered download of all rows, and of those with an id up to 5,000, as CSV and as workbook."""

    def consume(url: str, *, traced: bool) -> tuple[float, int, float]:
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        _, response = get(url)
        size = sum(len(chunk) for chunk in (response.streaming_content if response.streaming else [response.content]))
        response.close()
        elapsed = (time.perf_counter() - started) * 1000
        peak = tracemalloc.get_traced_memory()[1] / 1e6 if traced else 0.0
        if traced:
            tracemalloc.stop()
        return elapsed, size, peak

    base = "/api/cmdb/merged/download/?name__empty=false&ordering=site,name"
    answer: dict[str, float] = {}
    for kind in ("csv", "xlsx"):
        ms, size, _ = consume(f"{base}&format={kind}", traced=False)
        _, _, peak_small = consume(f"{base}&format={kind}&id__lte=5000", traced=True)
        _, _, peak_full = consume(f"{base}&format={kind}", traced=True)
        answer[f"{kind} download of all rows (s)"] = ms / 1000
        answer[f"{kind} download size (MB)"] = size / 1e6
        answer[f"{kind} download peak Python MB, all rows"] = peak_full
        answer[f"{kind} download peak Python MB, ids <= 5,000"] = peak_small
    return answer


if __name__ == "__main__":
    main()
