"""Typed NetBox records: the integration boundary.

Nothing outside ``integrations/`` sees pynetbox objects or raw API dicts. The parsers below turn one object of
NetBox's REST API (4.x shapes, see ``shared/netbox-sample``) into a flat, slotted dataclass: nested objects are
reduced to the name or label people read, and the ids needed for joins (site, tenant) are kept.

Records are also what incremental exports store as snapshots, so ``record_to_dict`` / ``*_from_dict`` round-trip
them through JSON, tagged with ``SNAPSHOT_SCHEMA``: a snapshot written by a version with other record fields is
``SnapshotOutdated`` when read back, never a ``TypeError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

# The NetBox object types used by contact assignments and custom fields.
DEVICE_OBJECT_TYPE = "dcim.device"
VM_OBJECT_TYPE = "virtualization.virtualmachine"

DEVICE_COUNT_FIELDS = (
    "console_port_count",
    "console_server_port_count",
    "power_port_count",
    "power_outlet_count",
    "interface_count",
    "front_port_count",
    "rear_port_count",
    "device_bay_count",
    "module_bay_count",
    "inventory_item_count",
)


@dataclass(slots=True)
class DeviceRecord:
    """One NetBox device, flattened."""

    id: int
    name: str
    status: str
    tenant_id: int | None
    tenant: str
    site_id: int | None
    site: str
    location: str
    rack: str
    position: float | None
    face: str
    role: str
    manufacturer: str
    device_type: str
    serial: str
    asset_tag: str
    parent_device: str
    parent_device_bay: str
    latitude: float | None
    longitude: float | None
    airflow: str
    primary_ip: str
    primary_ip4: str
    primary_ip6: str
    oob_ip: str
    cluster: str
    virtual_chassis: str
    vc_position: int | None
    vc_priority: int | None
    description: str
    config_template: str
    comments: str
    tags: tuple[str, ...]
    created: str
    last_updated: str
    platform: str
    custom_fields: dict[str, Any]
    # The values of the column set's ``field:`` paths (``device_type.slug``), as NetBox's API returned them.
    extra: dict[str, Any]
    console_port_count: int | None
    console_server_port_count: int | None
    power_port_count: int | None
    power_outlet_count: int | None
    interface_count: int | None
    front_port_count: int | None
    rear_port_count: int | None
    device_bay_count: int | None
    module_bay_count: int | None
    inventory_item_count: int | None


@dataclass(slots=True)
class VirtualMachineRecord:
    """One NetBox virtual machine, flattened."""

    id: int
    name: str
    status: str
    site_id: int | None
    site: str
    cluster: str
    role: str
    tenant_id: int | None
    tenant: str
    vcpus: float | None
    memory: int | None
    disk: int | None
    primary_ip: str
    primary_ip4: str
    primary_ip6: str
    device: str
    description: str
    comments: str
    config_template: str
    serial: str
    tags: tuple[str, ...]
    created: str
    last_updated: str
    platform: str
    custom_fields: dict[str, Any]
    extra: dict[str, Any]
    interface_count: int | None
    virtual_disk_count: int | None


@dataclass(slots=True)
class SiteRecord:
    """A site with the region and site group that devices and VMs only reference by site."""

    id: int
    name: str
    region: str
    group: str


@dataclass(slots=True)
class TenantRecord:
    """A tenant with its tenant group."""

    id: int
    name: str
    group: str


@dataclass(slots=True)
class ContactAssignmentRecord:
    """A contact assigned to a device or VM, with its role and priority."""

    id: int
    object_type: str
    object_id: int
    contact: str
    role: str
    priority: str
    last_updated: str = ""


def _name(obj: dict[str, Any] | None, key: str = "name") -> str:
    """The readable name of a nested object: its ``name`` (or ``key``), else ``display``, else empty."""
    if not obj:
        return ""
    value = obj.get(key)
    if value is None:
        value = obj.get("display")
    return "" if value is None else str(value)


def _label(choice: dict[str, Any] | None) -> str:
    """A NetBox choice field ``{"value", "label"}`` as its label."""
    if not choice:
        return ""
    return str(choice.get("label") or choice.get("value") or "")


def _address(ip: dict[str, Any] | None) -> str:
    """A nested IP address as ``address`` with prefix length."""
    if not ip:
        return ""
    return str(ip.get("address") or ip.get("display") or "")


def _id(obj: dict[str, Any] | None) -> int | None:
    return obj.get("id") if obj else None


def _tags(tags: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(_name(tag) for tag in tags or ())


def path_value(data: Any, path: str) -> Any:
    """The value at a dot ``path`` of an API object (``device_type.slug``, ``tags.name``): ``None`` where a part is
    missing; through a list, the value of each item (a list), so ``tags.name`` is every tag's name."""
    value = data
    for part in path.split("."):
        if isinstance(value, list):
            if part.isdigit():
                value = value[int(part)] if int(part) < len(value) else None
            else:
                value = [item.get(part) if isinstance(item, dict) else None for item in value]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
        if value is None:
            return None
    return value


def _extra(data: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    return {path: path_value(data, path) for path in paths} if paths else {}


def device_from_api(data: dict[str, Any], paths: tuple[str, ...] = ()) -> DeviceRecord:
    """Parse one object of ``/api/dcim/devices/``, keeping the values of ``paths`` (``field:`` columns)."""
    device_type = data.get("device_type") or {}
    parent = data.get("parent_device") or {}
    return DeviceRecord(
        id=data["id"],
        name=data.get("name") or "",
        status=_label(data.get("status")),
        tenant_id=_id(data.get("tenant")),
        tenant=_name(data.get("tenant")),
        site_id=_id(data.get("site")),
        site=_name(data.get("site")),
        location=_name(data.get("location")),
        rack=_name(data.get("rack")),
        position=data.get("position"),
        face=_label(data.get("face")),
        role=_name(data.get("role")),
        manufacturer=_name(device_type.get("manufacturer")),
        device_type=_name(device_type, "model"),
        serial=data.get("serial") or "",
        asset_tag=data.get("asset_tag") or "",
        parent_device=_name(parent),
        parent_device_bay=_name(parent.get("device_bay")),
        latitude=data.get("latitude"),
        longitude=data.get("longitude"),
        airflow=_label(data.get("airflow")),
        primary_ip=_address(data.get("primary_ip")),
        primary_ip4=_address(data.get("primary_ip4")),
        primary_ip6=_address(data.get("primary_ip6")),
        oob_ip=_address(data.get("oob_ip")),
        cluster=_name(data.get("cluster")),
        virtual_chassis=_name(data.get("virtual_chassis")),
        vc_position=data.get("vc_position"),
        vc_priority=data.get("vc_priority"),
        description=data.get("description") or "",
        config_template=_name(data.get("config_template")),
        comments=data.get("comments") or "",
        tags=_tags(data.get("tags")),
        created=data.get("created") or "",
        last_updated=data.get("last_updated") or "",
        platform=_name(data.get("platform")),
        custom_fields=data.get("custom_fields") or {},
        extra=_extra(data, paths),
        **{count: data.get(count) for count in DEVICE_COUNT_FIELDS},
    )


def virtual_machine_from_api(data: dict[str, Any], paths: tuple[str, ...] = ()) -> VirtualMachineRecord:
    """Parse one object of ``/api/virtualization/virtual-machines/``, keeping the values of ``paths``."""
    return VirtualMachineRecord(
        id=data["id"],
        name=data.get("name") or "",
        status=_label(data.get("status")),
        site_id=_id(data.get("site")),
        site=_name(data.get("site")),
        cluster=_name(data.get("cluster")),
        role=_name(data.get("role")),
        tenant_id=_id(data.get("tenant")),
        tenant=_name(data.get("tenant")),
        vcpus=data.get("vcpus"),
        memory=data.get("memory"),
        disk=data.get("disk"),
        primary_ip=_address(data.get("primary_ip")),
        primary_ip4=_address(data.get("primary_ip4")),
        primary_ip6=_address(data.get("primary_ip6")),
        device=_name(data.get("device")),
        description=data.get("description") or "",
        comments=data.get("comments") or "",
        config_template=_name(data.get("config_template")),
        serial=data.get("serial") or "",
        tags=_tags(data.get("tags")),
        created=data.get("created") or "",
        last_updated=data.get("last_updated") or "",
        platform=_name(data.get("platform")),
        custom_fields=data.get("custom_fields") or {},
        extra=_extra(data, paths),
        interface_count=data.get("interface_count"),
        virtual_disk_count=data.get("virtual_disk_count"),
    )


def site_from_api(data: dict[str, Any]) -> SiteRecord:
    """Parse one object of ``/api/dcim/sites/``."""
    return SiteRecord(id=data["id"], name=_name(data), region=_name(data.get("region")), group=_name(data.get("group")))


def tenant_from_api(data: dict[str, Any]) -> TenantRecord:
    """Parse one object of ``/api/tenancy/tenants/``."""
    return TenantRecord(id=data["id"], name=_name(data), group=_name(data.get("group")))


def contact_assignment_from_api(data: dict[str, Any]) -> ContactAssignmentRecord:
    """Parse one object of ``/api/tenancy/contact-assignments/``."""
    priority = data.get("priority") or {}
    return ContactAssignmentRecord(
        id=data["id"],
        object_type=data.get("object_type") or "",
        object_id=data["object_id"],
        contact=_name(data.get("contact")),
        role=_name(data.get("role")),
        priority=str(priority.get("value") or "") if isinstance(priority, dict) else str(priority or ""),
        last_updated=data.get("last_updated") or "",
    )


_FIELD_NAMES: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in (DeviceRecord, VirtualMachineRecord)
}

# Bump when a record field keeps its name but changes what it holds. Added, removed or renamed fields change the
# schema by themselves: it names the version and a digest of each record type's field names.
SNAPSHOT_VERSION = 1
SCHEMA_KEY = "_schema"


def snapshot_schema(field_names: Iterable[str]) -> str:
    """The schema of snapshots of a record with these fields: ``SNAPSHOT_VERSION`` and a digest of the names."""
    return f"{SNAPSHOT_VERSION}-{hashlib.sha256(','.join(field_names).encode()).hexdigest()[:12]}"


SNAPSHOT_SCHEMA: dict[type, str] = {cls: snapshot_schema(names) for cls, names in _FIELD_NAMES.items()}


def snapshot_paths_missing(data: dict[str, Any], paths: Iterable[str]) -> list[str]:
    """The ``field:`` paths a stored snapshot did not keep (its records were fetched before the column asked)."""
    extra = data.get("extra") if isinstance(data, dict) else None
    kept = extra if isinstance(extra, dict) else {}
    return [path for path in paths if path not in kept]


@dataclass(slots=True)
class CustomFieldRecord:
    """A NetBox custom field definition: its name, type (``type.value``) and the object types it applies to."""

    id: int
    name: str
    type: str
    object_types: tuple[str, ...]


def custom_field_from_api(data: dict[str, Any]) -> CustomFieldRecord:
    """Parse one object of ``/api/extras/custom-fields/``."""
    kind = data.get("type")
    return CustomFieldRecord(
        id=data["id"],
        name=data.get("name") or "",
        type=str(kind.get("value") or "") if isinstance(kind, dict) else str(kind or ""),
        object_types=tuple(data.get("object_types") or ()),
    )


class SnapshotOutdated(ValueError):
    """A stored snapshot was written by another version of the records: it cannot be read back as a record."""


def snapshot_outdated(cls: type, data: dict[str, Any]) -> str:
    """Why ``data`` (a stored snapshot) is not of this version's ``cls`` schema; ``""`` when it is."""
    stored = data.get(SCHEMA_KEY) if isinstance(data, dict) else None
    if stored != SNAPSHOT_SCHEMA[cls]:
        return f"stored with snapshot schema {stored or 'none'}, this version uses {SNAPSHOT_SCHEMA[cls]}"
    return ""


def record_to_dict(record: DeviceRecord | VirtualMachineRecord) -> dict[str, Any]:
    """A JSON-ready dict of a record (for snapshots).

    A shallow copy: the values are already JSON types, and ``dataclasses.asdict`` deep-copies every nested value,
    which made it the slowest step of a 50,000-object export.
    """
    data = {name: getattr(record, name) for name in _FIELD_NAMES[type(record)]}
    data["tags"] = list(record.tags)
    data[SCHEMA_KEY] = SNAPSHOT_SCHEMA[type(record)]
    return data


def record_json(record: DeviceRecord | VirtualMachineRecord) -> str:
    """A record as compact JSON (``record_to_dict``): what a snapshot stores, and what its digest is taken of."""
    return _JSON.encode(record_to_dict(record))


# One encoder for every record: json.dumps with options builds a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    if data.get(SCHEMA_KEY) != SNAPSHOT_SCHEMA[cls]:
        raise SnapshotOutdated(f"{cls.__name__} snapshot {snapshot_outdated(cls, data)}")
    values = {**data, "tags": tuple(data.get("tags") or ())}
    del values[SCHEMA_KEY]
    return cls(**values)


def device_from_dict(data: dict[str, Any]) -> DeviceRecord:
    """Rebuild a device record from ``record_to_dict`` output; ``SnapshotOutdated`` if another version wrote it."""
    return _from_dict(DeviceRecord, data)  # type: ignore[no-any-return]


def virtual_machine_from_dict(data: dict[str, Any]) -> VirtualMachineRecord:
    """Rebuild a VM record from ``record_to_dict`` output."""
    return _from_dict(VirtualMachineRecord, data)  # type: ignore[no-any-return]
