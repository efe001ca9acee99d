"""Stored snapshots of NetBox devices and VMs: whether this version of the records can reuse them.

Snapshots carry the record schema they were written with (``integrations.netbox.records.SNAPSHOT_SCHEMA``). After an
upgrade that changes the records (a new field in ``DeviceRecord``), the stored ones are of another schema: the next
export is a full one, which rewrites them all, instead of an incremental run that could not read them.
"""

from __future__ import annotations

from exports.models import NetboxSnapshot
from integrations.netbox.records import DeviceRecord, VirtualMachineRecord, snapshot_outdated

_RECORD_OF_KIND: dict[str, type] = {
    NetboxSnapshot.Kind.DEVICE: DeviceRecord,
    NetboxSnapshot.Kind.VM: VirtualMachineRecord,
}


def snapshots_outdated() -> str:
    """Why the stored snapshots cannot be reused (``""`` when they can): one of another schema.

    One row per kind is read: every full run rewrites all of them, and incremental runs only follow a full run of
    the same schema, so the rows of a kind share one schema.
    """
    for kind, record_type in _RECORD_OF_KIND.items():
        data = NetboxSnapshot.objects.filter(kind=kind).values_list("data", flat=True).first()
        if data is not None and (reason := snapshot_outdated(record_type, data)):
            return f"the stored {NetboxSnapshot.Kind(kind).label.lower()} snapshots were {reason}"
    return ""
