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


def test_an_incremental_run_reads_the_stored_state_from_the_covering_index_alone():
    # The ids and times of every stored object come from the index (kind, netbox_id, last_updated), not from each
    # row beside its JSON: 0.55-1.05 s of an incremental run's fetch at 250,000 objects before the index.
    from django.db import connection, transaction

    from exports.snapshots import snapshots_state, snapshots_state_sql

    NetboxSnapshot.objects.bulk_create(
        NetboxSnapshot(
            kind=kind,
            netbox_id=i,
            name=f"n{i}",
            last_updated=f"2026-12-0{i % 9 + 1}T00:00:00Z",
            digest="d",
            data={"comments": "x" * 1500},  # rows of a real record's size, beside which the index is small
        )
        for kind in NetboxSnapshot.Kind.values
        for i in range(1, 500)
    )
    assert snapshots_state("vm") == dict(
        NetboxSnapshot.objects.filter(kind="vm").values_list("netbox_id", "last_updated")
    )
    sql = snapshots_state_sql()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Which plan PostgreSQL picks depends on the table's size and how much of it is vacuumed (here: a few
            # hundred rows, none vacuumed); that the index answers the query alone shows with the table's scans off
            # and the unique index (kind, netbox_id) out of the way, in a transaction rolled back.
            with transaction.atomic():
                cursor.execute(f"ANALYZE {NetboxSnapshot._meta.db_table}")
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("SET LOCAL enable_bitmapscan = off")
                cursor.execute(
                    f"ALTER TABLE {NetboxSnapshot._meta.db_table} DROP CONSTRAINT exports_snapshot_unique_object"
                )
                cursor.execute("EXPLAIN " + sql, ["vm"])
                plan = " ".join(row[0] for row in cursor.fetchall())
                transaction.set_rollback(True)
            assert "Index Only Scan using exports_snapshot_state" in plan, plan
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, ["vm"])
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "USING COVERING INDEX exports_snapshot_state" in plan, plan


def test_an_incremental_run_stores_the_snapshots_and_changes_a_full_run_stores(netbox):
    # The incremental run encodes each record fetched anew once (compared with the stored digest, then written) and
    # stores its changes through plain INSERTs: what a full run of the same NetBox stores, JSON text included.
    from exports.models import ExportChange

    def stored() -> dict[tuple[str, int], tuple[str, str, str, object]]:
        return {(s.kind, s.netbox_id): (s.name, s.last_updated, s.digest, s.data) for s in NetboxSnapshot.objects.all()}

    def changed(run: ExportRun) -> list[tuple[str, str, int, str, str, object]]:
        return [
            (c.kind, c.change, c.netbox_id, c.name, c.columns, c.fields)
            for c in ExportChange.objects.filter(run=run).order_by("kind", "change", "netbox_id")
        ]

    run_export()
    netbox.update_device(netbox.devices[2]["id"], description='édité, "quoted"\nline ✓')
    netbox.update_vm(netbox.vms[7]["id"], description=netbox.vms[7]["description"])  # touched, same values
    netbox.delete_vm(netbox.vms[1]["id"])
    netbox.add_device(name="zz-new ünïcode")
    before = stored()
    incremental = run_export()
    assert incremental.mode == ExportRun.Mode.INCREMENTAL, incremental.log
    after_incremental, incremental_changes = stored(), changed(incremental)
    assert after_incremental != before
    device = next(c for c in incremental_changes if c[:2] == ("device", "changed"))
    assert device[5]["Description"][1] == 'édité, "quoted"\nline ✓'
    assert {c[:2] for c in incremental_changes} >= {("device", "changed"), ("device", "added"), ("vm", "removed")}

    ExportRun.objects.filter(pk=incremental.pk).update(status=ExportRun.Status.FAILED)  # compare with the first run
    full = run_export(force=True)
    assert full.mode == ExportRun.Mode.FULL
    assert stored() == after_incremental
    assert changed(full) == incremental_changes
