"""NetBox records -> CMDB rows, in the operators' column order (``exports.columns``: the contract, or the operator's
column set), each cell rendered by ``exports.render``; and rows rearranged between column orders.

A row is a function of (record, lookups, row plan): ``RowPlan.of(column_set, dataset)`` compiles a column set once
per run; with the default set the contract's row is the row, untouched.

Pure functions: no Django, no I/O. Every row is a tuple in exactly its columns' order. Rows are sorted by NetBox id,
so the same records in any order give identical rows (incremental and full exports must produce byte-identical
files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from exports.columns import (
    CONTRACT,
    CONTRACT_PREFIX,
    CUSTOM_FIELD_PREFIX,
    DEFAULT_SET,
    DEVICE_CUSTOM_FIELD_COLUMNS,
    DEVICE_TYPE_VALUE,
    DEVICES,
    VM_CUSTOM_FIELD_COLUMNS,
    VM_TYPE_VALUE,
    VMS,
    ColumnSet,
)
from exports.render import (
    Cell,
    Row,
    contacts_by_object,
    custom_fields_normalised,
    normalise_name,
    render_custom_field,
    render_number,
    render_rack_position,
    render_tags,
    render_timestamp,
    render_typed,
)
from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    VM_OBJECT_TYPE,
    ContactAssignmentRecord,
    DeviceRecord,
    SiteRecord,
    TenantRecord,
    VirtualMachineRecord,
)

_VIRTUAL_DISKS_KEY = normalise_name("Virtual Disks")
_DEVICE_CF_KEYS = tuple(normalise_name(c) for c in DEVICE_CUSTOM_FIELD_COLUMNS)
_VM_CF_KEYS = tuple(normalise_name(c) for c in VM_CUSTOM_FIELD_COLUMNS)


@dataclass(frozen=True, slots=True)
class Lookups:
    """The joins a device or VM row needs beyond its own record, keyed for O(1) access.

    ``sites``: site id -> (region, site group). ``tenant_groups``: tenant id -> tenant group.
    ``contacts``: (object type, object id) -> the rendered Contacts cell.
    """

    sites: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    tenant_groups: Mapping[int, str] = field(default_factory=dict)
    contacts: Mapping[tuple[str, int], str] = field(default_factory=dict)
    # Current names by id: renaming a site or tenant does not bump last_updated on its devices and VMs, so
    # incremental exports take names from these fresh listings rather than from stored records.
    site_names: Mapping[int, str] = field(default_factory=dict)
    tenant_names: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def from_records(
        cls,
        *,
        sites: Iterable[SiteRecord] = (),
        tenants: Iterable[TenantRecord] = (),
        contact_assignments: Iterable[ContactAssignmentRecord] = (),
        contacts: Mapping[tuple[str, int], str] | None = None,
    ) -> Lookups:
        """Build the lookups from the bulk site, tenant and contact-assignment listings (or ``contacts`` already
        rendered by ``contacts_by_object``)."""
        sites, tenants = list(sites), list(tenants)
        return cls(
            sites={site.id: (site.region, site.group) for site in sites},
            tenant_groups={tenant.id: tenant.group for tenant in tenants},
            contacts=contacts if contacts is not None else contacts_by_object(contact_assignments),
            site_names={site.id: site.name for site in sites},
            tenant_names={tenant.id: tenant.name for tenant in tenants},
        )

    def region(self, site_id: int | None) -> str:
        """The region of a site, or empty."""
        return self.sites.get(site_id, ("", ""))[0] if site_id is not None else ""

    def site_group(self, site_id: int | None) -> str:
        """The site group of a site, or empty."""
        return self.sites.get(site_id, ("", ""))[1] if site_id is not None else ""

    def site_name(self, site_id: int | None, default: str) -> str:
        """The current name of a site, or ``default`` (the name the record carries)."""
        return self.site_names.get(site_id, default) if site_id is not None else default

    def tenant_name(self, tenant_id: int | None, default: str) -> str:
        """The current name of a tenant, or ``default`` (the name the record carries)."""
        return self.tenant_names.get(tenant_id, default) if tenant_id is not None else default

    def tenant_group(self, tenant_id: int | None) -> str:
        """The tenant group of a tenant, or empty."""
        return self.tenant_groups.get(tenant_id, "") if tenant_id is not None else ""


def _first(*values: str) -> str:
    for value in values:
        if value:
            return value
    return ""


def device_row(record: DeviceRecord, lookups: Lookups) -> Row:
    """One device as a row in ``DEVICE_COLUMNS`` order."""
    cf = custom_fields_normalised(record.custom_fields)
    return (
        record.name,
        record.status,
        lookups.tenant_name(record.tenant_id, record.tenant),
        lookups.site_name(record.site_id, record.site),
        record.location,
        record.rack,
        render_rack_position(record.face, record.position),
        record.role,
        record.manufacturer,
        record.device_type,
        _first(record.primary_ip, record.primary_ip4, record.primary_ip6, record.oob_ip),
        record.id,
        lookups.tenant_group(record.tenant_id),
        record.serial,
        record.asset_tag,
        lookups.region(record.site_id),
        lookups.site_group(record.site_id),
        record.parent_device,
        record.parent_device_bay,
        render_number(record.position),
        record.face,
        render_number(record.latitude),
        render_number(record.longitude),
        record.airflow,
        record.primary_ip4,
        record.primary_ip6,
        record.oob_ip,
        record.cluster,
        record.virtual_chassis,
        render_number(record.vc_position),
        render_number(record.vc_priority),
        record.description,
        record.config_template,
        record.comments,
        lookups.contacts.get((DEVICE_OBJECT_TYPE, record.id), ""),
        render_tags(record.tags),
        render_timestamp(record.created),
        render_timestamp(record.last_updated),
        record.platform,
        *(render_custom_field(cf.get(key)) for key in _DEVICE_CF_KEYS),
        render_number(record.console_port_count),
        render_number(record.console_server_port_count),
        render_number(record.power_port_count),
        render_number(record.power_outlet_count),
        render_number(record.interface_count),
        render_number(record.front_port_count),
        render_number(record.rear_port_count),
        render_number(record.device_bay_count),
        render_number(record.module_bay_count),
        render_number(record.inventory_item_count),
    )


def vm_row(record: VirtualMachineRecord, lookups: Lookups) -> Row:
    """One virtual machine as a row in ``VM_COLUMNS`` order."""
    cf = custom_fields_normalised(record.custom_fields)
    # The custom field is what operators maintain; NetBox's own count is the fallback when it is not defined.
    if _VIRTUAL_DISKS_KEY in cf:
        virtual_disks = render_custom_field(cf[_VIRTUAL_DISKS_KEY])
    else:
        virtual_disks = render_number(record.virtual_disk_count)
    return (
        record.name,
        record.status,
        lookups.site_name(record.site_id, record.site),
        record.cluster,
        record.role,
        lookups.tenant_name(record.tenant_id, record.tenant),
        render_number(record.vcpus),
        render_number(record.memory),
        render_number(record.disk),
        _first(record.primary_ip, record.primary_ip4, record.primary_ip6),
        record.id,
        record.device,
        lookups.tenant_group(record.tenant_id),
        record.primary_ip4,
        record.primary_ip6,
        record.description,
        record.comments,
        record.config_template,
        record.serial,
        lookups.contacts.get((VM_OBJECT_TYPE, record.id), ""),
        render_tags(record.tags),
        render_timestamp(record.created),
        render_timestamp(record.last_updated),
        record.platform,
        render_number(record.interface_count),
        virtual_disks,
        *(render_custom_field(cf.get(key)) for key in _VM_CF_KEYS),
    )


@dataclass(frozen=True, slots=True)
class RowPlan:
    """A dataset's column set compiled for its rows: the contract row's cells to keep, in order, and the custom
    field and path columns to add (``extras``: source prefix, name, type). ``identity``: the contract row as is."""

    dataset: str
    columns: tuple[str, ...]
    picks: tuple[int, ...]
    extras: tuple[tuple[str, str, str], ...]
    identity: bool
    pick: Callable[[Sequence[Cell]], Row] = field(repr=False, compare=False, default=tuple)

    @classmethod
    def of(cls, column_set: ColumnSet, dataset: str) -> RowPlan:
        contract = CONTRACT[dataset]
        visible = column_set.visible(dataset)
        at = {name: index for index, name in enumerate(contract)}
        extras: list[tuple[str, str, str]] = []
        picks: list[int] = []
        for column in visible:
            if column.prefix == CONTRACT_PREFIX:
                picks.append(at[column.name])
            else:
                picks.append(len(contract) + len(extras))
                # A custom field NetBox no longer has: an empty column (stored snapshots may still hold values).
                gone = column.prefix == CUSTOM_FIELD_PREFIX and (dataset, column.name) in column_set.absent
                extras.append(("" if gone else column.prefix, column.name, column.type))
        identity = tuple(picks) == tuple(range(len(contract))) and not extras
        pick = _picker(picks) if picks else (lambda row: ())
        return cls(dataset, column_set.headers(dataset), tuple(picks), tuple(extras), identity, pick)

    def row(self, contract_row: Row, custom_fields: Mapping[str, Any], extra: Mapping[str, Any]) -> Row:
        """The row of this plan from a record's contract row, custom fields and kept path values."""
        if self.identity:
            return contract_row
        added = tuple(
            render_typed(
                custom_fields.get(name) if prefix == CUSTOM_FIELD_PREFIX else extra.get(name) if prefix else None,
                kind,
            )
            for prefix, name, kind in self.extras
        )
        return self.pick(contract_row + added)


_DEFAULT_PLANS: dict[str, RowPlan] = {}


def row_plan(column_set: ColumnSet | None, dataset: str) -> RowPlan:
    """The compiled plan of a dataset under ``column_set`` (``None``: the default set)."""
    if column_set is None or column_set.is_default:
        if dataset not in _DEFAULT_PLANS:
            _DEFAULT_PLANS[dataset] = RowPlan.of(DEFAULT_SET, dataset)
        return _DEFAULT_PLANS[dataset]
    return RowPlan.of(column_set, dataset)


def device_row_planned(record: DeviceRecord, lookups: Lookups, plan: RowPlan) -> Row:
    """One device as a row of ``plan``'s columns."""
    row = device_row(record, lookups)
    return row if plan.identity else plan.row(row, record.custom_fields, record.extra)


def vm_row_planned(record: VirtualMachineRecord, lookups: Lookups, plan: RowPlan) -> Row:
    """One virtual machine as a row of ``plan``'s columns."""
    row = vm_row(record, lookups)
    return row if plan.identity else plan.row(row, record.custom_fields, record.extra)


def device_rows(records: Iterable[DeviceRecord], lookups: Lookups, columns: ColumnSet | None = None) -> list[Row]:
    """Device rows sorted by NetBox id, whatever order the records came in, in the set's device columns."""
    ordered = sorted(records, key=lambda record: record.id)
    plan = row_plan(columns, DEVICES)
    if plan.identity:
        return [device_row(record, lookups) for record in ordered]
    return [device_row_planned(record, lookups, plan) for record in ordered]


def vm_rows(records: Iterable[VirtualMachineRecord], lookups: Lookups, columns: ColumnSet | None = None) -> list[Row]:
    """VM rows sorted by NetBox id, whatever order the records came in, in the set's VM columns."""
    ordered = sorted(records, key=lambda record: record.id)
    plan = row_plan(columns, VMS)
    if plan.identity:
        return [vm_row(record, lookups) for record in ordered]
    return [vm_row_planned(record, lookups, plan) for record in ordered]


def _index_map(from_columns: Sequence[str], to_columns: Sequence[str]) -> list[int | None]:
    position = {name: index for index, name in enumerate(from_columns)}
    if len(position) != len(from_columns):
        raise ValueError("from_columns has duplicate names")
    return [position.get(name) for name in to_columns]


def reorder(rows: Iterable[Sequence[Cell]], from_columns: Sequence[str], to_columns: Sequence[str]) -> list[Row]:
    """Rows rearranged from one column order into another; a column the source lacks becomes ``""``."""
    indexes = _index_map(from_columns, to_columns)
    if all(index is not None for index in indexes):
        pick = _picker(indexes)  # type: ignore[arg-type]
        return [pick(row) for row in rows]
    # Missing columns read an empty cell appended to each row.
    pick = _picker([len(from_columns) if index is None else index for index in indexes])
    return [pick((*row, "")) for row in rows]


def _picker(indexes: Sequence[int]) -> Callable[[Sequence[Cell]], Row]:
    """A function picking these positions from a row as a tuple, in C (``itemgetter``) rather than per cell."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    return itemgetter(*indexes)  # type: ignore[return-value]


def merged_row_stream(
    device_batches: Iterable[Sequence[Sequence[Cell]]],
    vm_batches: Iterable[Sequence[Sequence[Cell]]],
    columns: ColumnSet | None = None,
) -> Iterator[Row]:
    """``merged_rows`` a batch at a time: the same rows, from batches of device rows then batches of VM rows read
    once, never all in memory."""
    column_set = columns or DEFAULT_SET
    device_columns, vm_columns = column_set.device_columns, column_set.vm_columns
    device_padding: Row = (*("",) * len(column_set.vm_only_columns), DEVICE_TYPE_VALUE)
    for batch in device_batches:
        check_widths(batch, len(device_columns), "A device row")
        for row in batch:
            yield tuple(row) + device_padding
    vm_type = (VM_TYPE_VALUE,)
    merged_order = column_set.merged_columns[:-1]
    for batch in vm_batches:
        check_widths(batch, len(vm_columns), "A VM row")
        for row in reorder(batch, vm_columns, merged_order):
            yield row + vm_type


def kind_rows_as(
    batches: Iterable[Sequence[Sequence[Cell]]],
    kind_columns: Sequence[str],
    type_value: str,
    to_columns: Sequence[str],
    columns: ColumnSet | None = None,
) -> Iterator[list[Row]]:
    """A kind's row batches as merged rows rearranged into ``to_columns`` (the workbook's order), without building
    the merged rows: ``netbox_type`` is ``type_value`` and a column the kind lacks is ``""``."""
    from_columns = (*kind_columns, (columns or DEFAULT_SET).merged_columns[-1])
    extra = (type_value,)
    for batch in batches:
        yield reorder([(*row, *extra) for row in batch], from_columns, to_columns)


def check_widths(rows: Sequence[Sequence[Cell]], width: int, what: str) -> None:
    """Raise ``ValueError`` when a row does not have ``width`` values."""
    if set(map(len, rows)) - {width}:
        for row in rows:
            if len(row) != width:
                raise ValueError(f"{what} has {len(row)} values for {width} columns")


def merged_rows(
    device_rows: Iterable[Sequence[Cell]], vm_rows: Iterable[Sequence[Cell]], columns: ColumnSet | None = None
) -> list[Row]:
    """Device rows then VM rows, both in the merged order (``MERGED_COLUMNS`` for the default set), ``netbox_type``
    last (``devices``/``vms``)."""
    column_set = columns or DEFAULT_SET
    device_columns, vm_columns = column_set.device_columns, column_set.vm_columns
    merged_columns = column_set.merged_columns
    device_padding: Row = (*("",) * len(column_set.vm_only_columns), DEVICE_TYPE_VALUE)
    merged: list[Row] = []
    for row in device_rows:
        if len(row) != len(device_columns):
            raise ValueError(f"A device row has {len(row)} values for {len(device_columns)} columns")
        merged.append(tuple(row) + device_padding)
    vm_list = list(vm_rows)
    for row in vm_list:
        if len(row) != len(vm_columns):
            raise ValueError(f"A VM row has {len(row)} values for {len(vm_columns)} columns")
    vm_type = (VM_TYPE_VALUE,)
    merged.extend(row + vm_type for row in reorder(vm_list, vm_columns, merged_columns[:-1]))
    return merged
