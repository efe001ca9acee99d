"""Benchmark the column sets (issue 26): what 10 added custom-field columns cost on a full export, and what the
default set costs against main's code.

Usage: ``.venv/bin/python bench/columns_bench.py [--devices 20000] [--vms 30000] [--repeat 3] [--main /work/main]``

One fake NetBox (``devtools.netbox.FakeNetbox``, in a process of its own, as ``bench/export_bench.py`` runs it) and
three fresh SQLite databases, each migrated by the code that exports into it:

- ``default``: this code with the default column set (today's contract);
- ``custom``: this code with 10 custom-field columns added (5 to devices, 5 to VMs, of text, integer, date,
  select and boolean fields), set through ``column_set_replace`` (checked against the fake NetBox);
- ``main``: main's code (``--main``, a checkout of branch main; its own ``bench/export_bench.py --child export``),
  skipped with ``--main ''``.

Full exports (``force=True``) then run in turn, ``default``, ``custom``, ``main``, ``default``, ... ``--repeat``
times, each in a fresh process (``export_bench.py --child export``): taking them in turn keeps the ratios
meaningful while the shared machine's speed drifts. Printed: each variant's median wall and CPU time, and the
median of the pair-by-pair ratios custom/default (target: at most 1.10) and default/main (target: no measurable
cost, the spread of main against itself given for scale).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.export_bench import DEFAULT_TOKEN, BenchError, FakeNetboxProcess, _say  # noqa: E402

TARGET_CUSTOM_COST = 0.10

# 10 custom-field columns of the fake NetBox's fields (shared/netbox-sample/custom_fields.json).
CUSTOM = {
    "devices": [
        ("Backup policy", "cf:backup_policy"),  # text
        ("Cost center", "cf:cost_center"),  # integer
        ("Bought", "cf:HW_buy_date"),  # date
        ("Environment", "cf:environment"),  # select
        ("Monitored", "cf:monitored"),  # boolean
    ],
    "vms": [
        ("Backup policy", "cf:backup_policy"),
        ("Cost center", "cf:cost_center"),
        ("Environment", "cf:environment"),
        ("Monitored", "cf:monitored"),
        ("Disks", "cf:Virtual_Disks"),
    ],
}


def child_columns() -> dict[str, Any]:
    """Store the custom set in this process's database (``DJANGO_SETTINGS_MODULE`` and ``ENREACH_VAR_DIR`` set)."""
    import django

    django.setup()
    from accounts.audit import AuditContext
    from exports.column_sets import column_set_replace
    from exports.columns import ColumnSet

    default = ColumnSet().as_dict()
    data = {
        dataset: [*default[dataset], *({"header": h, "source": s} for h, s in CUSTOM[dataset])]
        for dataset in ("devices", "vms")
    }
    column_set = column_set_replace(data=data, by=AuditContext.cli())
    return {"devices": len(column_set.devices), "vms": len(column_set.vms)}


class Variant:
    """One database and the code that exports into it."""

    def __init__(self, name: str, root: Path, work: Path, url: str, token: str, secret: str) -> None:
        self.name, self.root = name, root
        self.var_dir = work / name
        self.var_dir.mkdir()
        self.url, self.token = url, token
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ENREACH_", "EXPORT_"))}
        for key in ("DATABASE_URL", "REDIS_URL", "NETBOX_EXTRA_HEADERS", "NETBOX_VERIFY_TLS"):
            env.pop(key, None)
        env.update(
            DJANGO_SETTINGS_MODULE="enreach.settings",
            ENREACH_VAR_DIR=str(self.var_dir),
            NETBOX_URL=url,
            NETBOX_TOKEN=token,
            DEBUG="false",
            SECRET_KEY=secret,
            PYTHONPATH=str(root),
        )
        self.env = env
        self.results: list[dict[str, Any]] = []

    def run(self, command: list[str], timeout: float) -> str:
        completed = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if completed.returncode:
            raise BenchError(f"{self.name}: {' '.join(command[1:3])} failed:\n{completed.stderr[-3000:]}")
        return completed.stdout

    def migrate(self) -> None:
        self.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], 600)

    def export(self, timeout: float) -> dict[str, Any]:
        command = [sys.executable, str(self.root / "bench" / "export_bench.py"), "--child", "export"]
        command += ["--url", self.url, "--token", self.token, "--force"]
        result: dict[str, Any] = json.loads(self.run(command, timeout).strip().splitlines()[-1])
        if result.get("status") != "succeeded":
            raise BenchError(f"{self.name}: the run {result.get('status')}: {result.get('error')}")
        self.results.append(result)
        return result


def _ratios(left: Variant, right: Variant) -> list[float]:
    return [a["seconds"] / b["seconds"] for a, b in zip(left.results, right.results, strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--vms", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3, help="full exports per variant, taken in turn")
    parser.add_argument("--main", default="/work/main", help="a checkout of main ('' to skip that variant)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per export")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "columns":
        print(json.dumps(child_columns()))
        return

    work = Path(tempfile.mkdtemp(prefix="columns-bench-"))
    secret = secrets.token_urlsafe(64)
    try:
        _say(f"starting the fake NetBox ({args.devices:,} devices, {args.vms:,} VMs) ...")
        with FakeNetboxProcess(
            devices=args.devices,
            vms=args.vms,
            token=DEFAULT_TOKEN,
            seed=1,
            start_timeout=60 + (args.devices + args.vms) / 1000,
        ) as netbox:
            variants = [
                Variant("default", ROOT, work, netbox.url, DEFAULT_TOKEN, secret),
                Variant("custom", ROOT, work, netbox.url, DEFAULT_TOKEN, secret),
            ]
            if args.main:
                variants.append(Variant("main", Path(args.main), work, netbox.url, DEFAULT_TOKEN, secret))
            for variant in variants:
                variant.migrate()
            variants[1].run([sys.executable, str(Path(__file__).resolve()), "--child", "columns"], 600)
            for round_number in range(1, max(1, args.repeat) + 1):
                for variant in variants:
                    result = variant.export(args.timeout)
                    _say(
                        f"  round {round_number} {variant.name:8} {result['seconds']:6.1f} s wall, "
                        f"{result['cpu_seconds']:6.1f} s CPU, {result['peak_mb']:5.0f} MB peak"
                    )
        report(variants)
    except BenchError as exc:
        raise SystemExit(f"columns_bench: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(variants: list[Variant]) -> None:
    by_name = {variant.name: variant for variant in variants}
    print(f"\nFull export, {len(variants[0].results)} run(s) per variant, in turn (median):")
    for variant in variants:
        seconds = statistics.median(r["seconds"] for r in variant.results)
        cpu = statistics.median(r["cpu_seconds"] for r in variant.results)
        write = statistics.median(r["timings"].get("write", 0.0) for r in variant.results)
        files = variant.results[-1]["files"]
        merged = files.get("netbox_merged_export.csv", {}).get("size", 0) / 1e6
        print(
            f"  {variant.name:8} {seconds:6.1f} s wall  {cpu:6.1f} s CPU  write step {write:5.1f} s  "
            f"merged CSV {merged:5.1f} MB"
        )
    custom = statistics.median(_ratios(by_name["custom"], by_name["default"]))
    verdict = "met" if custom <= 1 + TARGET_CUSTOM_COST else "MISSED"
    print(f"10 custom-field columns: custom/default = {custom:.3f} (target <= {1 + TARGET_CUSTOM_COST:.2f}: {verdict})")
    if "main" in by_name:
        default = statistics.median(_ratios(by_name["default"], by_name["main"]))
        print(f"default set against main's code: default/main = {default:.3f} (pair by pair, median)")
        main_times = [r["seconds"] for r in by_name["main"].results]
        if len(main_times) > 1:
            spread = (max(main_times) - min(main_times)) / statistics.median(main_times)
            print(f"  for scale, main's own spread across its runs: {spread:.1%}")
        same = {
            name: info["sha256"] == by_name["main"].results[-1]["files"].get(name, {}).get("sha256")
            for name, info in by_name["default"].results[-1]["files"].items()
            if name != "data_quality.csv"
        }
        print(f"  default set's files byte-identical to main's: {all(same.values())} {same}")


if __name__ == "__main__":
    main()
