"""The merged CSV's row map: where each of an incremental run's merged CSV records is in the previous run's.

An incremental run copies the previous run's merged CSV records of the objects NetBox did not touch
(``exports.files._merged_items``: each kind's picks); the map says which, so that what was made from the previous
merged CSV (the CMDB table, ``cmdb.columnar.csv_write_mapped``) can be taken for those rows and made only for the
others. It lies beside the merged CSV (``.<name>.rowmap``) and goes with the run's row spools (``_rows_remove``).

The file: a header line, a JSON line (the merged CSV's SHA-256 and rows, the previous run's folder name and its
merged CSV's rows, the CRC-32 of the entries) and one little-endian ``int32`` per record: its record number in the
previous merged CSV (from 0, after the header), or -1 for a record made now. Pure: no Django.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exports.atomic import atomic_path

_MAGIC = b"enreach merged row map 1\n"


@dataclass(frozen=True, slots=True)
class RowMap:
    """A merged CSV's row map, read back (``row_map_read``)."""

    rows: np.ndarray  # int32: each record's record in the previous merged CSV, or -1
    sha256: str  # of the merged CSV it describes
    previous: str  # the previous run's folder name
    previous_rows: int  # how many records the previous merged CSV has


def row_map_path(csv_path: Path) -> Path:
    return csv_path.with_name(f".{csv_path.name}.rowmap")


def picked_rows(picks: np.ndarray, first: int) -> np.ndarray:
    """A kind's records in the previous merged CSV from its picks (``-1``: made now; else how many of the previous
    records to pass over before this one), its records starting at ``first`` there: -1 for a record made now."""
    picks = np.asarray(picks, dtype=np.int64)
    reused = picks >= 0
    steps = np.where(reused, picks + 1, 0)
    return np.where(reused, first + np.cumsum(steps) - 1, -1)


def row_map_write(csv_path: Path, rows: Any, *, sha256: str, previous: str, previous_rows: int) -> None:
    """Write the map of the merged CSV at ``csv_path`` (``sha256``): ``rows`` as ``RowMap.rows``."""
    entries = np.asarray(rows, dtype=np.int64)
    if len(entries) and (entries.max() >= previous_rows or entries.min() < -1):
        raise ValueError("a row map entry past the previous merged CSV")
    data = entries.astype("<i4").tobytes()
    meta = {
        "sha256": sha256,
        "rows": len(entries),
        "previous": previous,
        "previous_rows": previous_rows,
        "crc": zlib.crc32(data),
    }
    with atomic_path(row_map_path(csv_path)) as temp, open(temp, "xb") as out:
        out.write(_MAGIC + json.dumps(meta).encode() + b"\n")
        out.write(data)


def row_map_read(csv_path: Path) -> RowMap | None:
    """The map beside the merged CSV at ``csv_path`` when it is there and whole, else ``None``."""
    try:
        with open(row_map_path(csv_path), "rb") as handle:
            if handle.readline() != _MAGIC:
                return None
            meta = json.loads(handle.readline())
            data = handle.read()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or len(data) % 4 or zlib.crc32(data) != meta.get("crc"):
        return None
    rows = np.frombuffer(data, dtype="<i4").astype(np.int32)
    sha256, previous, previous_rows = meta.get("sha256"), meta.get("previous"), meta.get("previous_rows")
    if meta.get("rows") != len(rows) or not isinstance(sha256, str) or not isinstance(previous, str):
        return None
    if not isinstance(previous_rows, int):
        return None
    return RowMap(rows=rows, sha256=sha256, previous=previous, previous_rows=previous_rows)
