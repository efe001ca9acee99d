"""An incremental export with 1 % changed, run alternately by several checkouts from the same saved state (issue 25).

Usage: ``.venv/bin/python bench/incremental_bench.py --size 50000 [--trees /work/wt-base,/work/wt-run] [--rounds 2]
[--database-url postgres://...] [--py-spy out-dir]``

For each checkout (``--trees``, this one by default): a fresh database and a full export of a fake NetBox of
``--size`` objects (40 % devices), made by that checkout (an incremental run reuses rows made by the same code
only). Then 1 % of the objects change on the fake NetBox (as ``export_bench --sizes`` changes them), each
checkout's state (database and run folders) is saved, and ``--rounds`` times, for each checkout in turn, the saved
state is restored and an incremental export runs on it: the same work for every checkout, interleaved so that each
sees the same load. Prints each run's seconds, CPU seconds, steps, after-run steps, phase peaks, and whether the
files, counts and changes are the same for every checkout. ``--py-spy DIR`` records each incremental run with py-spy
(raw; on-CPU samples, idle ones too with ``--py-spy-idle``) and prints where the main thread spent them.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.export_bench import (  # noqa: E402
    DEFAULT_TOKEN,
    SIZES_DEVICE_SHARE,
    BenchError,
    FakeNetboxProcess,
    _postgres_database,
)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Trees:
    def __init__(self, args: argparse.Namespace, url: str, work: Path) -> None:
        self.args = args
        self.url = url
        self.work = work
        self.secret_key = secrets.token_urlsafe(64)
        self.log = work / "children.log"

    def env(self, tree: Path, var_dir: Path, database: str = "") -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ENREACH_", "EXPORT_"))}
        for name in ("DATABASE_URL", "REDIS_URL", "NETBOX_EXTRA_HEADERS", "NETBOX_VERIFY_TLS"):
            env.pop(name, None)
        env.update(
            DJANGO_SETTINGS_MODULE="enreach.settings",
            ENREACH_VAR_DIR=str(var_dir),
            NETBOX_URL=self.url,
            NETBOX_TOKEN=self.args.token,
            DEBUG="false",
            SECRET_KEY=self.secret_key,
            PYTHONPATH=str(tree),
        )
        if database:
            env["DATABASE_URL"] = database
        return env

    def migrate(self, tree: Path, env: dict[str, str]) -> None:
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise BenchError(f"migrate failed:\n{done.stderr[-3000:]}")

    def export(self, tree: Path, env: dict[str, str], *, force: bool, spy: Path | None = None) -> dict[str, Any]:
        command = [sys.executable, str(tree / "bench" / "export_bench.py"), "--child", "export"]
        command += ["--url", self.url, "--token", self.args.token] + (["--force"] if force else [])
        if spy is not None:
            py_spy = Path(sys.executable).parent / "py-spy"
            idle = ["--idle"] if self.args.py_spy_idle else []
            command = [str(py_spy), "record", "-o", str(spy), "-f", "raw", "-r", "200", *idle, "--threads",
                       "--nonblocking", "--", *command]  # fmt: skip
        with self.log.open("a") as log:
            log.write(f"\n===== {tree} force={force}\n")
            log.flush()
            done = subprocess.run(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        if done.returncode:
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise BenchError(f"export failed ({done.returncode}):\n{tail}")
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result: dict[str, Any] = json.loads(lines[-1])
        if result["status"] != "succeeded":
            raise BenchError(f"the run {result['status']}: {result['error']}")
        return result


def _changes_digest(var_dir: Path, database: str) -> str:
    """A digest of the newest run's stored changes (kind, change, id, name, columns, fields)."""
    query = (
        "SELECT kind, change, netbox_id, name, columns, fields FROM exports_exportchange WHERE run_id = "
        "(SELECT max(id) FROM exports_exportrun) ORDER BY kind, change, netbox_id"
    )
    if database:
        import psycopg

        with psycopg.connect(database) as connection:
            rows = [(*row[:5], json.dumps(row[5], sort_keys=True)) for row in connection.execute(query)]
    else:
        with sqlite3.connect(var_dir / "enreach.sqlite3") as connection:
            rows = [(*row[:5], json.dumps(json.loads(row[5]), sort_keys=True)) for row in connection.execute(query)]
    return f"{len(rows)} changes, " + hashlib.sha256(repr(rows).encode()).hexdigest()[:12]


def _spy_summary(path: Path, top: int = 25) -> str:
    """Where the main thread spent its samples (py-spy raw: ``frames;... count``): by function, own and total."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    steps: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if any(frame.startswith("_bootstrap (") for frame in frames):  # a thread started by ``threading``
            continue
        count = int(count_text)
        samples += count
        names = [frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")") for frame in frames[1:]]
        if names:
            own[names[-1]] += count
        for name in set(names):
            total[name] += count
        # The files' steps in the run's process (the workbook's child is not sampled): the stream, and the write
        # step but its companions (the data-quality report).
        functions = {name.split(" ")[0] for name in names}
        if "files_streaming" in functions:
            steps["stream"] += count
        if "files_writing" in functions and "_companion_write" not in functions:
            steps["write without companions"] += count
    lines = [f"main thread: {samples} samples (200/s)"]
    lines += [f"  {step}: {steps[step] / 200:.2f} s" for step in ("stream", "write without companions")]
    lines.append("  own:")
    lines += [f"    {count / 200:7.2f} s  {name}" for name, count in own.most_common(top)]
    lines.append("  total:")
    lines += [f"    {count / 200:7.2f} s  {name}" for name, count in total.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--trees", default=str(ROOT), help="checkouts, comma separated (run alternately)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--py-spy", default="", help="a directory: record every incremental run with py-spy")
    parser.add_argument("--py-spy-idle", action="store_true", help="with --py-spy: idle frames too (wall time)")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    work = Path(tempfile.mkdtemp(prefix="incremental-bench-"))
    devices = round(args.size * SIZES_DEVICE_SHARE)
    results: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    try:
        with FakeNetboxProcess(
            devices=devices,
            vms=args.size - devices,
            token=args.token,
            seed=args.seed,
            start_timeout=120 + args.size / 500,
        ) as netbox:
            bench = Trees(args, netbox.url, work)
            saved: dict[Path, tuple[Path, str]] = {}
            for number, tree in enumerate(trees):
                var_dir = work / f"tree{number}"
                var_dir.mkdir()
                database = _postgres_database(args.database_url, f"{work.name}_t{number}") if args.database_url else ""
                env = bench.env(tree, var_dir, database)
                bench.migrate(tree, env)
                _say(f"{tree}: full export of {args.size:,} objects ...")
                full = bench.export(tree, env, force=True)
                _say(f"  {full['seconds']:.1f} s, steps {full['timings']}")
                saved[tree] = (var_dir, database)
            per_kind = max(1, args.size // 200)
            _say(f"change: {netbox.ask(f'change {per_kind}', timeout=600)}")
            templates: dict[Path, tuple[Path, str]] = {}
            for number, tree in enumerate(trees):
                var_dir, database = saved[tree]
                template = work / f"template{number}"
                shutil.copytree(var_dir, template)
                templates[tree] = (template, database)
            for round_number in range(args.rounds):
                for number, tree in enumerate(trees):
                    template, database = templates[tree]
                    var_dir = work / f"run{number}"
                    shutil.rmtree(var_dir, ignore_errors=True)
                    shutil.copytree(template, var_dir)
                    run_database = ""
                    if database:
                        run_database = _postgres_copy(args.database_url, database, f"{work.name}_r{number}")
                    env = bench.env(tree, var_dir, run_database)
                    spy = Path(args.py_spy) / f"r{round_number}-t{number}.txt" if args.py_spy else None
                    if spy is not None:
                        spy.parent.mkdir(parents=True, exist_ok=True)
                    load = os.getloadavg()[0]
                    result = bench.export(tree, env, force=False, spy=spy)
                    result["load"] = load
                    result["changes_digest"] = _changes_digest(var_dir, run_database)
                    result["files_digest"] = hashlib.sha256(
                        json.dumps({name: f["sha256"] for name, f in sorted(result["files"].items())}).encode()
                    ).hexdigest()[:12]
                    results[tree].append(result)
                    _say(f"  round {round_number + 1}, {tree.name}: {result['seconds']:.2f} s (load {load:.1f})")
                    if spy is not None:
                        _say(_spy_summary(spy))
    except BenchError as exc:
        raise SystemExit(f"incremental_bench: {exc}") from None
    finally:
        if args.keep:
            _say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _report(args, trees, results)


def _postgres_copy(server_url: str, template_url: str, name: str) -> str:
    """A fresh copy of the database at ``template_url`` (``CREATE DATABASE … TEMPLATE``); its URL."""
    import re
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    source = urlsplit(template_url).path.lstrip("/")
    database = re.sub(r"[^a-z0-9_]", "_", f"bench_{name}".lower())[:63]
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
        connection.execute(f'CREATE DATABASE "{database}" TEMPLATE "{source}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


def _report(args: argparse.Namespace, trees: list[Path], results: dict[Path, list[dict[str, Any]]]) -> None:
    print(f"\nIncremental export, 1 % changed, {args.size:,} objects; "
          f"{'PostgreSQL' if args.database_url else 'SQLite'}; rounds alternate the checkouts.")  # fmt: skip
    for tree in trees:
        print(f"\n{tree}")
        for number, result in enumerate(results[tree], 1):
            phases = {
                name: "+".join(f"{mb:.0f}" for mb in [p["own_mb"], *p["children_mb"]])
                for name, p in result.get("phases_mb", {}).items()
            }
            print(f"  round {number}: {result['seconds']:.2f} s wall, {result['cpu_seconds']:.2f} s CPU, "
                  f"load {result['load']:.1f}, peak {result['peak_mb']:.0f} MB, rss at setup "
                  f"{result['rss_before_mb']:.0f} MB")  # fmt: skip
            print(f"    steps {result['timings']}")
            print(f"    after-run {result['after_run']}")
            print(f"    phases' peaks, own + children MB {phases}")
            print(f"    counts {result['devices']} devices, {result['vms']} VMs, +{result['added']} "
                  f"~{result['changed']} -{result['removed']}; files {result['files_digest']}; "
                  f"{result['changes_digest']}")  # fmt: skip
    if len(trees) > 1:
        first = trees[0]
        for tree in trees[1:]:
            ratios = [b["seconds"] / a["seconds"] for a, b in zip(results[first], results[tree], strict=True)]
            cpu = [b["cpu_seconds"] / a["cpu_seconds"] for a, b in zip(results[first], results[tree], strict=True)]
            same = all(
                (a["files_digest"], a["changes_digest"], a["added"], a["changed"], a["removed"])
                == (b["files_digest"], b["changes_digest"], b["added"], b["changed"], b["removed"])
                for a, b in zip(results[first], results[tree], strict=True)
            )
            print(f"\n{tree.name} / {first.name}: wall {', '.join(f'{r:.2f}x' for r in ratios)}; "
                  f"CPU {', '.join(f'{r:.2f}x' for r in cpu)}; same files, counts and changes: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
