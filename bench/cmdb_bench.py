"""Benchmark the CMDB rows API (issue 19) at 20,000 devices + 30,000 VMs.

Usage: ``.venv/bin/python bench/cmdb_bench.py [--devices 20000] [--vms 30000] [--repeat 40] [--keep]``

1. A real full export of the loopback fake NetBox (``devtools.netbox``) into a temporary
   ``ENREACH_VAR_DIR`` with a fresh SQLite database, Django with ``DEBUG=false`` (production settings).
2. Through the whole stack (Django test client signed in as a viewer: middleware, DRF, JSON), ``--repeat`` times
   each, printing p50/p95 in ms against the 150 ms target:
   - the first page of the merged rows (50 rows, every column);
   - a filtered and sorted page (site contains, status equals, sorted by tenant then name descending);
   - a global search (several terms in turn, from very selective to matching most rows).
   The first request, which builds the in-memory table of the run, and the first sort of each column (which builds
   its ranks) are printed on their own: they happen once per process and run.
3. The filtered download of all rows (every column, sorted): time and size, and its peak memory as the Python
   allocations traced while the response is consumed (``tracemalloc``), for 5,000 rows and for all rows: a CSV
   streams in constant memory, so both peaks are about the same. The workbook (``?format=xlsx``) too: the table
   gives ``exports.workbook.write_workbook`` the column sizes, so it reads the rows once, a batch at a time, and
   writes text inline (no shared strings to grow); the file goes to a temporary file, not memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0
SEARCH_TERMS = ("fra1-srv", "stark", "10.2.", "db-prd", "zürich", "e", "acme retail", "proxmox-cl01")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _setup(work: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="enreach.settings",
        ENREACH_VAR_DIR=str(work),
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        LOG_LEVEL="WARNING",
        STATIC_ROOT=str(work / "static"),
    )
    (work / "static").mkdir()
    for name in ("DATABASE_URL", "REDIS_URL", "ENREACH_DATA_DIR", "EXPORT_SCHEDULE"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)


def _export(devices: int, vms: int) -> Any:
    from django.conf import settings

    from devtools.netbox import FakeNetbox
    from exports.models import ExportRun
    from exports.services import export_run_execute, export_run_request

    started = time.perf_counter()
    with FakeNetbox(devices=devices, vms=vms) as server:
        settings.NETBOX_URL = server.url
        settings.NETBOX_TOKEN = server.token
        run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND, force=True)
        run = export_run_execute(run=run)
    if run.status != ExportRun.Status.SUCCEEDED:
        raise SystemExit(f"the export failed: {run.error}")
    print(f"export #{run.pk}: {run.devices:,} devices + {run.vms:,} VMs in {time.perf_counter() - started:.1f} s")
    return run


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def _client() -> Any:
    from django.test import Client

    from accounts.services import user_create

    user = user_create(username=f"bench-{secrets.token_hex(3)}", password=secrets.token_urlsafe(16), role="viewer")
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    return client


def _get(client: Any, url: str) -> Any:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"GET {url}: {response.status_code} {response.content[:300]!r}")
    return response


def _profile(client: Any, url: str) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(10):
        _get(client, url)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def measure(args: argparse.Namespace) -> bool:
    from cmdb import selectors

    client = _client()
    rss_before = _rss_mb()
    first_ms, response = _timed(lambda: _get(client, "/api/cmdb/merged/rows/"))
    count = response.json()["count"]
    print(f"first request (builds the run's table): {first_ms:.0f} ms; {count:,} merged rows; "
          f"RSS +{_rss_mb() - rss_before:.0f} MB")  # fmt: skip
    from cmdb.query import Query

    table = selectors.cmdb_source().table
    search_ms, _ = _timed(lambda: table.select(Query(search="first")))
    print(f"first global search (folds and joins each column's values): {search_ms:.0f} ms; "
          f"RSS now +{_rss_mb() - rss_before:.0f} MB")  # fmt: skip

    filtered = "/api/cmdb/merged/rows/?site=fra&status__eq=active&ordering=tenant,-name"
    cold_ms, _ = _timed(lambda: _get(client, filtered))
    print(f"first sort by tenant and name (builds their ranks): {cold_ms:.0f} ms")

    if args.profile:
        _profile(client, filtered)
    scenarios: list[tuple[str, list[str]]] = [
        ("first page of merged rows", ["/api/cmdb/merged/rows/"]),
        ("filtered + sorted page", [filtered]),
        ("global search", [f"/api/cmdb/merged/rows/?q={term}" for term in SEARCH_TERMS]),
    ]
    ok = True
    print(f"\n{'scenario':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  matches")
    for name, urls in scenarios:
        times: list[float] = []
        matches: set[int] = set()
        for index in range(args.repeat):
            url = urls[index % len(urls)]
            ms, response = _timed(lambda: _get(client, url))  # noqa: B023 (called at once)
            times.append(ms)
            matches.add(response.json()["count"])
        p95 = _percentile(times, 0.95)
        ok = ok and p95 < TARGET_MS
        shown = ", ".join(f"{n:,}" for n in sorted(matches))
        print(f"{name:<28} {statistics.median(times):>8.1f} {p95:>8.1f} {max(times):>8.1f}  {shown}"
              f"  {'OK' if p95 < TARGET_MS else 'OVER'} (< {TARGET_MS:.0f} ms p95)")  # fmt: skip
    ok = _downloads(client, count) and ok
    return ok


def _consume(client: Any, url: str, *, traced: bool) -> tuple[float, int, float]:
    """(ms, bytes, peak MB of Python allocations while the response was produced and read)."""
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    response = _get(client, url)
    size = 0
    for chunk in response.streaming_content if response.streaming else [response.content]:
        size += len(chunk)
    if hasattr(response, "close"):
        response.close()
    elapsed = (time.perf_counter() - started) * 1000
    peak = 0.0
    if traced:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return elapsed, size, peak


def _downloads(client: Any, count: int) -> bool:
    print("\nfiltered download of all rows (every column, sorted by site then name):")
    base = "/api/cmdb/merged/download/?name__empty=false&ordering=site,name"
    small_count = _get(client, "/api/cmdb/merged/rows/?name__empty=false&id__lte=5000&limit=1").json()["count"]
    ok = True
    for kind in ("csv", "xlsx"):
        small = f"{base}&format={kind}&id__lte=5000"
        full = f"{base}&format={kind}"
        ms, size, _ = _consume(client, full, traced=False)
        _, _, peak_small = _consume(client, small, traced=True)
        _, _, peak_full = _consume(client, full, traced=True)
        print(f"  {kind:<4}: {count:,} rows, {size / 1e6:.1f} MB in {ms:.0f} ms; peak Python memory "
              f"{peak_full:.1f} MB ({small_count:,} rows: {peak_small:.1f} MB)")  # fmt: skip
        if peak_full > 2 * peak_small + 5:
            ok = False
            print(f"        {kind.upper()} memory grows with the rows: not constant")
    print(f"  process peak RSS (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--vms", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=40, help="requests per scenario")
    parser.add_argument("--profile", action="store_true", help="print a profile of ten filtered+sorted requests")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cmdb-bench-"))
    try:
        _setup(work)
        _export(args.devices, args.vms)
        ok = measure(args)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\nall targets met" if ok else "\nsome targets missed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
