"""The operator's column sets (``exports.columns.ColumnSet``): reading the current one, checking a proposed one
against NetBox, replacing one (all or nothing, audited) and previewing one on the stored snapshots.

The services behind every door (the API's ``/api/exports/columns/``, the admin's column set page): each door parses
its input into the ``{"devices": [...], "vms": [...]}`` shape and calls ``column_set_replace`` or
``column_set_preview``. A custom field's existence and type come from NetBox's definitions through the
``netbox_custom_fields`` cache; the preview reads only what is stored (snapshots, the latest run's files).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.audit import AuditContext, audit_record
from exports import transform
from exports.columns import (
    COLUMN_TYPES,
    CONTRACT_PREFIX,
    CUSTOM_FIELD_PREFIX,
    DATASETS,
    DEFAULT_SET,
    DEVICES,
    VMS,
    Column,
    ColumnSet,
    ColumnSetInvalid,
    column_set_problems,
    contract_type,
    merged_problems,
)
from exports.models import ColumnSet as ColumnSetRow
from exports.models import ContactSnapshot, ExportArtifact, ExportRun, NetboxSnapshot
from integrations.exceptions import IntegrationError
from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    VM_OBJECT_TYPE,
    DeviceRecord,
    VirtualMachineRecord,
    device_from_dict,
    snapshot_outdated,
    virtual_machine_from_dict,
)
from integrations.services import netbox_custom_fields_cached, netbox_custom_fields_get

PREVIEW_ROWS = 20
OBJECT_TYPES = {DEVICES: DEVICE_OBJECT_TYPE, VMS: VM_OBJECT_TYPE}
_KEYS = frozenset(("header", "source", "type", "visible"))


def column_set_current() -> ColumnSet:
    """The column set exports use now: the stored datasets, the default for a dataset never set."""
    stored = dict(ColumnSetRow.objects.values_list("dataset", "columns"))
    return ColumnSet.from_dict({dataset: stored.get(dataset) for dataset in DATASETS})


def _parse(dataset: str, entries: Any) -> tuple[list[Column], list[str]]:
    """A dataset's entries as columns; the problems of their shape. A contract column's type defaults to its own,
    a custom field's comes from NetBox, a path's defaults to text."""
    if not isinstance(entries, list):
        return [], [f"{dataset}: a list of columns is expected"]
    columns: list[Column] = []
    problems: list[str] = []
    for position, entry in enumerate(entries, start=1):
        where = f"{dataset} column {position}"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: an object with header, source, type and visible is expected")
            continue
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        header, source = entry.get("header"), entry.get("source")
        if not isinstance(header, str) or not isinstance(source, str):
            problems.append(f"{where}: header and source are text")
            continue
        kind = entry.get("type")
        if kind is None or kind == "":
            kind = contract_type(source.removeprefix(CONTRACT_PREFIX)) if source.startswith(CONTRACT_PREFIX) else "text"
        if not isinstance(kind, str):
            problems.append(f"{where}: type is one of {', '.join(COLUMN_TYPES)}")
            continue
        visible = entry.get("visible", True)
        if not isinstance(visible, bool):
            problems.append(f"{where}: visible is true or false")
            continue
        columns.append(Column(header=header, source=source, type=kind, visible=visible))
    return columns, problems


def column_set_check(data: Mapping[str, Any], *, base: ColumnSet | None = None) -> ColumnSet:
    """The column set ``data`` proposes (``{"devices": [...], "vms": [...]}``, a dataset left out stays as in
    ``base``, the current set by default), checked: raises ``ColumnSetInvalid`` naming every problem. Custom
    fields are checked against NetBox's definitions for the object type (``IntegrationError`` when NetBox cannot
    say and a ``cf:`` column needs it)."""
    unknown = sorted(set(data) - set(DATASETS))
    if unknown:
        raise ColumnSetInvalid([f"unknown dataset(s) {', '.join(unknown)}; use devices and vms"])
    if not data:
        raise ColumnSetInvalid(["give the columns of devices, vms or both"])
    current = base if base is not None else column_set_current()
    proposed = {dataset: current.of(dataset) for dataset in DATASETS}
    problems: list[str] = []
    definitions: dict[str, dict[str, str]] | None = None
    for dataset in DATASETS:
        if dataset not in data:
            continue
        columns, shape_problems = _parse(dataset, data[dataset])
        problems += shape_problems
        custom_fields = None
        if any(column.source.startswith(CUSTOM_FIELD_PREFIX) for column in columns):
            if definitions is None:
                definitions = netbox_custom_fields_cached()
            custom_fields = definitions.get(OBJECT_TYPES[dataset], {})
        found, checked = column_set_problems(dataset, columns, custom_fields)
        problems += found
        proposed[dataset] = checked
    column_set = ColumnSet(devices=proposed[DEVICES], vms=proposed[VMS])
    problems += merged_problems(column_set)
    if problems:
        raise ColumnSetInvalid(problems)
    return column_set


def column_set_replace(*, data: Mapping[str, Any], by: AuditContext) -> ColumnSet:
    """Replace the column set of the datasets in ``data``, all or nothing, once every column is checked
    (``column_set_check``); audited with who, from which door, and the columns before and after. The next export
    writes its files with it (a changed set rewrites them, a new ``field:`` path makes it a full run)."""
    before = column_set_current()
    column_set = column_set_check(data, base=before)
    with transaction.atomic():
        for dataset in DATASETS:
            if dataset not in data:
                continue
            columns = column_set.of(dataset)
            stored = [column.as_dict() for column in columns]
            if columns == DEFAULT_SET.of(dataset):
                ColumnSetRow.objects.filter(dataset=dataset).delete()  # the default is no row
            else:
                ColumnSetRow.objects.update_or_create(
                    dataset=dataset, defaults={"columns": stored, "updated_by": by.user}
                )
        audit_record(
            by=by,
            action="columns.replace",
            target=", ".join(dataset for dataset in DATASETS if dataset in data),
            detail={
                "before": {d: [c.as_dict() for c in before.of(d)] for d in DATASETS if d in data},
                "after": {d: [c.as_dict() for c in column_set.of(d)] for d in DATASETS if d in data},
            },
        )
    return column_set


def column_set_preview(*, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The first ``PREVIEW_ROWS`` rows of each dataset under the proposed set (checked as ``column_set_check``),
    from the stored snapshots: no NetBox round trip for the objects. ``{"devices": {"columns": [...], "rows":
    [[...], ...]}, "vms": ...}``; no rows before a first export."""
    column_set = column_set_check(data)
    lookups = _stored_lookups()
    preview: dict[str, dict[str, Any]] = {}
    for dataset, kind, from_dict, row_of in (
        (DEVICES, NetboxSnapshot.Kind.DEVICE, device_from_dict, transform.device_row_planned),
        (VMS, NetboxSnapshot.Kind.VM, virtual_machine_from_dict, transform.vm_row_planned),
    ):
        plan = transform.row_plan(column_set, dataset)
        stored = list(
            NetboxSnapshot.objects.filter(kind=kind).order_by("netbox_id").values_list("data", flat=True)[:PREVIEW_ROWS]
        )
        records = [from_dict(data) for data in stored if not snapshot_outdated(_RECORD_TYPES[kind], data)]
        dataset_lookups = _lookups_from_files(lookups, dataset, records)
        rows = [list(row_of(record, dataset_lookups, plan)) for record in records]  # type: ignore[arg-type]
        preview[dataset] = {"columns": list(plan.columns), "rows": rows}
    return preview


_RECORD_TYPES: dict[str, type] = {
    NetboxSnapshot.Kind.DEVICE: DeviceRecord,
    NetboxSnapshot.Kind.VM: VirtualMachineRecord,
}


def _stored_lookups() -> dict[tuple[str, int], str]:
    """The Contacts cells the last run rendered (its contact snapshot)."""
    snapshot = ContactSnapshot.objects.first()
    if snapshot is None:
        return {}
    contacts: dict[tuple[str, int], str] = {}
    for key, text in snapshot.contacts.items():
        object_type, _, object_id = key.rpartition(":")
        contacts[(object_type, int(object_id))] = text
    return contacts


# The contract columns a row takes from the lookups rather than its record: read back from the latest files.
_JOINED = ("Region", "Site Group", "Tenant Group")


def _lookups_from_files(
    contacts: dict[tuple[str, int], str], dataset: str, records: Sequence[Any]
) -> transform.Lookups:
    """Lookups for the preview's records: the contacts from their snapshot; region, site group and tenant group as
    the latest run's CSV of the dataset wrote them for the same objects (no NetBox round trip)."""
    cells = _latest_cells(dataset, {record.id for record in records})
    sites: dict[int, tuple[str, str]] = {}
    tenant_groups: dict[int, str] = {}
    for record in records:
        row = cells.get(record.id, {})
        if record.site_id is not None:
            sites.setdefault(record.site_id, (row.get("Region", ""), row.get("Site Group", "")))
        if record.tenant_id is not None:
            tenant_groups.setdefault(record.tenant_id, row.get("Tenant Group", ""))
    return transform.Lookups(sites=sites, tenant_groups=tenant_groups, contacts=contacts)


def _latest_cells(dataset: str, ids: set[int]) -> dict[int, dict[str, str]]:
    """``id -> {contract name: cell}`` of the joined columns, for these objects, from the latest successful run's
    CSV of the dataset (its own column set says which header holds which contract column)."""
    run = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED).order_by("-finished").first()
    kind = ExportArtifact.Kind.DEVICES if dataset == DEVICES else ExportArtifact.Kind.VMS
    artifact = run.artifacts.filter(kind=kind).first() if run is not None else None
    if run is None or artifact is None:
        return {}
    used = ColumnSet.from_dict(run.columns or {})
    header_of = {column.name: column.header for column in used.visible(dataset) if column.prefix == CONTRACT_PREFIX}
    path = Path(settings.DATA_DIR) / artifact.path
    found: dict[int, dict[str, str]] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                raw = row.get(header_of.get("ID", "ID")) or ""
                if raw.isdigit() and int(raw) in ids:
                    found[int(raw)] = {name: row.get(header_of.get(name, ""), "") or "" for name in _JOINED}
                    if len(found) == len(ids):
                        break
    except OSError:
        return {}
    return found


def column_set_for_run() -> ColumnSet:
    """The current column set as a run writes it: a ``cf:`` column whose custom field NetBox no longer has (deleted
    since the set was saved) is written empty (``ColumnSet.absent``; the run's log says so, ``column_set_notes``),
    and the run goes on. NetBox's definitions are read fresh (one small request), only when the set has ``cf:``
    columns; when NetBox cannot say, nothing is taken as absent (the fetch that follows reports NetBox's state)."""
    column_set = column_set_current()
    wanted = {dataset: column_set.custom_fields(dataset) for dataset in DATASETS}
    if not any(wanted.values()):
        return column_set
    try:
        definitions = netbox_custom_fields_get()
    except IntegrationError:
        return column_set
    absent = frozenset(
        (dataset, name)
        for dataset, names in wanted.items()
        for name in names
        if name not in definitions.get(OBJECT_TYPES[dataset], {})
    )
    return dataclasses.replace(column_set, absent=absent) if absent else column_set


def column_set_notes(column_set: ColumnSet) -> list[str]:
    """The run log's lines about the set: the custom fields NetBox no longer has, whose columns are empty."""
    notes = []
    for dataset in DATASETS:
        missing = sorted(name for kind, name in column_set.absent if kind == dataset)
        if missing:
            label = "devices" if dataset == DEVICES else "VMs"
            notes.append(
                f"NetBox has no custom field {', '.join(missing)} for {label} any more: "
                "its column is empty in this run's files."
            )
    return notes
