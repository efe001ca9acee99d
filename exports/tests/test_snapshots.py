"""Snapshots written by another version of the records: a full export with a log line, never an error."""

import dataclasses

import pytest

from exports.models import ExportRun, NetboxSnapshot
from exports.services import export_run_execute, export_run_request
from exports.snapshots import snapshots_outdated
from integrations.netbox.records import (
    SCHEMA_KEY,
    DeviceRecord,
    SnapshotOutdated,
    device_from_dict,
    record_to_dict,
    snapshot_schema,
    virtual_machine_from_dict,
)

pytestmark = pytest.mark.django_db

OLD_DEVICE_SCHEMA = snapshot_schema(f.name for f in dataclasses.fields(DeviceRecord) if f.name != "serial")


def run_export(**kwargs) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, **kwargs)
    assert created
    return export_run_execute(run=run)


def rewrite_snapshots(kind: str, change) -> None:
    for snapshot in NetboxSnapshot.objects.filter(kind=kind):
        snapshot.data = change(dict(snapshot.data))
        snapshot.save(update_fields=["data"])


def without(key: str):
    return lambda data: {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        # Written before DeviceRecord gained a field (here: serial): the field is missing, the schema another.
        (NetboxSnapshot.Kind.DEVICE, lambda data: {**without("serial")(data), SCHEMA_KEY: OLD_DEVICE_SCHEMA}),
        # Written before snapshots carried a schema at all.
        (NetboxSnapshot.Kind.VM, without(SCHEMA_KEY)),
        # Same fields, but a version whose fields meant something else.
        (NetboxSnapshot.Kind.DEVICE, lambda data: {**data, SCHEMA_KEY: "0-000000000000"}),
    ],
)
def test_snapshots_of_another_schema_mean_a_full_export_with_a_log_line(netbox, kind, change):
    assert run_export().status == "succeeded"
    assert snapshots_outdated() == ""
    rewrite_snapshots(kind, change)
    netbox.update_device(netbox.devices[0]["id"], description="edited after the upgrade")

    run = run_export()

    assert run.status == "succeeded", run.error
    assert run.mode == ExportRun.Mode.FULL
    assert "Full export instead of incremental: the stored" in run.log
    assert "snapshot schema" in run.log
    # The full run rewrote every snapshot in this version's schema: the next run is incremental again.
    assert snapshots_outdated() == ""
    assert run_export().mode == ExportRun.Mode.INCREMENTAL


def test_a_snapshot_of_another_schema_is_a_clear_error_not_a_type_error(netbox):
    assert run_export().status == "succeeded"
    data = NetboxSnapshot.objects.filter(kind=NetboxSnapshot.Kind.DEVICE).values_list("data", flat=True).first()
    record = device_from_dict(data)
    assert record_to_dict(record) == data

    with pytest.raises(SnapshotOutdated, match="DeviceRecord snapshot stored with snapshot schema none"):
        device_from_dict(without(SCHEMA_KEY)(data))
    with pytest.raises(SnapshotOutdated):
        virtual_machine_from_dict(data)  # a device's snapshot is not a VM's


@pytest.mark.django_db(transaction=True)  # autocommit: no transaction of the caller's around the upsert
def test_encoded_snapshots_are_upserted_once_each_in_or_out_of_a_transaction():
    # On PostgreSQL through COPY and one INSERT ... ON CONFLICT; a record listed twice is written once.
    from exports.snapshots import snapshots_upsert_rows

    NetboxSnapshot.objects.create(kind="device", netbox_id=1, name="old", last_updated="t0", digest="d0", data={})
    rows = [
        ("device", 1, "first", "t1", "d1", '{"x": 1}'),
        ("device", 2, "two", "t1", "d2", '{"x": 2}'),
        ("device", 2, "two", "t1", "d2", '{"x": 2}'),
        ("vm", 1, "vm", "t1", "d3", '{"y": "\\t,\\"quoted\\"\\n"}'),
    ]
    snapshots_upsert_rows([rows[:2], rows[2:]])
    snapshots_upsert_rows([[("device", 1, "again", "t2", "d4", '{"x": 3}')]])
    stored = {(s.kind, s.netbox_id): (s.name, s.last_updated, s.digest, s.data) for s in NetboxSnapshot.objects.all()}
    assert stored == {
        ("device", 1): ("again", "t2", "d4", {"x": 3}),
        ("device", 2): ("two", "t1", "d2", {"x": 2}),
        ("vm", 1): ("vm", "t1", "d3", {"y": '\t,"quoted"\n'}),
    }
