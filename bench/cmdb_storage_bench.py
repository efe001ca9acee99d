"""Why the CMDB table is an Arrow IPC file: the same table as a DuckDB database file, measured side by side.

Usage::

    .venv/bin/python bench/cmdb_storage_bench.py [--rows 500000] [--repeat 20] [--keep]

One merged CSV (``--rows``, 40 % devices, 60 % VMs, scaled by ``devtools.cmdbdata`` from the merged CSV of a real
export of the fake NetBox: ``--template``, or one made here with 2,000 + 3,000 objects) is stored both ways:

- **arrow**: the production file (``cmdb.columnar``): per column the codes and the distinct values with their
  folded text, sort rank and flags; queried by ``cmdb.table`` over the mapping.
- **duckdb**: a DuckDB database file with one table holding, per CSV column, the cell (``VARCHAR``), its folded
  text (``VARCHAR``, from the Arrow build, so both answer the same matches) and its sort rank (``INTEGER``, ditto);
  queried with SQL (``LIKE`` on the folded columns, ``ORDER BY`` the ranks, ``LIMIT 50``) on a read-only connection.

For each, two fresh processes (no Django: the storage alone) open the file and run the same three queries as the
rows API: the first page of 50 rows with the count, a filtered + sorted page (site contains ``fra``, status equals
``active``, by tenant then name descending), and a global search (eight terms in turn, every column). Printed: the
build time and file size, each process's first query (open included), first filtered + sorted page and first
search, warm p50/p95 of the first process, and the private memory (``Private_Clean + Private_Dirty`` of
``smaps_rollup``) each of the two processes adds, measured once both ran everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SEARCH_TERMS = ("fra1-srv", "stark", "10.2.", "db-prd", "zürich", "e", "acme retail", "proxmox-cl01")
TYPE_COLUMN = "netbox_type"


def _private_mb(pid: int) -> float:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0])
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _template(work: Path) -> Path:
    """The merged CSV of a real export of the fake NetBox (in a throwaway Django project directory)."""
    import secrets

    os.environ.update(
        DJANGO_SETTINGS_MODULE="enreach.settings",
        ENREACH_VAR_DIR=str(work / "var"),
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        LOG_LEVEL="WARNING",
        STATIC_ROOT=str(work / "static"),
    )
    for name in ("DATABASE_URL", "REDIS_URL", "ENREACH_DATA_DIR"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from devtools.netbox import FakeNetbox
    from exports.models import ExportRun
    from exports.selectors import artifact_path
    from exports.services import export_run_execute, export_run_request

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    with FakeNetbox(devices=2000, vms=3000) as server:
        settings.NETBOX_URL, settings.NETBOX_TOKEN = server.url, server.token
        run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND, force=True)
        run = export_run_execute(run=run)
    template = work / "template.csv"
    shutil.copyfile(artifact_path(run.artifacts.get(name="netbox_merged_export.csv")), template)
    return template


def _build_arrow(csv_path: Path, target: Path) -> float:
    from cmdb.columnar import csv_read, table_write

    started = time.perf_counter()
    labels, columns = csv_read(csv_path)
    table_write(target, labels, columns)
    return time.perf_counter() - started


def _build_duckdb(arrow_path: Path, target: Path) -> float:
    """The DuckDB file, from the Arrow file's per-row cells, folded cells and ranks (so both answer alike)."""
    import duckdb
    import pyarrow as pa

    from cmdb.table import CmdbTable

    started = time.perf_counter()
    table = CmdbTable.open(arrow_path)
    arrays: dict[str, pa.Array] = {"row_number": pa.array(range(table.size), type=pa.int64())}
    for index, label in enumerate(table.labels):
        data = table._data[label]
        codes = data.codes
        arrays[f"c{index}"] = pa.array(data.take(codes), type=pa.string())
        arrays[f"f{index}"] = pa.array(data.folded_of(codes), type=pa.string())
        arrays[f"r{index}"] = pa.array(data.rank_up[codes], type=pa.int32())
    frame = pa.table(arrays)  # noqa: F841 (DuckDB reads it by its name)
    connection = duckdb.connect(str(target))
    connection.execute("CREATE TABLE cmdb AS SELECT * FROM frame ORDER BY row_number")
    connection.execute("CHECKPOINT")
    connection.close()
    return time.perf_counter() - started


# --- the query processes -----------------------------------------------------------------------------------------


class ArrowQueries:
    """The rows API's three queries over the mapped file, as ``cmdb.selectors.cmdb_page`` runs them."""

    def __init__(self, path: str) -> None:
        from cmdb.table import CmdbTable

        self.table = CmdbTable.open(path)

    def page(self, query: Any) -> int:
        rows = self.table.select(query)
        window = rows[:50]
        list(self.table.rows_values(window, self.table.labels))
        [self.table.row_id(int(row)) for row in window]
        return len(rows)

    def first_page(self) -> int:
        from cmdb.query import Query

        return self.page(Query())

    def filtered(self) -> int:
        from cmdb.query import Filter, Query

        return self.page(
            Query(
                filters=(Filter("Site", "contains", "fra"), Filter("Status", "eq", "active")),
                ordering=("Tenant", "-Name"),
            )
        )

    def search(self, term: str) -> int:
        from cmdb.query import Query

        return self.page(Query(search=term))


class DuckdbQueries:
    """The same three queries in SQL over the DuckDB file (read-only connection)."""

    def __init__(self, path: str) -> None:
        import duckdb

        self.connection = duckdb.connect(path, read_only=True)
        columns = [row[0] for row in self.connection.execute("DESCRIBE cmdb").fetchall()]
        self.cells = [name for name in columns if name.startswith("c")]
        labels = json.loads(Path(path).with_suffix(".labels.json").read_text())
        self.index = {label: position for position, label in enumerate(labels)}
        self.searched = [f"f{position}" for label, position in self.index.items() if label != TYPE_COLUMN]

    def page(self, where: str, order: str, parameters: list[Any]) -> int:
        count = self.connection.execute(f"SELECT count(*) FROM cmdb WHERE {where}", parameters).fetchone()[0]
        self.connection.execute(
            f"SELECT {', '.join(self.cells)} FROM cmdb WHERE {where} ORDER BY {order} LIMIT 50",
            parameters,
        ).fetchall()
        return int(count)

    def first_page(self) -> int:
        return self.page("TRUE", "row_number", [])

    def filtered(self) -> int:
        site, status = self.index["Site"], self.index["Status"]
        tenant, name = self.index["Tenant"], self.index["Name"]
        return self.page(
            f"f{site} LIKE ? AND trim(f{status}) = ?", f"r{tenant}, r{name} DESC, row_number", ["%fra%", "active"]
        )

    def search(self, term: str) -> int:
        needle = term.casefold()
        where = " AND ".join(
            "(" + " OR ".join(f"contains({column}, ?)" for column in self.searched) + ")" for _ in needle.split()
        )
        parameters = [word for word in needle.split() for _ in self.searched]
        return self.page(where, "row_number", parameters)


def _worker(kind: str, path: str) -> None:
    queries: Any = None
    for line in sys.stdin:
        command = json.loads(line)
        answer: dict[str, Any] = {}
        if command["cmd"] == "quit":
            print("{}", flush=True)
            return
        if command["cmd"] == "firsts":
            started = time.perf_counter()
            queries = ArrowQueries(path) if kind == "arrow" else DuckdbQueries(path)
            count = queries.first_page()
            answer["first query"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            queries.filtered()
            answer["first filtered + sorted page"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            queries.search("stark")
            answer["first search"] = (time.perf_counter() - started) * 1000
            answer["rows"] = count
        elif command["cmd"] == "warm":
            for name, call in (("first page", queries.first_page), ("filtered + sorted", queries.filtered)):
                times = []
                for _ in range(command["repeat"]):
                    started = time.perf_counter()
                    call()
                    times.append((time.perf_counter() - started) * 1000)
                answer[name] = (statistics.median(times), _percentile(times, 0.95))
            times = []
            for index in range(command["repeat"]):
                started = time.perf_counter()
                queries.search(SEARCH_TERMS[index % len(SEARCH_TERMS)])
                times.append((time.perf_counter() - started) * 1000)
            answer["search"] = (statistics.median(times), _percentile(times, 0.95))
        print(json.dumps(answer), flush=True)


class Process:
    def __init__(self, kind: str, path: Path) -> None:
        args = [sys.executable, __file__, "--worker", kind, str(path)]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        self.process = subprocess.Popen(args, cwd=ROOT, text=True, **pipes)  # type: ignore[call-overload]
        self.pid = self.process.pid
        time.sleep(0.5)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"process {self.pid} died")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.ask({"cmd": "quit"})
        self.process.wait(timeout=30)


def _measure(kind: str, path: Path, repeat: int) -> dict[str, float]:
    first, second = Process(kind, path), Process(kind, path)
    try:
        baseline = {process.pid: _private_mb(process.pid) for process in (first, second)}
        firsts = first.ask({"cmd": "firsts"})
        second.ask({"cmd": "firsts"})
        warm = first.ask({"cmd": "warm", "repeat": repeat})
        second.ask({"cmd": "warm", "repeat": repeat})
        added = [_private_mb(process.pid) - baseline[process.pid] for process in (first, second)]
    finally:
        first.close()
        second.close()
    return {
        **{name: firsts[name] for name in ("first query", "first filtered + sorted page", "first search")},
        **{f"{name} p50": warm[name][0] for name in ("first page", "filtered + sorted", "search")},
        **{f"{name} p95": warm[name][1] for name in ("first page", "filtered + sorted", "search")},
        "process 1 private MB added": added[0],
        "process 2 private MB added": added[1],
        "rows": firsts["rows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--template", type=Path, help="a merged CSV to scale (default: a fresh fake-NetBox export)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return
    from cmdb.columnar import csv_read
    from devtools.cmdbdata import merged_csv_scale

    work = Path(tempfile.mkdtemp(prefix="cmdb-storage-"))
    try:
        template = args.template or _template(work)
        csv_path = work / "merged.csv"
        devices = args.rows * 2 // 5
        merged_csv_scale(template, csv_path, devices=devices, vms=args.rows - devices)
        arrow_path, duckdb_path = work / "cmdb_table.arrow", work / "cmdb.duckdb"
        results: dict[str, dict[str, float]] = {"arrow": {}, "duckdb": {}}
        results["arrow"]["build s"] = _build_arrow(csv_path, arrow_path)
        results["duckdb"]["build s"] = _build_duckdb(arrow_path, duckdb_path) + results["arrow"]["build s"]
        duckdb_path.with_suffix(".labels.json").write_text(json.dumps(csv_read(csv_path)[0]))
        results["arrow"]["file MB"] = arrow_path.stat().st_size / 1e6
        results["duckdb"]["file MB"] = duckdb_path.stat().st_size / 1e6
        for kind, path in (("arrow", arrow_path), ("duckdb", duckdb_path)):
            results[kind].update(_measure(kind, path, args.repeat))
            print(f"{kind} measured", flush=True)
        if results["arrow"]["rows"] != results["duckdb"]["rows"]:
            raise SystemExit("the two stores counted different rows")
        print(f"\n{args.rows:,} rows (times in ms; DuckDB's build includes the Arrow build it is made from)")
        print(f"{'':<32}{'arrow (mapped)':>16}{'duckdb':>16}{'duckdb/arrow':>14}")
        for name in results["arrow"]:
            a, d = results["arrow"][name], results["duckdb"][name]
            print(f"{name:<32}{a:>16,.1f}{d:>16,.1f}{(d / a if a else 0):>14.1f}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
