"""The CMDB's columns: the names and order of the devices, VMs and merged files and of the workbook, which columns
the workbook types as numbers or keeps as text, and the operator's workbook column order.

The column names and their order are a contract with the people and scripts that read the CMDB files, so they live
here as constants. Pure: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

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
