"""The CMDB's columns: the contract (the names and order of the devices, VMs and merged files and of the workbook,
which columns the workbook types as numbers or keeps as text, the operator's workbook column order), and the
operator's column sets built on it (``ColumnSet``: contract columns renamed, hidden or moved, NetBox custom fields and
API fields added, each typed) with their checks.

The contract's names and order are what the files hold by default, so they live here as constants. Pure: no Django,
no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from integrations.netbox.records import DEVICE_COUNT_FIELDS

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


def workbook_column_order(
    order: Sequence[str] | None = None, merged: Sequence[str] = MERGED_COLUMNS
) -> tuple[str, ...]:
    """The workbook's column order: ``WORKBOOK_COLUMNS``, or an operator's ``order`` (names from a setting or the
    first row of an .xlsx) followed by the remaining ``merged`` columns in merged order.

    Raises ``ValueError`` for a name that is not a merged column: a typo would otherwise become an empty column.
    """
    if not order:
        return WORKBOOK_COLUMNS
    wanted = [name.strip() for name in order if name and name.strip()]
    unknown = [name for name in wanted if name not in merged]
    if unknown:
        raise ValueError(f"Unknown column name(s) in the workbook column order: {', '.join(unknown)}")
    head = tuple(dict.fromkeys(wanted))
    return head + tuple(name for name in merged if name not in head)


# --- The operator's column set ------------------------------------------------------------------------------------
#
# Each dataset (devices, VMs) has a column set: an ordered list of columns, each with a header, a source, a type and
# whether it is shown. The default set is the contract above, so with it every file is what it always was. The merged
# set is derived: the device columns, then the VM columns whose header the devices lack, then ``netbox_type``.

DEVICES, VMS = "devices", "vms"
DATASETS: tuple[str, ...] = (DEVICES, VMS)
CONTRACT: dict[str, tuple[str, ...]] = {DEVICES: DEVICE_COLUMNS, VMS: VM_COLUMNS}

TEXT_TYPE, INTEGER, DECIMAL, DATE, DATETIME, BOOLEAN = "text", "integer", "decimal", "date", "datetime", "boolean"
COLUMN_TYPES: tuple[str, ...] = (TEXT_TYPE, INTEGER, DECIMAL, DATE, DATETIME, BOOLEAN)

CONTRACT_PREFIX, CUSTOM_FIELD_PREFIX, FIELD_PREFIX = "contract:", "cf:", "field:"

# The contract's columns keep their type: the workbook types them as it always did.
_CONTRACT_DECIMAL = frozenset(("Latitude", "Longitude", "Position"))


def contract_type(name: str) -> str:
    """The type of a contract column: its numbers are integers or decimals, everything else text."""
    if name in _CONTRACT_DECIMAL:
        return DECIMAL
    return INTEGER if name in NUMERIC_COLUMNS else TEXT_TYPE


# NetBox custom field types (``type.value`` of ``/api/extras/custom-fields/``) -> column types; the others
# (text, longtext, url, json, select, multiselect, object, multiobject) are text.
CUSTOM_FIELD_TYPES: dict[str, str] = {
    "integer": INTEGER,
    "decimal": DECIMAL,
    "boolean": BOOLEAN,
    "date": DATE,
    "datetime": DATETIME,
}

# The top-level fields of a device and a virtual machine as NetBox 4's REST API returns them (shared/netbox-sample):
# the first part of a ``field:`` path must be one of them.
API_FIELDS: dict[str, frozenset[str]] = {
    DEVICES: frozenset(
        [
            "id",
            "url",
            "display_url",
            "display",
            "name",
            "device_type",
            "role",
            "tenant",
            "platform",
            "serial",
            "asset_tag",
            "site",
            "location",
            "rack",
            "position",
            "face",
            "latitude",
            "longitude",
            "parent_device",
            "status",
            "airflow",
            "primary_ip",
            "primary_ip4",
            "primary_ip6",
            "oob_ip",
            "cluster",
            "virtual_chassis",
            "vc_position",
            "vc_priority",
            "description",
            "owner",
            "comments",
            "config_template",
            "local_context_data",
            "tags",
            "created",
            "last_updated",
            *DEVICE_COUNT_FIELDS,
        ]
    ),
    VMS: frozenset(
        [
            "id",
            "url",
            "display_url",
            "display",
            "name",
            "status",
            "start_on_boot",
            "site",
            "cluster",
            "device",
            "serial",
            "role",
            "tenant",
            "platform",
            "primary_ip",
            "primary_ip4",
            "primary_ip6",
            "vcpus",
            "memory",
            "disk",
            "description",
            "owner",
            "comments",
            "config_template",
            "local_context_data",
            "tags",
            "created",
            "last_updated",
            "interface_count",
            "virtual_disk_count",
        ]
    ),
}
_PATH = re.compile(r"[a-z_][a-z0-9_]*(?:\.(?:[a-z_][a-z0-9_]*|\d+))*")
# Excel's limit on a table column name; longer ones make Excel "repair" the file.
MAX_HEADER = 255
# What a header may not start with: a CSV cell that a spreadsheet would read as a formula.
_FORMULA_START = ("=", "+", "-", "@")
# Columns every set keeps, shown and under their own name: the object's key and name (changes, the CMDB browser).
REQUIRED_COLUMNS: tuple[str, ...] = ("ID", "Name")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a column set: ``header`` in the files, ``source`` (``contract:<Header>``, ``cf:<name>``,
    ``field:<dot.path>``), ``type`` (one of ``COLUMN_TYPES``) and whether it is ``visible``."""

    header: str
    source: str
    type: str = TEXT_TYPE
    visible: bool = True

    @property
    def prefix(self) -> str:
        return self.source.partition(":")[0] + ":"

    @property
    def name(self) -> str:
        """What the source names: the contract header, the custom field or the path."""
        return self.source.partition(":")[2]

    def as_dict(self) -> dict[str, Any]:
        return {"header": self.header, "source": self.source, "type": self.type, "visible": self.visible}


def default_columns(dataset: str) -> tuple[Column, ...]:
    """The contract as a column set: every column under its own name, typed as the workbook always typed it."""
    return tuple(Column(name, CONTRACT_PREFIX + name, contract_type(name)) for name in CONTRACT[dataset])


@dataclass(frozen=True, slots=True)
class ColumnSet:
    """The devices and VMs column sets, and what derives from them: the files' headers, the merged columns, each
    header's type, the ``field:`` paths the snapshots must keep and the custom fields the columns read."""

    devices: tuple[Column, ...] = field(default_factory=lambda: default_columns(DEVICES))
    vms: tuple[Column, ...] = field(default_factory=lambda: default_columns(VMS))
    # (dataset, custom field) of ``cf:`` columns whose field NetBox no longer has: written empty.
    absent: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSet:
        """A set from ``as_dict`` output (a dataset missing from ``data`` is the default)."""
        devices, vms = (
            tuple(Column(**column) for column in data[dataset]) if data.get(dataset) is not None else None
            for dataset in DATASETS
        )
        return cls(
            devices=devices if devices is not None else default_columns(DEVICES),
            vms=vms if vms is not None else default_columns(VMS),
        )

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {dataset: [column.as_dict() for column in self.of(dataset)] for dataset in DATASETS}

    def of(self, dataset: str) -> tuple[Column, ...]:
        return self.devices if dataset == DEVICES else self.vms

    def visible(self, dataset: str) -> tuple[Column, ...]:
        return tuple(column for column in self.of(dataset) if column.visible)

    @property
    def is_default(self) -> bool:
        return self.devices == default_columns(DEVICES) and self.vms == default_columns(VMS)

    def headers(self, dataset: str) -> tuple[str, ...]:
        """The header row of a dataset's CSV."""
        return tuple(column.header for column in self.visible(dataset))

    @property
    def device_columns(self) -> tuple[str, ...]:
        return self.headers(DEVICES)

    @property
    def vm_columns(self) -> tuple[str, ...]:
        return self.headers(VMS)

    @property
    def vm_only_columns(self) -> tuple[str, ...]:
        devices = set(self.device_columns)
        return tuple(header for header in self.vm_columns if header not in devices)

    @property
    def merged_columns(self) -> tuple[str, ...]:
        return self.device_columns + self.vm_only_columns + (TYPE_COLUMN,)

    def types(self) -> dict[str, str]:
        """Each merged header's type (``netbox_type`` is text)."""
        typed = {column.header: column.type for column in (*self.visible(VMS), *self.visible(DEVICES))}
        typed[TYPE_COLUMN] = TEXT_TYPE
        return typed

    def contract_sources(self) -> dict[str, str]:
        """Each merged header that shows a contract column -> that column's contract name."""
        return {
            column.header: column.name
            for column in (*self.visible(VMS), *self.visible(DEVICES))
            if column.prefix == CONTRACT_PREFIX
        }

    def numeric_columns(self) -> frozenset[str]:
        """The headers the workbook types as numbers: the contract's numeric columns and integer/decimal ones."""
        contract = self.contract_sources()
        return frozenset(
            header
            for header, kind in self.types().items()
            if (header in contract and contract[header] in NUMERIC_COLUMNS)
            or (header not in contract and kind in (INTEGER, DECIMAL))
        )

    def text_columns(self) -> frozenset[str]:
        """The headers the workbook keeps as text even when they look numeric: the contract's (serial, asset
        tag) and every text column of a custom field or path."""
        contract = self.contract_sources()
        return frozenset(
            header
            for header, kind in self.types().items()
            if (header in contract and contract[header] in TEXT_COLUMNS)
            or (header not in contract and header != TYPE_COLUMN and kind == TEXT_TYPE)
        )

    def date_columns(self) -> frozenset[str]:
        return frozenset(header for header, kind in self.types().items() if kind == DATE)

    def datetime_columns(self) -> frozenset[str]:
        return frozenset(header for header, kind in self.types().items() if kind == DATETIME)

    def paths(self, dataset: str) -> tuple[str, ...]:
        """The ``field:`` paths a dataset's records must keep (hidden columns' too: showing one again needs no
        full run)."""
        return tuple(sorted({c.name for c in self.of(dataset) if c.prefix == FIELD_PREFIX}))

    def custom_fields(self, dataset: str) -> tuple[str, ...]:
        """The custom fields a dataset's visible columns read."""
        return tuple(c.name for c in self.visible(dataset) if c.prefix == CUSTOM_FIELD_PREFIX)

    def workbook_order(self, order: Sequence[str] | None = None) -> tuple[str, ...]:
        """The workbook's columns: the operator's ``order`` (``EXPORT_WORKBOOK_COLUMNS``) first, else the
        contract's workbook order (under the set's headers), then every other merged column in merged order."""
        merged = self.merged_columns
        if order:
            # The setting names the contract's columns: a renamed one is its header now, a hidden one is left out.
            header_of = {name: header for header, name in self.contract_sources().items()}
            named = [name.strip() for name in order if name and name.strip()]
            hidden = set(MERGED_COLUMNS) - set(header_of) - {TYPE_COLUMN}
            wanted = [name if name in merged else header_of.get(name, name) for name in named if name not in hidden]
            return workbook_column_order(wanted, merged) if wanted else self.workbook_order()
        if self.is_default:
            return WORKBOOK_COLUMNS
        header_of = {name: header for header, name in self.contract_sources().items()}
        header_of[TYPE_COLUMN] = TYPE_COLUMN
        head = tuple(dict.fromkeys(header_of[name] for name in _WORKBOOK_HEAD if name in header_of))
        return head + tuple(header for header in merged if header not in head)

    @property
    def digest(self) -> str:
        """Changes when the files' columns change (``""`` for the default set, so it changes no file digest)."""
        if self.is_default:
            return ""
        shape = {**self.as_dict(), "absent": sorted(self.absent)}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


DEFAULT_SET = ColumnSet()


class ColumnSetInvalid(ValueError):
    """A column set that cannot be used: ``problems`` names each (``str`` lists them all)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def column_set_problems(
    dataset: str, columns: Sequence[Column], custom_fields: Mapping[str, str] | None
) -> tuple[list[str], tuple[Column, ...]]:
    """What is wrong with a dataset's proposed columns, and the columns with each custom field's type as NetBox
    has it. ``custom_fields`` (name -> NetBox type) are the custom fields of the dataset's object type; ``None``
    skips that check (no ``cf:`` column to check)."""
    problems: list[str] = []
    fixed: list[Column] = []
    seen_headers: dict[str, str] = {}
    seen_sources: set[str] = set()
    contract = CONTRACT[dataset]
    label = "devices" if dataset == DEVICES else "VMs"
    for position, column in enumerate(columns, start=1):
        where = f"{label} column {position} ({column.header!r})"
        problems += [f"{where}: {problem}" for problem in header_problems(column.header)]
        folded = column.header.casefold()
        if folded in seen_headers:
            problems.append(f"{where}: the header is already used by {seen_headers[folded]!r} (headers are unique)")
        seen_headers.setdefault(folded, column.header)
        if column.type not in COLUMN_TYPES:
            problems.append(f"{where}: unknown type {column.type!r}; choose one of {', '.join(COLUMN_TYPES)}")
        if column.source in seen_sources:
            problems.append(f"{where}: the source {column.source!r} is already a column")
        seen_sources.add(column.source)
        prefix, name = column.prefix, column.name
        if prefix == CONTRACT_PREFIX:
            if name not in contract:
                problems.append(f"{where}: {name!r} is not one of the {label} contract columns")
            elif column.type != contract_type(name):
                problems.append(f"{where}: contract column {name!r} keeps its type {contract_type(name)!r}")
            elif name in REQUIRED_COLUMNS and (column.header != name or not column.visible):
                problems.append(f"{where}: the {name} column stays shown under its own name")
        elif prefix == CUSTOM_FIELD_PREFIX:
            if not name:
                problems.append(f"{where}: cf: needs the custom field's name")
            elif custom_fields is not None and name not in custom_fields:
                known = ", ".join(sorted(custom_fields)) or "none"
                problems.append(f"{where}: NetBox has no custom field {name!r} for {label}; it has: {known}")
            elif custom_fields is not None:
                column = Column(column.header, column.source, CUSTOM_FIELD_TYPES.get(custom_fields[name], TEXT_TYPE),
                                column.visible)  # fmt: skip
        elif prefix == FIELD_PREFIX:
            if not _PATH.fullmatch(name):
                problems.append(f"{where}: {name!r} is not a path such as device_type.slug (lowercase names, dots)")
            elif name.split(".")[0] not in API_FIELDS[dataset]:
                problems.append(f"{where}: NetBox's {label} have no field {name.split('.')[0]!r}")
            elif name.split(".")[0] == "custom_fields":
                problems.append(f"{where}: custom fields are columns of their own: cf:<name>")
        else:
            problems.append(f"{where}: the source {column.source!r} starts with contract:, cf: or field:")
        fixed.append(column)
    for name in REQUIRED_COLUMNS:
        if CONTRACT_PREFIX + name not in seen_sources:
            problems.append(f"{label}: the {name} column (contract:{name}) is required")
    return problems, tuple(fixed)


def header_problems(header: str) -> list[str]:
    """Why a header would break the CSV or the workbook's table (none: ``[]``)."""
    if not isinstance(header, str) or not header.strip():
        return ["the header is empty"]
    problems = []
    if header != header.strip():
        problems.append("the header starts or ends with spaces")
    if any(ord(char) < 32 or ord(char) == 127 for char in header):
        problems.append("the header holds a line break or another control character")
    if len(header) > MAX_HEADER:
        problems.append(f"the header is longer than {MAX_HEADER} characters (Excel's limit for a table column)")
    if header.startswith(_FORMULA_START):
        problems.append("the header starts with =, +, - or @ (a spreadsheet would read it as a formula)")
    if header == TYPE_COLUMN:
        problems.append(f"{TYPE_COLUMN!r} is the merged file's own column")
    return problems


def merged_problems(column_set: ColumnSet) -> list[str]:
    """Headers shared by the devices and VMs that disagree on their type (they are one merged column)."""
    devices = {column.header: column.type for column in column_set.visible(DEVICES)}
    return [
        f"the header {column.header!r} is {devices[column.header]} for devices and {column.type} for VMs"
        for column in column_set.visible(VMS)
        if column.header in devices and devices[column.header] != column.type
    ]
