"""Functions run in separate worker processes by the table file tests (importable without Django)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cmdb import tablefiles
from cmdb.query import Query


def open_table(csv_path: str, sha256: str, barrier: Any, results: Any) -> None:
    """Wait for the other worker, then open (or build) the table and report what it answered."""
    barrier.wait()
    table, built = tablefiles.table_open(Path(csv_path), sha256)
    rows = table.select(Query(search="fra1", ordering=("-Name",)))
    results.put((os.getpid(), built, table.size, rows[:20].tolist()))
