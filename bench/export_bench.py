"""Benchmark the NetBox -> CMDB export against the fake NetBox on loopback, with issue 3's targets.

Usage: ``.venv/bin/python bench/export_bench.py [--devices 20000] [--vms 30000] [--small] [--repeat 1] [--profile]``
or ``... --sizes 50000,250000,500000 [--database-url postgres://...]`` (issue 25: each size's full export and
incremental export after 1 % changed, side by side with the growth factors against the smallest size).

One run measures, each in a process of its own so that time and peak memory (``ru_maxrss``) do not mix:

1. download once: every page of devices and VMs (``limit=1000&ordering=id&exclude=config_context``) fetched
   sequentially with ``requests`` and JSON-decoded; the reference of the target. Bytes only, for information.
2. full export: ``export_run_request(force=True)`` + ``export_run_execute`` on a fresh SQLite database.
3. incremental export with no change: a second run on the same database.
4. incremental export after a few changes made on the server (updated, added and deleted devices and VMs), then a
   full export of the same NetBox state on a fresh database, whose files must have the same bytes.
5. the naive baseline: pynetbox ``.all()`` with default settings, a pandas DataFrame of ``dict(record)`` rows and
   ``to_excel`` (openpyxl) of the merged frame.
6. the data-quality report's cost (issue 18), interleaved with 2 and 3: the full export without the report, and
   with it in a queue worker (after django-q2's ``post_spawn``, when the exports app imports pandas). The full
   export of 2 is the fresh process of ``manage.py netbox_update``, which imports pandas during the export.

The fake NetBox (``devtools.netbox.FakeNetbox``) runs in another process, on a port the system picks,
driven over stdin so the benchmark can change objects between runs and read its request counters. Django runs with
``DEBUG=false`` (production: no SQL query log) unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import queue
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOKEN = "0123456789abcdef0123456789abcdef01234567"
PAGE_PARAMS = {"limit": "1000", "ordering": "id", "exclude": "config_context"}
ENDPOINTS = ("dcim/devices/", "virtualization/virtual-machines/")

# Issue 3's targets.
TARGET_FULL_VS_DOWNLOAD = 1.5
TARGET_INCREMENTAL_VS_FULL = 0.10
TARGET_PEAK_MB = 600.0
# Issue 18: the data-quality report adds at most this much to a full export.
TARGET_QUALITY_COST = 0.10


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _MemorySampler:
    """Samples this process's resident memory plus its children's private memory every ``interval`` seconds.

    The export forks a child to write files; the pages the child shares copy-on-write with its parent are resident
    once, so the memory both hold at once is the parent's RSS plus the child's private pages (``smaps_rollup``).
    ``ru_maxrss`` cannot tell: it counts the shared pages in each process.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        # The peak within each phase of the run (``_PHASE``: its step, or its after-run step) and what made it: this
        # process's resident MB and each child's private MB at that sample.
        self.phases: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-sampler")

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            own = _rss_mb() or 0.0
            children = [_private_mb(child) for child in _children()]
            total = own + sum(children)
            self.peak_mb = max(self.peak_mb, total)
            phase = _PHASE[0]
            if total > self.phases.get(phase, {}).get("peak_mb", -1.0):
                self.phases[phase] = {"peak_mb": total, "own_mb": own, "children_mb": [round(c) for c in children]}
            if self._stop.wait(self.interval):
                return


# The phase of the run being measured (``child_export`` follows the run's steps and after-run steps).
_PHASE = ["setup"]


def _follow_phases() -> None:
    """Keep ``_PHASE`` at the run's current step (``RunRecorder.step``) or after-run step, for the sampler."""
    from exports import afterrun
    from exports.recorder import RunRecorder

    step = RunRecorder.step

    @contextlib.contextmanager
    def followed(self: Any, name: str) -> Any:
        with step(self, name):
            _PHASE[0] = name
            yield
        _PHASE[0] = f"after {name}"

    RunRecorder.step = followed  # type: ignore[method-assign]
    for registered in afterrun.steps():

        def run_step(run: Any, func: Any = registered.func, name: str = registered.name) -> Any:
            _PHASE[0] = f"after-run {name}"
            return func(run)

        afterrun.register(registered.name, run_step, order=registered.order, statuses=registered.statuses)


def _children() -> list[str]:
    pids: list[str] = []
    for task in Path("/proc/self/task").glob("*"):
        with contextlib.suppress(OSError):
            pids += (task / "children").read_text().split()
    return pids


def _private_mb(pid: str) -> float:
    total_kb = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def _cpu_seconds() -> float:
    """User + system time of this process and of the children it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# --- The fake NetBox, in its own process --------------------------------------------------------------------------


def serve(devices: int, vms: int, token: str, seed: int) -> None:
    """Run FakeNetbox on a free loopback port; answer ``reset``, ``stats`` and ``change N`` lines on stdin."""
    sys.path.insert(0, str(ROOT))
    from devtools.netbox import FakeNetbox

    netbox = FakeNetbox(devices, vms, token=token, seed=seed, host="127.0.0.1", port=0)
    # SIGTERM raises SystemExit in the main thread, so the finally below still stops the server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    url = netbox.start()
    print(f"READY {url}", flush=True)
    try:
        for line in sys.stdin:
            command, *arguments = line.split() or [""]
            reply: dict[str, Any]
            if command == "reset":
                netbox.reset_log()
                reply = {}
            elif command == "stats":
                reply = {**netbox.stats, "peak_mb": _rss_mb(field="VmHWM")}
            elif command == "change":
                reply = _change(netbox, int(arguments[0]))
            elif command == "server-time":
                netbox.seconds_per_object = float(arguments[0]) / 1000
                reply = {}
            else:
                reply = {"error": f"unknown command {command!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        netbox.stop()


def _change(netbox: Any, count: int) -> dict[str, Any]:
    """Update ``count`` devices and VMs spread over the id range, add one of each and delete the last of each."""
    device_ids = [device["id"] for device in netbox.devices]
    vm_ids = [vm["id"] for vm in netbox.vms]
    updated = 0
    for ids, update in ((device_ids, netbox.update_device), (vm_ids, netbox.update_vm)):
        step = max(1, (len(ids) - 1) // (count + 1))
        for number in range(1, count + 1):
            if number * step < len(ids) - 1:
                update(ids[number * step], description=f"changed by the export benchmark ({number})")
                updated += 1
    added = [netbox.add_device(), netbox.add_vm()]
    netbox.delete_device(device_ids[-1])
    netbox.delete_vm(vm_ids[-1])
    return {"updated": updated, "added": len(added), "deleted": 2}


class FakeNetboxProcess:
    """The fake NetBox in a subprocess: started with a deadline, always stopped (use it as a context manager)."""

    def __init__(self, *, devices: int, vms: int, token: str, seed: int, start_timeout: float) -> None:
        self.command = [sys.executable, str(Path(__file__).resolve()), "--serve", "--token", token]
        self.command += ["--devices", str(devices), "--vms", str(vms), "--seed", str(seed)]
        self.start_timeout = start_timeout
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)

    def __enter__(self) -> FakeNetboxProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True, name="fake-netbox-stdout").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="fake-netbox-stderr").start()
        line = self._next_line(self.start_timeout, "start")
        if not line.startswith("READY http"):
            raise BenchError(f"the fake NetBox printed {line!r} instead of its address{self._stderr_tail()}")
        self.url = line.split()[1]
        self.start_seconds = time.perf_counter() - started

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line.rstrip())

    def _next_line(self, timeout: float, what: str) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"the fake NetBox did not {what} within {timeout:.0f} s{self._stderr_tail()}") from None
        if line is None:
            code = self.process.wait(timeout=5) if self.process else None
            raise BenchError(f"the fake NetBox exited (code {code}) during {what}{self._stderr_tail()}")
        return line

    def _stderr_tail(self) -> str:
        time.sleep(0.2)  # let the reader catch the last lines of a dying process
        tail = "\n".join(self._stderr).strip()
        return f"; its stderr:\n{tail}" if tail else ""

    def ask(self, command: str, timeout: float = 300) -> dict[str, Any]:
        """Send one command line, return the JSON reply."""
        if self.process is None or self.process.stdin is None or self.process.poll() is not None:
            raise BenchError(f"the fake NetBox is not running{self._stderr_tail()}")
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self._next_line(timeout, command))
        return reply

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if process is not None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()


# --- Measured children --------------------------------------------------------------------------------------------


def child_download(url: str, token: str, repeat: int, decoded_only: bool = False) -> dict[str, Any]:
    """GET every page of devices and VMs sequentially: bytes only, then with json.loads; best of ``repeat``."""
    import requests

    session = requests.Session()
    session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})

    counts = {}
    for endpoint in ENDPOINTS:
        response = session.get(f"{url}/api/{endpoint}", params={**PAGE_PARAMS, "limit": "1"})
        response.raise_for_status()
        counts[endpoint] = response.json()["count"]

    def walk(decode: bool) -> tuple[float, float, int, int, int]:
        """Decoding reads ``count`` from the first page as a client must; bytes only uses the counts known."""
        requests_made = total_bytes = objects = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for endpoint in ENDPOINTS:
            offset, count = 0, None if decode else counts[endpoint]
            while count is None or offset < count:
                response = session.get(f"{url}/api/{endpoint}", params={**PAGE_PARAMS, "offset": str(offset)})
                response.raise_for_status()
                body = response.content
                requests_made += 1
                total_bytes += len(body)
                if decode:
                    page = json.loads(body)
                    count = page["count"]
                    objects += len(page["results"])
                offset += int(PAGE_PARAMS["limit"])
        cpu_seconds = time.process_time() - cpu_started
        return time.perf_counter() - started, cpu_seconds, requests_made, total_bytes, objects

    if decoded_only:  # a slow server: one decoded walk is the figure
        decoded = raw = walk(decode=True)
    else:
        walk(decode=False)  # warm-up: connection, server caches, page cache
        raw = min((walk(decode=False) for _ in range(repeat)), key=lambda result: result[0])
        decoded = min((walk(decode=True) for _ in range(repeat)), key=lambda result: result[0])
    return {
        "seconds": decoded[0],
        "cpu_seconds": decoded[1],
        "bytes_seconds": raw[0],
        "requests": decoded[2],
        "bytes": decoded[3],
        "objects": decoded[4],
        "peak_mb": _peak_mb(),
    }


def child_export(force: bool, profile_path: str | None, worker: bool = False) -> dict[str, Any]:
    """One export run through the services, with its wall time, steps, requests and files. ``worker``: run it as a
    queue worker does, after django-q2's ``post_spawn`` signal (the export app imports pandas then)."""
    import django

    setup_started = time.perf_counter()
    django.setup()
    if worker:
        from django_q.signals import post_spawn

        post_spawn.send(sender="django_q", proc_name="bench-worker")
    from django.conf import settings

    from exports.models import ExportRun
    from exports.services import export_run_execute, export_run_request

    setup_seconds = time.perf_counter() - setup_started
    _follow_phases()
    rss_before = _rss_mb()
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND, force=force)
    profiler = _Profiler() if profile_path else None
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    with _MemorySampler() as memory:
        if profiler is not None:
            with profiler:
                export_run_execute(run=run)
        else:
            export_run_execute(run=run)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    run.refresh_from_db()
    if profiler is not None and profile_path:
        profiler.report(Path(profile_path))
    return {
        "status": run.status,
        "error": run.error,
        "mode": run.mode,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "setup_seconds": setup_seconds,
        "timings": run.timings,
        "requests": run.netbox_requests,
        "reused_files": run.reused_files,
        "after_run": {step["step"]: step["seconds"] for step in run.after_run or []},
        "devices": run.devices,
        "vms": run.vms,
        "added": run.added,
        "changed": run.changed,
        "removed": run.removed,
        "files": {
            artifact.name: {
                "path": str(Path(settings.DATA_DIR) / artifact.path),
                "sha256": artifact.sha256,
                "size": artifact.size,
                "rows": artifact.rows,
            }
            for artifact in run.artifacts.all()
        },
        "quality": {
            "rules": run.quality_counts.count(),
            "findings": sum(run.quality_counts.values_list("count", flat=True)),
            "csv_mb": sum(a.size for a in run.artifacts.all() if a.name == "data_quality.csv") / 1e6,
        },
        "rss_before_mb": rss_before,
        # This process's own peak, or more when its forked writer's private pages were added (sampled).
        "peak_mb": max(_peak_mb(), memory.peak_mb),
        "phases_mb": memory.phases,
        "own_peak_mb": _peak_mb(),
        "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


class _Profiler:
    """cProfile over the main thread and every thread started while it is on (the page fetches run in a pool)."""

    def __init__(self) -> None:
        import cProfile

        self._make = cProfile.Profile
        self.main = cProfile.Profile()
        self.threads: list[Any] = []
        self._original_run = threading.Thread.run

    def __enter__(self) -> _Profiler:
        profiles, make, original_run = self.threads, self._make, self._original_run

        def run(thread: threading.Thread) -> None:
            profile = make()
            profiles.append(profile)
            profile.enable()
            try:
                original_run(thread)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign]
        self.main.enable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.main.disable()
        threading.Thread.run = self._original_run  # type: ignore[method-assign]

    def report(self, path: Path, lines: int = 30) -> None:
        import io
        import pstats

        out = io.StringIO()
        # The main thread alone first: the threads' waits (sockets, queues) hide where its own time goes.
        own = pstats.Stats(self.main, stream=out)
        own.dump_stats(str(path.with_suffix(".main.prof")))
        out.write("cProfile of the full export, main thread alone\n")
        own.sort_stats("tottime").print_stats(lines)
        own.sort_stats("cumulative").print_stats(lines)
        stats = pstats.Stats(self.main, stream=out)
        for profile in self.threads:
            stats.add(profile)
        stats.dump_stats(str(path.with_suffix(".prof")))
        out.write(f"cProfile of the full export, main thread + {len(self.threads)} worker threads merged\n")
        stats.sort_stats("tottime").print_stats(lines)
        stats.sort_stats("cumulative").print_stats(lines)
        path.write_text(out.getvalue(), encoding="utf-8")


def child_baseline(url: str, token: str, out: str) -> dict[str, Any]:
    """The naive way: pynetbox ``.all()`` (default settings), pandas frames of ``dict(record)``, ``to_excel``."""
    import pandas as pd
    import pynetbox

    requests_made = 0

    def count(response: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal requests_made
        requests_made += 1

    api = pynetbox.api(url, token=token)
    api.http_session.hooks["response"].append(count)
    started, cpu_started = time.perf_counter(), time.process_time()
    devices = list(api.dcim.devices.all())
    vms = list(api.virtualization.virtual_machines.all())
    fetched = time.perf_counter()
    frames = []
    for records, kind in ((devices, "devices"), (vms, "vms")):
        frame = pd.DataFrame([dict(record) for record in records])
        frame["netbox_type"] = kind
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    framed = time.perf_counter()
    path = Path(out) / "baseline.xlsx"
    merged.to_excel(path, index=False, engine="openpyxl")
    finished = time.perf_counter()
    return {
        "seconds": finished - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "timings": {
            "fetch": round(fetched - started, 3),
            "frame": round(framed - fetched, 3),
            "to_excel": round(finished - framed, 3),
        },
        "requests": requests_made,
        "rows": len(merged),
        "columns": len(merged.columns),
        "size": path.stat().st_size,
        "peak_mb": _peak_mb(),
    }


# --- The parent ---------------------------------------------------------------------------------------------------


class Bench:
    """Runs the scenarios as child processes against one fake NetBox and collects their results."""

    def __init__(self, args: argparse.Namespace, netbox: FakeNetboxProcess, work: Path) -> None:
        self.args = args
        self.netbox = netbox
        self.work = work
        self.log = work / "children.log"
        self.secret_key = secrets.token_urlsafe(64)

    def env(self, var_dir: Path) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ENREACH_", "EXPORT_"))}
        for name in ("DATABASE_URL", "REDIS_URL", "NETBOX_EXTRA_HEADERS", "NETBOX_VERIFY_TLS"):
            env.pop(name, None)
        env.update(
            DJANGO_SETTINGS_MODULE="enreach.settings",
            ENREACH_VAR_DIR=str(var_dir),
            NETBOX_URL=self.netbox.url,
            NETBOX_TOKEN=self.args.token,
            DEBUG="true" if self.args.debug else "false",
            SECRET_KEY=self.secret_key,
            PYTHONPATH=str(ROOT),
        )
        return env

    def child(self, mode: str, *, env: dict[str, str] | None = None, extra: list[str] | None = None) -> dict[str, Any]:
        """Run ``--child mode`` and return its JSON, with the server's request count for it."""
        command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--url", self.netbox.url]
        command += ["--token", self.args.token, "--repeat", str(self.args.repeat), *(extra or [])]
        self.netbox.ask("reset")
        with self.log.open("a") as log:
            log.write(f"\n===== {mode} {' '.join(extra or [])}\n")
            log.flush()
            try:
                completed = subprocess.run(
                    command,
                    cwd=ROOT,
                    env=env or self.env(self.work),
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    timeout=self.args.timeout,
                )
            except subprocess.TimeoutExpired:
                raise BenchError(f"{mode} took longer than {self.args.timeout} s; see {self.log}") from None
        if completed.returncode:
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise BenchError(f"{mode} failed with exit code {completed.returncode}:\n{tail}")
        result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        result["server_requests"] = self.netbox.ask("stats").get("requests", 0)
        if result.get("status", "succeeded") != "succeeded":
            raise BenchError(f"{mode}: the run {result['status']}: {result.get('error')}")
        return result

    def fresh_database(self, name: str) -> tuple[Path, dict[str, str]]:
        var_dir = self.work / name
        var_dir.mkdir()
        env = self.env(var_dir)
        if self.args.database_url:  # a new database on that PostgreSQL server for each fresh one
            env["DATABASE_URL"] = _postgres_database(self.args.database_url, f"{var_dir.parent.name}_{name}")
        completed = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if completed.returncode:
            raise BenchError(f"manage.py migrate failed:\n{completed.stderr[-3000:]}")
        return var_dir, env

    def export(
        self, env: dict[str, str], *, force: bool, profile: Path | None = None, worker: bool = False
    ) -> dict[str, Any]:
        extra = ["--force"] if force else []
        if worker:
            extra.append("--worker")
        if profile is not None:
            extra += ["--profile-to", str(profile)]
        return self.child("export", env=env, extra=extra)


def _postgres_database(server_url: str, name: str) -> str:
    """Create a database called after ``name`` on the server of ``server_url``; its URL."""
    import re
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    database = re.sub(r"[^a-z0-9_]", "_", f"bench_{name}".lower())[:63]
    parts = urlsplit(server_url)
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
        connection.execute(f'CREATE DATABASE "{database}"')
    return urlunsplit(parts._replace(path=f"/{database}"))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _best(results: list[dict[str, Any]]) -> dict[str, Any]:
    return min(results, key=lambda result: result["seconds"])


def _same_files(left: dict[str, Any], right: dict[str, Any]) -> str:
    """Which files differ in bytes between two runs ("identical" if none)."""
    if set(left) != set(right):
        return f"different file sets: {sorted(set(left) ^ set(right))}"
    different = [name for name in sorted(left) if left[name]["sha256"] != right[name]["sha256"]]
    return "identical" if not different else "DIFFERENT: " + ", ".join(different)


def run_all(args: argparse.Namespace, netbox: FakeNetboxProcess, work: Path) -> dict[str, Any]:
    bench = Bench(args, netbox, work)
    results: dict[str, Any] = {"server_start": netbox.start_seconds, "load_before": os.getloadavg()}

    _say("download once: every page, sequentially ...")
    results["download"] = bench.child("download")
    _say(f"  {results['download']['seconds']:.2f} s")

    fulls, incrementals, serials, no_quality, in_worker = [], [], [], [], []
    for number in range(args.repeat):
        _var_dir, env = bench.fresh_database(f"run{number}")
        _say(f"full export (fresh database, force) {number + 1}/{args.repeat} ...")
        fulls.append(bench.export(env, force=True))
        _say(f"  {fulls[-1]['seconds']:.2f} s")
        _say(f"incremental export, no change {number + 1}/{args.repeat} ...")
        incrementals.append(bench.export(env, force=False))
        incrementals[-1]["same_files"] = _same_files(fulls[-1]["files"], incrementals[-1]["files"])
        _say(f"  {incrementals[-1]['seconds']:.2f} s")
        if args.compare_serial:  # interleaved with the runs above, so both see the same load
            _var_dir, serial_env = bench.fresh_database(f"serial{number}")
            _say(f"full export, files written in one process {number + 1}/{args.repeat} ...")
            serials.append(bench.export({**serial_env, "EXPORT_PARALLEL_WRITE": "false"}, force=True))
            _say(f"  {serials[-1]['seconds']:.2f} s")
        if not args.skip_quality_compare:  # interleaved too: the same export without the data-quality report
            _var_dir, plain_env = bench.fresh_database(f"no-quality{number}")
            _say(f"full export without the data-quality report {number + 1}/{args.repeat} ...")
            no_quality.append(bench.export({**plain_env, "EXPORT_QUALITY": "false"}, force=True))
            _say(f"  {no_quality[-1]['seconds']:.2f} s")
            _var_dir, worker_env = bench.fresh_database(f"worker{number}")
            _say(f"full export in a queue worker (pandas imported at its start) {number + 1}/{args.repeat} ...")
            in_worker.append(bench.export(worker_env, force=True, worker=True))
            _say(f"  {in_worker[-1]['seconds']:.2f} s")
    results["full"], results["incremental"] = _best(fulls), _best(incrementals)
    if no_quality:
        results["no_quality"], results["in_worker"] = _best(no_quality), _best(in_worker)
        # Each repeat's three runs ran back to back: their ratios, whose median resists a noisy neighbour.
        results["quality_pairs"] = [
            (full["seconds"] / plain["seconds"] - 1, worker["seconds"] / plain["seconds"] - 1)
            for full, plain, worker in zip(fulls, no_quality, in_worker, strict=True)
        ]
    if serials:
        results["serial"] = _best(serials)

    if args.changes > 0:
        results["change"] = netbox.ask(f"change {args.changes}")
        _say(f"incremental export after changes {results['change']} ...")
        changed = bench.export(env, force=False)
        _say(f"  {changed['seconds']:.2f} s")
        _say("full export of the same NetBox state on a fresh database (to compare bytes) ...")
        _var_dir, fresh_env = bench.fresh_database("after-changes")
        reference = bench.export(fresh_env, force=True)
        _say(f"  {reference['seconds']:.2f} s")
        changed["same_files"] = _same_files(reference["files"], changed["files"])
        results["changed"], results["full_after_changes"] = changed, reference

    if args.profile:
        _var_dir, env = bench.fresh_database("profile")
        profile = work / "profile.txt"
        _say("full export under cProfile ...")
        results["profiled"] = bench.export(env, force=True, profile=profile)
        results["profile"] = profile.read_text(encoding="utf-8")
        if args.keep:
            results["profile_path"] = str(profile.with_suffix(".prof"))

    if args.server_ms_per_object > 0:
        netbox.ask(f"server-time {args.server_ms_per_object}")
        try:
            _say(f"with {args.server_ms_per_object} ms of server time per object: download once ...")
            results["slow_download"] = bench.child("download", extra=["--decoded-only"])
            _say(f"  {results['slow_download']['seconds']:.2f} s")
            _var_dir, env = bench.fresh_database("slow")
            _say("  full export ...")
            results["slow_full"] = bench.export(env, force=True)
            _say(f"  {results['slow_full']['seconds']:.2f} s")
        finally:
            netbox.ask("server-time 0")

    if not args.skip_baseline:
        _say("naive baseline: pynetbox .all() + pandas to_excel ...")
        results["baseline"] = bench.child("baseline", extra=["--out", str(work)])
        _say(f"  {results['baseline']['seconds']:.2f} s")
    results["server_peak_mb"] = netbox.ask("stats").get("peak_mb")
    results["load_after"] = os.getloadavg()
    return results


# Issue 25's targets, for --sizes.
TARGET_SIZES_PEAK_MB = 1024.0
TARGET_SIZES_PEAK_GROWTH = 1.10  # the largest size's peak over the middle one's
TARGET_SIZES_TIME_GROWTH = 10.5  # per 10x objects
TARGET_SIZES_SAVE_SHARE = 0.25
TARGET_SIZES_INCREMENTAL_SHARE = 0.10
SIZES_DEVICE_SHARE = 0.4


def run_sizes(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """For each size: a fake NetBox of that many objects (40 % devices), a full export on a fresh database, then
    1 % of the objects changed (updated, plus one device and one VM added and deleted) and an incremental export."""
    results = []
    for size in args.sizes:
        devices = round(size * SIZES_DEVICE_SHARE)
        vms = size - devices
        _say(f"{size:,} objects: starting the fake NetBox ({devices:,} devices, {vms:,} VMs) ...")
        with FakeNetboxProcess(
            devices=devices, vms=vms, token=args.token, seed=args.seed, start_timeout=120 + size / 500
        ) as netbox:
            bench = Bench(args, netbox, work)
            _var_dir, env = bench.fresh_database(f"size{size}")
            _say("  full export ...")
            full = bench.export(env, force=True)
            _say(f"    {full['seconds']:.1f} s, peak {full['peak_mb']:.0f} MB, steps {full['timings']}")
            change: dict[str, Any] = {}
            incremental: dict[str, Any] = {}
            if not args.full_only:
                per_kind = max(1, size // 200)  # per kind: 1 % of all objects in all
                change = netbox.ask(f"change {per_kind}", timeout=600)
                _say(f"  incremental export after {change} ...")
                incremental = bench.export(env, force=False)
                _say(f"    {incremental['seconds']:.1f} s, peak {incremental['peak_mb']:.0f} MB, "
                     f"steps {incremental['timings']}, after the run {incremental['after_run']}")  # fmt: skip
            server_peak = netbox.ask("stats").get("peak_mb")
        results.append({"size": size, "devices": devices, "vms": vms, "full": full, "incremental": incremental,
                        "change": change, "server_peak_mb": server_peak, "load": os.getloadavg()})  # fmt: skip
    return results


def _save_seconds(result: dict[str, Any]) -> float:
    """The snapshots' save: its own timing where the run records it; else the save step, which also waits for the
    child writing the workbook (the export before issue 25 recorded only that)."""
    timings = result["timings"]
    return float(timings.get("snapshots", timings.get("save", 0)))


def report_sizes(args: argparse.Namespace, results: list[dict[str, Any]]) -> bool:
    """The figures at each size side by side, with the growth factors against the smallest; whether targets hold."""
    database = "PostgreSQL" if args.database_url else "SQLite"
    print()
    loads = ", ".join(f"{result['load'][0]:.2f}" for result in results)
    print(f"Export at several sizes ({SIZES_DEVICE_SHARE:.0%} devices); {database}; {os.cpu_count()} CPUs; "
          f"load average at the end of each size: {loads}.")  # fmt: skip
    print()
    smallest = results[0]
    labels = [f"{r['size']:,}" for r in results]
    header = f"{'objects':<40}" + "".join(f"{label:>14}" for label in labels)
    print(header)
    print("-" * len(header))

    def line(name: str, values: list[str]) -> None:
        print(f"{name:<40}" + "".join(f"{value:>14}" for value in values))

    line("full export, seconds", [f"{r['full']['seconds']:.1f}" for r in results])
    line("  time vs the smallest", [f"{r['full']['seconds'] / smallest['full']['seconds']:.2f}x" for r in results])
    line("  objects vs the smallest", [f"{r['size'] / smallest['size']:.1f}x" for r in results])
    line("  CPU seconds (export process + child)", [f"{r['full']['cpu_seconds']:.1f}" for r in results])
    line("  peak memory, MB", [f"{r['full']['peak_mb']:.0f}" for r in results])
    line("  peak vs the smallest", [f"{r['full']['peak_mb'] / smallest['full']['peak_mb']:.2f}x" for r in results])
    phases = list(dict.fromkeys(phase for r in results for phase in r["full"].get("phases_mb", {})))
    for phase in phases:  # the peak in each phase: this process's resident MB + each child's private MB
        parts = [r["full"].get("phases_mb", {}).get(phase) for r in results]
        line(f"    in {phase[:28]}", [f"{p['peak_mb']:.0f}" if p else "" for p in parts])
        line("      own + children", ["+".join(f"{m:.0f}" for m in [p["own_mb"], *p["children_mb"]]) if p else ""
                                      for p in parts])  # fmt: skip
    for step in ("fetch", "stream", "write", "save", "snapshots"):
        line(f"  step {step}, seconds", [f"{r['full']['timings'].get(step, 0):.1f}" for r in results])
    line("  save share of the full export",
         [f"{_save_seconds(r['full']) / r['full']['seconds']:.1%}" for r in results])  # fmt: skip
    if not args.full_only:
        line("incremental 1 %, seconds", [f"{r['incremental']['seconds']:.1f}" for r in results])
        line("  share of the full export",
             [f"{r['incremental']['seconds'] / r['full']['seconds']:.1%}" for r in results])  # fmt: skip
        line("  peak memory, MB", [f"{r['incremental']['peak_mb']:.0f}" for r in results])
        line("  changed objects (run's count)", [f"{r['incremental']['changed']:,}" for r in results])
    line("fake NetBox peak, MB (own process)", [f"{r['server_peak_mb'] or 0:.0f}" for r in results])

    checks: list[tuple[str, str, str, bool]] = []
    largest = results[-1]
    exports = [result[key] for result in results for key in ("full", "incremental") if result[key]]
    peak = max(result["peak_mb"] for result in exports)
    checks.append(("peak memory (any size, any run)", f"{peak:.0f} MB", f"<= {TARGET_SIZES_PEAK_MB:.0f} MB",
                   peak <= TARGET_SIZES_PEAK_MB))  # fmt: skip
    if len(results) > 1:
        middle = results[-2]
        growth = largest["full"]["peak_mb"] / middle["full"]["peak_mb"]
        checks.append((f"peak {largest['size']:,} / {middle['size']:,}", f"{growth:.2f}x",
                       f"<= {TARGET_SIZES_PEAK_GROWTH:.2f}x", growth <= TARGET_SIZES_PEAK_GROWTH))  # fmt: skip
        factor = largest["size"] / smallest["size"]
        allowed = TARGET_SIZES_TIME_GROWTH * factor / 10
        time_growth = largest["full"]["seconds"] / smallest["full"]["seconds"]
        checks.append((f"time {largest['size']:,} / {smallest['size']:,}", f"{time_growth:.2f}x",
                       f"<= {allowed:.2f}x", time_growth <= allowed))  # fmt: skip
    for result in results:
        share = _save_seconds(result["full"]) / result["full"]["seconds"]
        checks.append((f"save share at {result['size']:,}", f"{share:.1%}", f"<= {TARGET_SIZES_SAVE_SHARE:.0%}",
                       share <= TARGET_SIZES_SAVE_SHARE))  # fmt: skip
        if args.full_only:
            continue
        share = result["incremental"]["seconds"] / result["full"]["seconds"]
        target = TARGET_SIZES_INCREMENTAL_SHARE
        checks.append((f"incremental 1 % share at {result['size']:,}", f"{share:.1%}", f"<= {target:.0%}",
                       share <= target))  # fmt: skip
    print()
    header = f"{'check':<40} {'value':>12} {'target':>12}  result"
    print(header)
    print("-" * len(header))
    for name, value, target, passed in checks:
        print(f"{name:<40} {value:>12} {target:>12}  {'PASS' if passed else 'FAIL'}")
    return all(passed for _, _, _, passed in checks)


def _quality_note(result: dict[str, Any]) -> str:
    quality = result.get("quality")
    if not quality:
        return ""
    return (
        f" (of which data quality {result['timings'].get('quality', 0):.2f} beside the writing child: "
        f"{quality['findings']:,} findings over {quality['rules']} rules, data_quality.csv "
        f"{quality['csv_mb']:.1f} MB)"
    )


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def report(args: argparse.Namespace, results: dict[str, Any]) -> bool:
    """Print the tables; returns whether every target is met."""
    download, full, incremental = results["download"], results["full"], results["incremental"]
    changed, baseline = results.get("changed"), results.get("baseline")
    print()
    print(
        f"Fake NetBox: {args.devices:,} devices + {args.vms:,} VMs on loopback (started in "
        f"{results['server_start']:.1f} s, peak {results.get('server_peak_mb') or 0:.0f} MB, own process); "
        f"DEBUG={'true' if args.debug else 'false'}; best of {args.repeat}."
    )
    load_before, load_after = results["load_before"], results["load_after"]
    print(
        f"{os.cpu_count()} CPUs; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(other processes on the machine make the figures noisy; use --repeat to take the best of several)."
    )
    print()
    header = f"{'scenario':<38} {'seconds':>8} {'CPU s':>7} {'requests':>9} {'peak MB':>8}  notes"
    print(header)
    print("-" * len(header))

    def row(name: str, result: dict[str, Any], notes: str) -> None:
        requests_made = result.get("requests")
        if requests_made is None:
            requests_made = result.get("server_requests", "-")
        print(
            f"{name:<38} {result['seconds']:>8.2f} {result['cpu_seconds']:>7.2f} {requests_made!s:>9} "
            f"{result['peak_mb']:>8.0f}  {notes}"
        )

    row(
        "download once (GET + json.loads)",
        download,
        f"bytes only {download['bytes_seconds']:.2f} s; {download['bytes'] / 1e6:.0f} MB, "
        f"{download['objects']:,} objects",
    )

    def steps(result: dict[str, Any]) -> str:
        return " ".join(f"{name} {seconds:.2f}" for name, seconds in result["timings"].items())

    row("full export (force, fresh DB)", full, steps(full) + _quality_note(full))
    if "no_quality" in results:
        row("  same, without the data-quality report", results["no_quality"], steps(results["no_quality"]))
        in_worker = results["in_worker"]
        row("  same, in a queue worker", in_worker, steps(in_worker) + _quality_note(in_worker))
    if "serial" in results:
        row("  same, files written in one process", results["serial"], steps(results["serial"]))
    row(
        "incremental export, no change",
        incremental,
        f"{steps(incremental)}; reused files: {incremental['reused_files']}; files {incremental['same_files']}",
    )
    if changed is not None:
        reference = results["full_after_changes"]
        row(
            "incremental export, a few changes",
            changed,
            f"{steps(changed)}; +{changed['added']} ~{changed['changed']} -{changed['removed']}; "
            f"files vs full export of the same state: {changed['same_files']}",
        )
        row("full export after the changes", reference, steps(reference))
    if "slow_full" in results:
        slow = f"{args.server_ms_per_object:g} ms/object server time"
        row(f"download once, {slow}", results["slow_download"], "sequential, as the reference")
        row(f"full export, {slow}", results["slow_full"], steps(results["slow_full"]))
    if baseline is not None:
        row(
            "naive baseline (pynetbox + pandas)",
            baseline,
            " ".join(f"{name} {seconds:.2f}" for name, seconds in baseline["timings"].items())
            + f"; {baseline['rows']:,} rows x {baseline['columns']} columns",
        )
    print()
    print(
        "Requests are the client's count (retries included); the server counted "
        + ", ".join(
            f"{name} {results[key]['server_requests']}"
            for key, name in (
                ("download", "download (warm-up, 2 counts and both passes)"),
                ("full", "full"),
                ("incremental", "incremental"),
                ("changed", "changes"),
                ("baseline", "baseline"),
            )
            if key in results
        )
        + "."
    )
    print(
        f"Peak MB is each process's ru_maxrss (Django and imports included: "
        f"{full['rss_before_mb'] or 0:.0f} MB resident before the full export started); for the exports, the "
        "larger of that and the export's resident memory plus the private memory of the child it forks to write "
        f"files, sampled every 20 ms (full export: own peak {full['own_peak_mb']:.0f} MB, child "
        f"{full['child_peak_mb']:.0f} MB of which most is shared copy-on-write). "
        "CPU s is the measured process's user + system time over the same span, all its threads and that child, "
        "the server's excluded: less sensitive than seconds to other load on the machine."
    )

    checks: list[tuple[str, str, str, bool | None]] = []
    full_vs_download = full["seconds"] / download["seconds"]
    checks.append(
        (
            "full / download",
            f"{full_vs_download:.2f}x",
            f"<= {TARGET_FULL_VS_DOWNLOAD}x",
            full_vs_download <= TARGET_FULL_VS_DOWNLOAD,
        )
    )
    checks.append(("  same, in CPU time", _ratio(full["cpu_seconds"], download["cpu_seconds"]), "(info)", None))
    if "slow_full" in results:
        ratio = _ratio(results["slow_full"]["seconds"], results["slow_download"]["seconds"])
        checks.append(("  same, with server time", ratio, "(info)", None))
    if "no_quality" in results:
        plain = results["no_quality"]
        cost = full["seconds"] / plain["seconds"] - 1
        worker = results["in_worker"]
        for name, result, median in (
            ("data-quality cost, fresh process", full, statistics.median(c for c, _ in results["quality_pairs"])),
            ("data-quality cost, queue worker", worker, statistics.median(w for _, w in results["quality_pairs"])),
        ):
            cost = result["seconds"] / plain["seconds"] - 1
            checks.append((name, f"{cost:+.1%}", f"<= {TARGET_QUALITY_COST:.0%}", cost <= TARGET_QUALITY_COST))
            checks.append(("  same, in CPU time", f"{result['cpu_seconds'] / plain['cpu_seconds'] - 1:+.1%}",
                           "(info)", None))  # fmt: skip
            if args.repeat > 1:
                checks.append((f"  median of {args.repeat} back-to-back runs", f"{median:+.1%}", "(info)", None))
    incremental_vs_full = incremental["seconds"] / full["seconds"]
    checks.append(
        (
            "incremental (no change) / full",
            f"{incremental_vs_full:.1%}",
            f"< {TARGET_INCREMENTAL_VS_FULL:.0%}",
            incremental_vs_full < TARGET_INCREMENTAL_VS_FULL,
        )
    )
    if changed is not None:
        checks.append(("incremental (changes) / full", f"{changed['seconds'] / full['seconds']:.1%}", "(info)", None))
        checks.append(
            (
                "incremental output = full output",
                changed["same_files"],
                "identical",
                changed["same_files"] == "identical",
            )
        )
    if baseline is not None:
        checks.append(("full / naive baseline", _ratio(full["seconds"], baseline["seconds"]), "(info)", None))
        checks.append(("baseline peak MB", f"{baseline['peak_mb']:.0f}", "(info)", None))
    exports = [full, incremental, *([changed, results["full_after_changes"]] if changed is not None else [])]
    peak = max(result["peak_mb"] for result in exports)
    checks.append(("export peak memory", f"{peak:.0f} MB", f"< {TARGET_PEAK_MB:.0f} MB", peak < TARGET_PEAK_MB))

    print()
    header = f"{'check':<34} {'value':>12} {'target':>10}  result"
    print(header)
    print("-" * len(header))
    for name, value, target, passed in checks:
        verdict = "-" if passed is None else ("PASS" if passed else "FAIL")
        print(f"{name:<34} {value:>12} {target:>10}  {verdict}")
    if "profile" in results:
        print()
        print(results["profile"])
        if "profile_path" in results:
            print(f"pstats file: {results['profile_path']}")
    elif full_vs_download > TARGET_FULL_VS_DOWNLOAD:
        print("\nThe full export misses its target: rerun with --profile to see where the time goes.")
    return all(passed is not False for _, _, _, passed in checks)


def main() -> None:
    """Start the fake NetBox, run every scenario in its own process, print the figures and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--vms", type=int, default=30_000)
    parser.add_argument("--small", action="store_true", help="a quick try: 2,000 devices and 3,000 VMs")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the fastest is reported")
    parser.add_argument("--changes", type=int, default=10, help="devices and VMs changed for scenario 4 (0: skip)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the pynetbox + pandas baseline")
    parser.add_argument(
        "--skip-quality-compare",
        action="store_true",
        help="skip the full export without the data-quality report (measures the report's cost)",
    )
    parser.add_argument(
        "--server-ms-per-object",
        type=float,
        default=0.0,
        help="also measure download and full export with this much server time per listed object (info only)",
    )
    parser.add_argument(
        "--compare-serial", action="store_true", help="also run full exports with EXPORT_PARALLEL_WRITE=false"
    )
    parser.add_argument("--profile", action="store_true", help="also run a full export under cProfile and print it")
    parser.add_argument("--debug", action="store_true", help="run Django with DEBUG=true (keeps a SQL query log)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, files, logs)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per scenario")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument(
        "--sizes",
        type=lambda text: sorted(int(size) for size in text.split(",")),
        help="objects per run, comma separated (e.g. 50000,250000,500000; 40 %% devices): full export and "
        "incremental after 1 %% changed at each size, side by side with the growth factors (issue 25)",
    )
    parser.add_argument(
        "--full-only", action="store_true", help="with --sizes: the full exports only (no incremental after changes)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="a PostgreSQL server (postgres://user@host:port/db) on which each fresh database is created "
        "(default: SQLite; also from BENCH_DATABASE_URL)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--decoded-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small:
        args.devices, args.vms = 2_000, 3_000
    args.repeat = max(1, args.repeat)

    if args.serve:
        serve(args.devices, args.vms, args.token, args.seed)
        return
    if args.child:
        sys.path.insert(0, str(ROOT))
        if args.child == "download":
            result = child_download(args.url, args.token, args.repeat, args.decoded_only)
        elif args.child == "export":
            result = child_export(args.force, args.profile_to, args.worker)
        elif args.child == "baseline":
            result = child_baseline(args.url, args.token, args.out)
        else:
            raise SystemExit(f"unknown child {args.child!r}")
        print(json.dumps(result))
        return

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    if args.sizes:
        try:
            passed = report_sizes(args, run_sizes(args, work))
        except BenchError as exc:
            raise SystemExit(f"export_bench: {exc}") from None
        finally:
            if args.keep:
                _say(f"work directory kept: {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        sys.exit(0 if passed else 1)
    start_timeout = 60 + (args.devices + args.vms) / 1000
    _say(f"starting the fake NetBox ({args.devices:,} devices, {args.vms:,} VMs) ...")
    try:
        with FakeNetboxProcess(
            devices=args.devices, vms=args.vms, token=args.token, seed=args.seed, start_timeout=start_timeout
        ) as netbox:
            _say(f"  {netbox.url} after {netbox.start_seconds:.1f} s")
            results = run_all(args, netbox, work)
        passed = report(args, results)
    except BenchError as exc:
        raise SystemExit(f"export_bench: {exc}") from None
    finally:
        if args.keep:
            _say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
