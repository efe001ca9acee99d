"""Reads of the CMDB: which export a view shows, its rows as a ``CmdbTable``, one page of a query, how fresh it is.

The table of a run is built from the run's merged CSV on first use and kept in memory by this process, keyed by
the run and the file's checksum (the newest ``CMDB_TABLES_KEPT`` tables stay; an older one is rebuilt when asked
for again). Measured in ``bench/cmdb_bench.py``: building one at 20,000 devices + 30,000 VMs takes about half a
second and holds about 90 MB (150 MB once the global search has been used); a query then takes milliseconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from cmdb.query import NUMBER, Column, Query, QueryError
from cmdb.table import CmdbTable
from exports.columns import ColumnSet
from exports.constants import MERGED_CSV
from exports.models import ExportArtifact, ExportRun
from exports.selectors import artifact_path, export_run_last_success
from integrations.netbox.factory import netbox_object_url

CMDB_TABLES_KEPT = 2


class CmdbUnavailable(Exception):
    """There is no export to browse (none succeeded yet, the run is unknown or failed, or its file is gone)."""


@dataclass(frozen=True, slots=True)
class CmdbSource:
    """The export a table comes from."""

    run: ExportRun
    artifact: ExportArtifact
    table: CmdbTable


@dataclass(frozen=True, slots=True)
class CmdbPage:
    """One page of a query: the total number of matches, the columns shown and the rows (``{key: value}``)."""

    count: int
    columns: list[Column]
    results: list[dict[str, Any]]


_tables: OrderedDict[tuple[int, str], CmdbTable] = OrderedDict()
_tables_lock = threading.Lock()
_building: dict[tuple[int, str], threading.Lock] = {}


def cmdb_source(*, run_id: int | None = None) -> CmdbSource:
    """The table of run ``run_id``, or of the newest successful export; ``CmdbUnavailable`` when there is none."""
    if run_id is None:
        run = export_run_last_success()
        if run is None:
            raise CmdbUnavailable("No successful export yet: run an export first.")
    else:
        found = ExportRun.objects.filter(pk=run_id).first()
        if found is None:
            raise CmdbUnavailable(f"There is no export #{run_id}.")
        if found.status != ExportRun.Status.SUCCEEDED:
            raise CmdbUnavailable(f"Export #{run_id} did not succeed ({found.status}): it has no rows to show.")
        run = found
    artifact = run.artifacts.filter(name=MERGED_CSV).first()
    if artifact is None:
        raise CmdbUnavailable(f"Export #{run.pk} has no merged CSV.")
    return CmdbSource(run=run, artifact=artifact, table=_table(artifact))


def _table(artifact: ExportArtifact) -> CmdbTable:
    key = (artifact.run_id, artifact.sha256)
    with _tables_lock:
        table = _tables.get(key)
        if table is not None:
            _tables.move_to_end(key)
            return table
        building = _building.setdefault(key, threading.Lock())
    # One thread builds a table; others asking for the same one wait for it instead of building it again.
    with building:
        with _tables_lock:
            table = _tables.get(key)
        if table is None:
            try:
                used = ColumnSet.from_dict(artifact.run.columns or {})
                table = CmdbTable.from_csv(artifact_path(artifact), used)
            except FileNotFoundError:
                raise CmdbUnavailable(
                    f"The files of export #{artifact.run_id} are no longer on disk (pruned)."
                ) from None
            finally:
                with _tables_lock:
                    _building.pop(key, None)
            with _tables_lock:
                _tables[key] = table
                while len(_tables) > CMDB_TABLES_KEPT:
                    _tables.popitem(last=False)
    return table


def cmdb_tables_clear() -> None:
    """Forget every table this process holds (tests)."""
    with _tables_lock:
        _tables.clear()


def cmdb_columns_pick(table: CmdbTable, dataset: str, keys: list[str] | None) -> list[Column]:
    """The dataset's columns named by ``keys`` (in that order), or all of them; ``QueryError`` for unknown keys."""
    columns = table.columns(dataset)
    if not keys:
        return columns
    by_key = {column.key: column for column in columns}
    unknown = [key for key in keys if key not in by_key]
    if unknown:
        raise QueryError(f"Unknown column(s) {', '.join(unknown)}; choose among: {', '.join(by_key)}.", field="fields")
    return [by_key[key] for key in dict.fromkeys(keys)]


def cmdb_value(text: str, column: Column) -> Any:
    """A cell as JSON: number columns as numbers (``None`` when blank), other columns as text."""
    if column.kind == NUMBER:
        if not text.strip():
            return None
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    return text


def cmdb_page(*, table: CmdbTable, query: Query, columns: list[Column], offset: int, limit: int) -> CmdbPage:
    """Rows ``offset`` to ``offset + limit`` of the query's matches, with the given columns and a ``row_id``."""
    rows = table.select(query)
    window = rows[offset : offset + limit]
    labels = [column.label for column in columns]
    results = []
    for index, values in zip(window.tolist(), table.rows_values(window, labels), strict=True):
        item: dict[str, Any] = {"row_id": table.row_id(index)}
        item.update((column.key, cmdb_value(text, column)) for column, text in zip(columns, values, strict=True))
        results.append(item)
    return CmdbPage(count=len(rows), columns=columns, results=results)


def cmdb_row(*, table: CmdbTable, dataset: str, identifier: str) -> dict[str, Any] | None:
    """Every column of one row of the dataset (``{key: value}`` plus ``row_id``), or ``None``."""
    index = table.find(dataset, identifier)
    if index is None:
        return None
    columns = table.columns(dataset)
    item: dict[str, Any] = {"row_id": table.row_id(index)}
    item.update((column.key, cmdb_value(table.cell(index, column.label), column)) for column in columns)
    return item


def cmdb_netbox_link(*, row_id: str) -> str:
    """The object's page in NetBox for a row id such as ``devices-12``, or ``""`` without a NetBox URL."""
    kind, _, number = row_id.partition("-")
    return netbox_object_url(kind=kind, object_id=number)


def export_schedule_interval() -> timedelta | None:
    """How often ``EXPORT_SCHEDULE`` promises an export (the gap between its next two times); ``None`` unscheduled."""
    value = (settings.EXPORT_SCHEDULE or "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(minutes=int(value))
    try:
        from croniter import croniter

        schedule = croniter(value, timezone.now())
        first = schedule.get_next(datetime)
        return schedule.get_next(datetime) - first
    except (ValueError, KeyError):
        return None


def cmdb_freshness(run: ExportRun) -> dict[str, Any]:
    """How old the export is, and whether it is older than the schedule promises (one interval plus the time a run
    may take, ``EXPORT_STALE_AFTER``)."""
    finished = run.finished or run.created
    age = timezone.now() - finished
    interval = export_schedule_interval()
    stale = bool(interval and age > interval + timedelta(seconds=settings.EXPORT_STALE_AFTER))
    return {
        "run": run.pk,
        "finished": finished,
        "age_seconds": max(0, int(age.total_seconds())),
        "schedule_seconds": int(interval.total_seconds()) if interval else None,
        "stale": stale,
    }


def cmdb_rows_all(*, table: CmdbTable, query: Query) -> np.ndarray:
    """Every matching row, in order (downloads)."""
    return table.select(query)


def cmdb_table_warm(run: ExportRun) -> str:
    """The after-run step (``exports.afterrun``, order 150): build the new run's table now, in the process that ran
    the export, so that a mistake in its merged CSV shows on the run and the first look-up here does not wait."""
    source = cmdb_source(run_id=run.pk)
    return f"CMDB table of {source.table.size:,} rows ready"
