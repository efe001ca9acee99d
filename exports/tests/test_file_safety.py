"""Files that protect by default: formula-like CSV cells neutralised, export files and the database private."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from pathlib import Path

from exports.csvfiles import write_csv
from exports.workbook import write_workbook

ROOT = Path(__file__).resolve().parents[2]


def test_excel_safe_neutralises_a_leading_tab_or_carriage_return(tmp_path: Path) -> None:
    path = tmp_path / "safe.csv"
    write_csv(path, ("a", "b", "c"), [("\t=1+1", "\r=cmd", "in\tside")], excel_safe=True)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[1] == ["'\t=1+1", "'\r=cmd", "in\tside"]


def test_export_files_are_created_readable_by_owner_and_group_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        files = [
            write_csv(tmp_path / "out.csv", ("a",), [("1",)]),
            write_workbook(tmp_path / "out.xlsx", ("a",), [("1",)]),
        ]
    finally:
        os.umask(old)
    assert [stat.S_IMODE(info.path.stat().st_mode) for info in files] == [0o640, 0o640]


def test_the_sqlite_database_file_is_private(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DEBUG": "true",
        "ENREACH_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "enreach.settings",
    }
    database = tmp_path / "enreach.sqlite3"
    database.touch(mode=0o644)
    os.chmod(database, 0o644)
    code = "import django; django.setup(); from django.db import connection; connection.ensure_connection()"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    new = tmp_path / "fresh"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "ENREACH_VAR_DIR": str(new)}, check=True)
    assert stat.S_IMODE((new / "enreach.sqlite3").stat().st_mode) == 0o600
