"""Reads of the CMDB: which export a view shows, its rows as a ``CmdbTable``, one page of a query, how fresh it is.

The table of a run is a file beside its merged CSV, written once (``cmdb.tablefiles``) and mapped by every
process: this process keeps the mappings of the newest ``CMDB_TABLES_KEPT`` tables it was asked about, keyed by the
run and the CSV's checksum (an older one is mapped again when asked for). Mapping costs milliseconds and the pages
are shared with every other process reading the same run; ``bench/cmdb_bench.py`` measures it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from cmdb.models import CmdbNamedView
from cmdb.query import NUMBER, Column, Query, QueryError
from cmdb.table import CmdbTable
from cmdb.tablefiles import TableBuilding, table_open
from exports.constants import MERGED_CSV
from exports.models import ExportArtifact, ExportChange, ExportRun
from exports.selectors import artifact_path, export_object_changes, export_run_last_success
from integrations.netbox.factory import netbox_object_url

CMDB_TABLES_KEPT = 2


class CmdbUnavailable(Exception):
    """There is no export to browse (none succeeded yet, the run is unknown or failed, or its file is gone)."""


class CmdbPreparing(Exception):
    """The run's table file is being built (a run from before it was written after each run); try again shortly."""


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
                table, _ = table_open(
                    artifact_path(artifact),
                    artifact.sha256,
                    wait=settings.CMDB_TABLE_BUILD_WAIT,
                    column_set=artifact.run.columns or None,
                )
            except FileNotFoundError:
                raise CmdbUnavailable(
                    f"The files of export #{artifact.run_id} are no longer on disk (pruned)."
                ) from None
            except TableBuilding:
                raise CmdbPreparing(
                    f"The CMDB of export #{artifact.run_id} is being prepared; try again in a minute."
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
    """Forget every table this process maps (tests)."""
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
    count, window = table.select_page(query, offset, limit)
    labels = [column.label for column in columns]
    keys = ["row_id", *(column.key for column in columns)]
    numbers = [(column.key, column) for column in columns if column.kind == NUMBER]
    results = []
    for index, values in zip(window.tolist(), table.rows_values(window, labels), strict=True):
        item: dict[str, Any] = dict(zip(keys, (table.row_id(index), *values), strict=True))
        for key, column in numbers:
            item[key] = cmdb_value(item[key], column)
        results.append(item)
    return CmdbPage(count=count, columns=columns, results=results)


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


def cmdb_facet(*, table: CmdbTable, query: Query, column: Column, limit: int) -> dict[str, Any]:
    """A column's values with their counts under every other condition of the query (``CmdbTable.facet``)."""
    values, distinct = table.facet(query, column.label, limit=limit)
    return {
        "column": column.key,
        "values": [{"value": value, "count": count} for value, count in values],
        "distinct": distinct,
    }


# --- an object's history -----------------------------------------------------------------------------------------

ROW_KINDS = {"devices": "device", "vms": "vm"}


@dataclass(frozen=True, slots=True)
class CmdbHistory:
    """One device or VM: its row in the newest export (``None`` once removed) and what every export changed."""

    row_id: str
    kind: str  # device or vm (ExportChange.Kind)
    netbox_id: int
    name: str
    netbox_url: str
    columns: list[Column]
    row: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    source: CmdbSource | None


def _object_of(identifier: str, dataset: str, table: CmdbTable | None) -> tuple[str, int]:
    """``(row kind, NetBox id)`` of ``devices-12``, ``vms-7`` or a bare NetBox id; ``QueryError`` otherwise."""
    text = identifier.strip()
    prefix, _, number = text.rpartition("-")
    if prefix in ROW_KINDS and number.isdigit() and len(number) <= 19:
        if dataset != "merged" and prefix != dataset:
            raise QueryError(f"{text} is not in the {dataset}.", field="id")
        return prefix, int(number)
    if not text.isdigit() or len(text) > 19:
        raise QueryError("Not a row id: use devices-<NetBox id>, vms-<NetBox id> or a NetBox id.", field="id")
    if dataset in ROW_KINDS:
        return dataset, int(text)
    if table is not None:
        index = table.find(dataset, text)  # ambiguous ids raise QueryError
        if index is not None:
            kind, _, _ = table.row_id(index).partition("-")
            return kind, int(text)
    kinds = {
        kind for kind in ExportChange.objects.filter(netbox_id=int(text)).values_list("kind", flat=True).distinct()
    }
    if len(kinds) > 1:
        raise QueryError(f"Both a device and a VM have id {text}; use devices-{text} or vms-{text}.", field="id")
    kind = next(iter(kinds), "device")
    return ("vms" if kind == "vm" else "devices"), int(text)


def cmdb_row_history(*, dataset: str, identifier: str) -> CmdbHistory | None:
    """Every column of one object now and its timeline across exports (added, each change old → new, removed),
    from the stored changes; ``None`` when neither the newest export nor any stored change knows it."""
    try:
        source: CmdbSource | None = cmdb_source()
    except CmdbUnavailable:
        source = None
    table = source.table if source else None
    prefix, netbox_id = _object_of(identifier, dataset, table)
    row_id = f"{prefix}-{netbox_id}"
    row = cmdb_row(table=table, dataset=dataset, identifier=row_id) if table is not None else None
    changes = list(export_object_changes(kind=ROW_KINDS[prefix], netbox_id=netbox_id))
    if row is None and not changes:
        return None
    timeline = [
        {
            "run": change.run_id,
            "finished": change.run.finished or change.run.created,
            "change": change.change,
            "name": change.name,
            "columns": {column: list(values) for column, values in (change.fields or {}).items()},
        }
        for change in changes
    ]
    name = str(row.get("name") or "") if row else ""
    return CmdbHistory(
        row_id=row_id,
        kind=ROW_KINDS[prefix],
        netbox_id=netbox_id,
        name=name or (changes[-1].name if changes else ""),
        netbox_url=cmdb_netbox_link(row_id=row_id),
        columns=table.columns(dataset) if table is not None else [],
        row=row,
        timeline=timeline,
        source=source,
    )


def cmdb_named_views(*, user: User, dataset: str | None = None) -> QuerySet[CmdbNamedView]:
    """The named views a user may pick: their own and those shared by anyone, by dataset and name."""
    views = CmdbNamedView.objects.filter(Q(owner=user) | Q(shared=True)).select_related("owner")
    if dataset:
        views = views.filter(dataset=dataset)
    return views.order_by("dataset", "name", "pk")


def cmdb_named_view_get(*, user: User, pk: int) -> CmdbNamedView | None:
    """One named view the user may see: their own, a shared one, or (for an admin, who may change any) anyone's."""
    named = CmdbNamedView.objects.select_related("owner").filter(pk=pk).first()
    if named is None:
        return None
    if named.owner_id == user.pk or named.shared or cmdb_named_view_can_edit(user=user, view=named):
        return named
    return None


def cmdb_named_view_can_edit(*, user: User, view: CmdbNamedView) -> bool:
    """The owner, or an admin (the admin role or a superuser)."""
    return view.owner_id == user.pk or user.is_superuser or (user.is_active and user.role == Role.ADMIN)
