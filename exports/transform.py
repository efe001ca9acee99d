"""NetBox records -> CMDB rows, in the operators' column order.

Pure functions: no Django, no I/O. The column names and their order are a contract with the people and scripts that
read the CMDB files, so they live here as constants and every row is a tuple in exactly that order.

Rendering conventions (the writers rely on them):

- A cell is ``str``, ``int`` or ``float``. Empty is always ``""``, never ``None``, so a row compares equal to what
  the csv module reads back and the workbook writer has one thing to skip.
- Numbers stay numbers (ID, counts, Position, VCPUs, Memory (MB), Disk, Latitude, Longitude, VC Position,
  VC Priority) so the workbook can type them; an integral float becomes an ``int`` (``41``, not ``41.0``).
- Custom fields: ``None`` -> ``""``, booleans -> ``"True"``/``"False"``, numbers stay numbers, lists are joined
  with ``", "``, objects render as their name (else display, label, value; JSON as a last resort, never a repr).
  Select fields keep NetBox's value (the API returns the value, not the label).
- Timestamps are UTC ``YYYY-MM-DDTHH:MM:SSZ``; a value that is not ISO 8601 is kept as NetBox sent it.
- Rows are sorted by NetBox id, so the same records in any order give identical rows (incremental and full exports
  must produce byte-identical files).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    VM_OBJECT_TYPE,
    ContactAssignmentRecord,
    DeviceRecord,
    SiteRecord,
    TenantRecord,
    VirtualMachineRecord,
)

Cell = str | int | float
Row = tuple[Cell, ...]

DEVICE_COLUMNS: tuple[str, ...] = (
    "Name",
    "Status",
    "Tenant",
    "Site",
    "Location",
    "Rack",
    "Rack Position",
    "Role",
    "Manufacturer",
    "Type",
    "IP Address",
    "ID",
    "Tenant Group",
    "Serial number",
    "Asset tag",
    "Region",
    "Site Group",
    "Parent Device",
    "Position (Device Bay)",
    "Position",
    "Rack face",
    "Latitude",
    "Longitude",
    "Airflow",
    "IPv4 Address",
    "IPv6 Address",
    "OOB IP",
    "Cluster",
    "Virtual Chassis",
    "VC Position",
    "VC Priority",
    "Description",
    "Config Template",
    "Comments",
    "Contacts",
    "Tags",
    "Created",
    "Last updated",
    "Platform",
    "Server Group",
    "Backup",
    "DTAP state",
    "Harddisk",
    "open actions",
    "CPU",
    "Memory",
    "Monitor hardware",
    "HW buy date",
    "HW warranty expiration",
    "Warranty type",
    "Console ports",
    "Console server ports",
    "Power ports",
    "Power outlets",
    "Interfaces",
    "Front ports",
    "Rear ports",
    "Device bays",
    "Module bays",
    "Inventory items",
)

VM_COLUMNS: tuple[str, ...] = (
    "Name",
    "Status",
    "Site",
    "Cluster",
    "Role",
    "Tenant",
    "VCPUs",
    "Memory (MB)",
    "Disk",
    "IP Address",
    "ID",
    "Device",
    "Tenant Group",
    "IPv4 Address",
    "IPv6 Address",
    "Description",
    "Comments",
    "Config Template",
    "Serial number",
    "Contacts",
    "Tags",
    "Created",
    "Last updated",
    "Platform",
    "Interfaces",
    "Virtual Disks",
    "Backup",
    "DTAP state",
    "Harddisk",
    "open actions",
    "Server Group",
)

VM_ONLY_COLUMNS: tuple[str, ...] = ("VCPUs", "Memory (MB)", "Disk", "Device", "Virtual Disks")

TYPE_COLUMN = "netbox_type"
DEVICE_TYPE_VALUE = "devices"
VM_TYPE_VALUE = "vms"

MERGED_COLUMNS: tuple[str, ...] = DEVICE_COLUMNS + VM_ONLY_COLUMNS + (TYPE_COLUMN,)

_WORKBOOK_HEAD: tuple[str, ...] = (
    "Name",
    "Status",
    "Device",
    "Role",
    "netbox_type",
    "Cluster",
    "IP Address",
    "OOB IP",
    "Contacts",
    "DTAP state",
    "Platform",
    "Backup",
    "open actions",
    "Server Group",
    "Description",
    "Tenant",
    "Manufacturer",
    "Type",
    "Serial number",
    "Region",
    "Site",
    "Location",
    "Rack",
    "Rack Position",
    "Position",
    "Rack face",
    "Latitude",
    "Longitude",
    "Airflow",
    "IPv4 Address",
    "IPv6 Address",
    "Virtual Chassis",
    "VC Position",
    "VC Priority",
    "Config Template",
    "Comments",
    "Tags",
    "Created",
    "Last updated",
    "Console ports",
    "Console server ports",
    "Power ports",
    "Power outlets",
    "Interfaces",
    "Front ports",
    "Rear ports",
    "Device bays",
    "Module bays",
    "Inventory items",
    "VCPUs",
    "Memory (MB)",
    "Disk",
    "Virtual Disks",
    "Harddisk",
    "ID",
    "Tenant Group",
    "Asset tag",
    "Site Group",
    "Parent Device",
    "Position (Device Bay)",
)

WORKBOOK_COLUMNS: tuple[str, ...] = _WORKBOOK_HEAD + tuple(c for c in MERGED_COLUMNS if c not in _WORKBOOK_HEAD)

COUNT_COLUMNS: tuple[str, ...] = (
    "Console ports",
    "Console server ports",
    "Power ports",
    "Power outlets",
    "Interfaces",
    "Front ports",
    "Rear ports",
    "Device bays",
    "Module bays",
    "Inventory items",
)

# The columns the workbook types as numbers, and those it must keep as text even when they look numeric.
NUMERIC_COLUMNS: frozenset[str] = frozenset(
    (
        "ID",
        "Position",
        "VCPUs",
        "Memory (MB)",
        "Disk",
        "Latitude",
        "Longitude",
        "VC Position",
        "VC Priority",
        *COUNT_COLUMNS,
    )
)
TEXT_COLUMNS: frozenset[str] = frozenset(("Serial number", "Asset tag"))

DEVICE_CUSTOM_FIELD_COLUMNS: tuple[str, ...] = (
    "Server Group",
    "Backup",
    "DTAP state",
    "Harddisk",
    "open actions",
    "CPU",
    "Memory",
    "Monitor hardware",
    "HW buy date",
    "HW warranty expiration",
    "Warranty type",
)
VM_CUSTOM_FIELD_COLUMNS: tuple[str, ...] = ("Backup", "DTAP state", "Harddisk", "open actions", "Server Group")

# NetBox's ContactPriorityChoices in their own order; no priority sorts last, an unknown one just before it.
_PRIORITY_RANK = {"primary": 0, "secondary": 1, "tertiary": 2, "inactive": 3}
_UNKNOWN_PRIORITY_RANK = 4
_NO_PRIORITY_RANK = 5

# NetBox's own format (microseconds, "Z"); anything else goes through datetime for offsets and odd precisions.
_NETBOX_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


@lru_cache(maxsize=4096)
def normalise_name(name: str) -> str:
    """A custom field or column name reduced for matching: lowercase, without spaces, ``_`` and ``-``."""
    return name.lower().replace(" ", "").replace("_", "").replace("-", "")


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


def contacts_by_object(assignments: Iterable[ContactAssignmentRecord]) -> dict[tuple[str, int], str]:
    """The Contacts cell of every object that has assignments, keyed by (object type, object id)."""
    by_object: dict[tuple[str, int], list[ContactAssignmentRecord]] = defaultdict(list)
    for assignment in assignments:
        by_object[(assignment.object_type, assignment.object_id)].append(assignment)
    return {key: render_contacts(group) for key, group in by_object.items()}


def render_contacts(assignments: Iterable[ContactAssignmentRecord]) -> str:
    """Contacts as ``"Name (Role), Name"``: by priority (primary, secondary, tertiary, inactive, none), then name,
    then role; each rendered entry once."""

    def rank(assignment: ContactAssignmentRecord) -> tuple[int, str, str]:
        priority = assignment.priority.lower()
        level = _PRIORITY_RANK.get(priority, _UNKNOWN_PRIORITY_RANK) if priority else _NO_PRIORITY_RANK
        return (level, assignment.contact, assignment.role)

    seen: dict[str, None] = {}
    for assignment in sorted(assignments, key=rank):
        if not assignment.contact:
            continue
        entry = f"{assignment.contact} ({assignment.role})" if assignment.role else assignment.contact
        seen.setdefault(entry, None)
    return ", ".join(seen)


def render_tags(tags: Iterable[str]) -> str:
    """Tags unique, sorted case-insensitively (ties by code point so the order is total), joined ``", "``."""
    return ", ".join(sorted({tag for tag in tags if tag}, key=lambda tag: (tag.casefold(), tag)))


def render_timestamp(value: str) -> str:
    """A NetBox timestamp as UTC ``YYYY-MM-DDTHH:MM:SSZ`` (fractions dropped, offsets converted)."""
    if not value:
        return ""
    if _NETBOX_TIMESTAMP.fullmatch(value):
        return value[:19] + "Z"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        # Losing an unparseable value would hide it from the CMDB; keeping it shows the odd data.
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_number(value: int | float | None) -> Cell:
    """A number as ``int`` when integral (NetBox sends positions and VCPUs as ``41.0``), ``""`` when absent."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def render_rack_position(face: str, position: int | float | None) -> str:
    """``"<face label> <position>"`` (``"Front 41"``); just the position without a face, empty without one."""
    number = render_number(position)
    if number == "":
        return ""
    return f"{face} {number}" if face else str(number)


def _object_text(value: Mapping[str, Any]) -> str:
    for key in ("name", "display", "label", "value"):
        text = value.get(key)
        if text is not None and text != "":
            return str(text)
    # Still not a Python repr: JSON with sorted keys is readable and deterministic.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str) if value else ""


def _text(value: Any) -> str:
    rendered = render_custom_field(value)
    return rendered if isinstance(rendered, str) else str(rendered)


def render_custom_field(value: Any) -> Cell:
    """One custom field value as a cell (see the module docstring for the rules)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return render_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return _object_text(value)
    if isinstance(value, list | tuple):
        return ", ".join(text for text in (_text(item) for item in value) if text)
    return str(value)


def _custom_fields(custom_fields: Mapping[str, Any]) -> dict[str, Any]:
    """Custom fields keyed by normalised name. When names normalise alike, the first non-empty value in sorted name
    order wins, so every run resolves them the same way."""
    normalised: dict[str, Any] = {}
    for key, names in _custom_field_plan(tuple(custom_fields)):
        value = custom_fields[names[-1]]
        for name in names[:-1]:
            if custom_fields[name] not in _EMPTY_VALUES:
                value = custom_fields[name]
                break
        normalised[key] = value
    return normalised


_EMPTY_VALUES: tuple[Any, ...] = (None, "", [], {})


@lru_cache(maxsize=256)
def _custom_field_plan(names: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each normalised key with the custom field names that share it, sorted. Every object of a kind carries the
    same names, so this is worked out once per export rather than once per object."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(normalise_name(name), []).append(name)
    return tuple((key, tuple(group)) for key, group in groups.items())


def _first(*values: str) -> str:
    for value in values:
        if value:
            return value
    return ""


def device_row(record: DeviceRecord, lookups: Lookups) -> Row:
    """One device as a row in ``DEVICE_COLUMNS`` order."""
    cf = _custom_fields(record.custom_fields)
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
    cf = _custom_fields(record.custom_fields)
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


def device_rows(records: Iterable[DeviceRecord], lookups: Lookups) -> list[Row]:
    """Device rows sorted by NetBox id, whatever order the records came in."""
    return [device_row(record, lookups) for record in sorted(records, key=lambda record: record.id)]


def vm_rows(records: Iterable[VirtualMachineRecord], lookups: Lookups) -> list[Row]:
    """VM rows sorted by NetBox id, whatever order the records came in."""
    return [vm_row(record, lookups) for record in sorted(records, key=lambda record: record.id)]


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


def merged_rows(device_rows: Iterable[Sequence[Cell]], vm_rows: Iterable[Sequence[Cell]]) -> list[Row]:
    """Device rows then VM rows, both in ``MERGED_COLUMNS`` order, ``netbox_type`` last (``devices``/``vms``)."""
    device_padding: Row = (*("",) * len(VM_ONLY_COLUMNS), DEVICE_TYPE_VALUE)
    merged: list[Row] = []
    for row in device_rows:
        if len(row) != len(DEVICE_COLUMNS):
            raise ValueError(f"A device row has {len(row)} values for {len(DEVICE_COLUMNS)} columns")
        merged.append(tuple(row) + device_padding)
    vm_list = list(vm_rows)
    for row in vm_list:
        if len(row) != len(VM_COLUMNS):
            raise ValueError(f"A VM row has {len(row)} values for {len(VM_COLUMNS)} columns")
    vm_type = (VM_TYPE_VALUE,)
    merged.extend(row + vm_type for row in reorder(vm_list, VM_COLUMNS, MERGED_COLUMNS[:-1]))
    return merged


def workbook_column_order(order: Sequence[str] | None = None) -> tuple[str, ...]:
    """The workbook's column order: ``WORKBOOK_COLUMNS``, or an operator's ``order`` (names from a setting or the
    first row of an .xlsx) followed by the remaining merged columns in merged order.

    Raises ``ValueError`` for a name that is not a merged column: a typo would otherwise become an empty column.
    """
    if not order:
        return WORKBOOK_COLUMNS
    wanted = [name.strip() for name in order if name and name.strip()]
    unknown = [name for name in wanted if name not in MERGED_COLUMNS]
    if unknown:
        raise ValueError(f"Unknown column name(s) in the workbook column order: {', '.join(unknown)}")
    head = tuple(dict.fromkeys(wanted))
    return head + tuple(name for name in MERGED_COLUMNS if name not in head)
