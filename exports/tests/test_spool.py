"""Row spools (``exports.spool.RowSpool``): an indexed spool's rows read back as they were added, and copied as bytes
into the next run's spool, which an incremental run does instead of reading and writing each reused row."""

import hashlib
import json
import marshal
from pathlib import Path

import numpy as np
import pytest

from exports import cells, columns
from exports import spool as spool_module
from exports.constants import DEVICES_CSV
from exports.models import ExportRun
from exports.selectors import artifact_path
from exports.spool import RowSpool
from exports.tests.test_changes import run_export

ROWS = [
    (3, "a", None, 2.5, "é" * 3, 10**20, True),
    (7, "a", "line\nbreak", -0.0, "", -5, False),
    (9, "ü", "b", float("inf"), "x" * 70000, 2**31, None),
]


def test_an_indexed_spool_reads_back_its_rows_and_knows_where_each_one_is(tmp_path):
    spool = RowSpool(tmp_path / ".device.rows", key=0)
    spool.add(ROWS[:2])
    spool.add(ROWS[2:])
    spool.close()
    assert [row for batch in spool.batches() for row in batch] == ROWS
    index = spool.index(3)
    assert index[:, 0].tolist() == [3, 7, 9]
    data = spool.path.read_bytes()
    assert [marshal.loads(data[start:end]) for _, start, end in index.tolist()] == ROWS
    assert spool.index(2) is None  # not an index of that many rows
    spool.index_path.write_bytes(spool.index_path.read_bytes()[:-8])
    assert spool.index(3) is None
    spool.remove()
    assert not spool.path.exists() and not spool.index_path.exists()


def test_rows_copied_as_bytes_read_back_as_the_rows(tmp_path):
    source = RowSpool(tmp_path / "a", key=0)
    source.add(ROWS)
    source.close()
    index = source.index(3)
    data = source.path.read_bytes()
    copy = RowSpool(tmp_path / "b", key=0)
    # The last two rows as one range of bytes, then the first one.
    copy.add_encoded(
        [data[index[1, 1] : index[2, 2]], data[index[0, 1] : index[0, 2]]],
        np.array([7, 9, 3]),
        np.array([index[1, 2] - index[1, 1], index[2, 2] - index[2, 1], index[0, 2] - index[0, 1]]),
    )
    copy.add([ROWS[0]])
    copy.close()
    assert list(copy.batches()) == [[ROWS[1], ROWS[2], ROWS[0]], [ROWS[0]]]
    assert copy.index(4)[:, 0].tolist() == [7, 9, 3, 3]
    with pytest.raises(ValueError):
        RowSpool(tmp_path / "c", key=0).add_encoded([b"x"], np.array([1]), np.array([2]))


def test_a_spool_of_rows_without_integer_ids_has_no_index(tmp_path):
    spool = RowSpool(tmp_path / ".device.rows", key=1)
    spool.add(ROWS)
    spool.close()
    assert list(spool.batches()) == [ROWS]
    assert spool.index(3) is None and not spool.index_path.exists()


def _digests(run: ExportRun) -> dict[str, str]:
    return {a.name: hashlib.sha256(artifact_path(a).read_bytes()).hexdigest() for a in run.artifacts.all()}


def _spool_rows(run: ExportRun, kind: str) -> list[tuple]:
    folder = artifact_path(run.artifacts.get(name=DEVICES_CSV)).parent
    return [row for batch in RowSpool(folder / f".{kind}.rows").batches() for row in batch]


@pytest.mark.django_db
def test_an_incremental_run_copies_the_rows_it_reuses_without_reading_them(netbox, monkeypatch):
    full = run_export(force=True)
    previous = artifact_path(full.artifacts.get(name=DEVICES_CSV)).parent
    stamps = iter(f"2026-12-01T00:00:0{second}.000000Z" for second in range(10))
    netbox.update_device(netbox.devices[3]["id"], description="edited", last_updated=next(stamps))
    netbox.update_vm(netbox.vms[10]["id"], description="resized", last_updated=next(stamps))
    netbox.delete_device(netbox.devices[0]["id"])
    netbox.delete_vm(netbox.vms[-1]["id"])
    stamp = next(stamps)
    netbox.add_device(created=stamp, last_updated=stamp)
    read: list[Path] = []
    batches = RowSpool.batches

    def counted(self):
        read.append(self.path)
        return batches(self)

    monkeypatch.setattr(spool_module.RowSpool, "batches", counted)
    incremental = run_export()
    assert incremental.mode == "incremental"
    assert previous / ".device.rows" not in read and previous / ".vm.rows" not in read
    monkeypatch.undo()
    # Twice over: the second incremental run copies from the spool the first one copied into.
    netbox.update_device(netbox.devices[5]["id"], description="edited again", last_updated=next(stamps))
    netbox.delete_vm(netbox.vms[4]["id"])
    second = run_export()
    assert second.mode == "incremental"
    spooled = {kind: _spool_rows(second, kind) for kind in ("device", "vm")}  # only the newest run keeps its spools
    again = run_export(force=True)
    assert _digests(second) == _digests(again)
    assert spooled == {kind: _spool_rows(again, kind) for kind in ("device", "vm")}
    assert len(spooled["device"]) == len(netbox.devices) and len(spooled["vm"]) == len(netbox.vms)


@pytest.mark.django_db
def test_an_incremental_run_measures_again_only_the_columns_whose_longest_value_went(netbox, monkeypatch):
    netbox.update_device(netbox.devices[4]["id"], serial="S" * 30)  # the one longest serial
    run_export(force=True)
    netbox.delete_device(netbox.devices[4]["id"])
    measured: list[int] = []
    add = cells.ColumnMeter.add

    def counted(self, rows, only=None):
        measured.append(len(rows) * (len(rows[0]) if only is None else len(only)) if rows else 0)
        return add(self, rows, only)

    monkeypatch.setattr(cells.ColumnMeter, "add", counted)
    incremental = run_export()
    monkeypatch.undo()
    assert incremental.mode == "incremental"
    # The row dropped (the device deleted), then the devices left in the few columns whose longest value it held
    # (its serial, and its name and id where no other is as long), not in every column of the row.
    width = len(columns.DEVICE_COLUMNS)
    assert measured[1] == width and sum(measured) <= width + 5 * len(netbox.devices), measured
    folder = artifact_path(incremental.artifacts.get(name=DEVICES_CSV)).parent
    meters = json.loads((folder / ".rows.json").read_text(encoding="utf-8"))["meters"]
    again = run_export(force=True)
    folder = artifact_path(again.artifacts.get(name=DEVICES_CSV)).parent
    assert meters == json.loads((folder / ".rows.json").read_text(encoding="utf-8"))["meters"]
    assert _digests(incremental) == _digests(again)
