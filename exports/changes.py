"""What a run changed, object by object and column by column: the previous export's rows against the new ones.

Both sides are read from the devices and VMs CSVs (the previous run's, and the ones this run has just written), so
a change is exactly what a reader of the files would see: an edited device, but also every device whose site was
renamed (its row changed though NetBox did not touch the device). Reading the CSVs back with the C ``csv`` reader
and comparing whole rows (by hash) first keeps this to a fraction of a second and a few megabytes for 50,000
objects; only the rows that differ are held and compared cell by cell. The result is stored per run
(``ExportChange``) inside the run's transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from django.conf import settings

from exports.models import ExportArtifact, ExportChange, ExportRun

ID_COLUMN = "ID"
NAME_COLUMN = "Name"
# The files compared, per kind of object.
FILES = {
    ExportChange.Kind.DEVICE: ExportArtifact.Kind.DEVICES,
    ExportChange.Kind.VM: ExportArtifact.Kind.VMS,
}
SAVE_BATCH = 1000


@dataclass(slots=True)
class ObjectChange:
    """One object added, removed or changed; ``fields`` maps each changed column to ``[old, new]``."""

    kind: str
    change: str
    netbox_id: int
    name: str
    fields: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Comparison:
    """The outcome of comparing a run's files with the previous run's: the changes, or why there are none."""

    changes: list[ObjectChange]
    compared: bool
    note: str

    def counts(self) -> dict[str, int]:
        totals = {change: 0 for change in ExportChange.Change.values}
        for item in self.changes:
            totals[item.change] += 1
        return totals


def _csv_rows(handle: TextIO) -> tuple[list[str], int, Iterator[list[str]]]:
    """A CSV's header, the position of its ``ID`` column, and its other rows."""
    reader = csv.reader(handle)
    header = next(reader, [])
    if ID_COLUMN not in header:
        raise ValueError(f"{Path(handle.name).name} has no {ID_COLUMN} column")
    return header, header.index(ID_COLUMN), reader


def _open(path: Path) -> TextIO:
    # utf-8-sig: the writers prefix a BOM for Excel when EXPORT_CSV_EXCEL_SAFE is on.
    return path.open(newline="", encoding="utf-8-sig")


def files_compare(kind: str, old_path: Path, new_path: Path) -> list[ObjectChange]:
    """Objects added, changed and removed between two CSVs of one kind (added, changed, removed; by name).

    Three passes, so that only the rows that differ are ever held: the old file's ``id -> hash of the row``, then
    the new file against it (a differing hash marks a changed row, kept), then the old file again for the old
    values of those rows and the names of the removed ones.
    """
    with _open(new_path) as handle:
        header = next(csv.reader(handle), [])
    name_at = header.index(NAME_COLUMN) if NAME_COLUMN in header else None

    def name(row: Sequence[str]) -> str:
        return row[name_at] if name_at is not None and name_at < len(row) else ""

    with _open(old_path) as handle:
        old_header, old_at, old_reader = _csv_rows(handle)
        as_new = _reshaper(old_header, header)
        old_hashes = {int(row[old_at]): hash(as_new(row)) for row in old_reader if _has_id(row, old_at)}

    added: list[ObjectChange] = []
    differing: dict[int, tuple[str, ...]] = {}
    with _open(new_path) as handle:
        _, new_at, new_reader = _csv_rows(handle)
        for row in new_reader:
            if not _has_id(row, new_at):
                continue
            netbox_id = int(row[new_at])
            old_hash = old_hashes.pop(netbox_id, None)
            if old_hash is None:
                added.append(ObjectChange(kind, ExportChange.Change.ADDED, netbox_id, name(row)))
            elif old_hash != hash(values := tuple(row)):
                differing[netbox_id] = values
    gone = set(old_hashes)  # what the new file no longer has
    del old_hashes

    changed: list[ObjectChange] = []
    removed: list[ObjectChange] = []
    if differing or gone:
        with _open(old_path) as handle:
            _, old_at, old_reader = _csv_rows(handle)
            for raw in old_reader:
                if not _has_id(raw, old_at):
                    continue
                netbox_id = int(raw[old_at])
                if netbox_id in gone:
                    removed.append(ObjectChange(kind, ExportChange.Change.REMOVED, netbox_id, name(as_new(raw))))
                elif (new := differing.get(netbox_id)) is not None:
                    old = as_new(raw)
                    fields = {
                        column: [old[i], new[i] if i < len(new) else ""]
                        for i, column in enumerate(header)
                        if old[i] != (new[i] if i < len(new) else "")
                    }
                    if fields:
                        changed.append(ObjectChange(kind, ExportChange.Change.CHANGED, netbox_id, name(new), fields))
    return [*sorted(added, key=_order), *sorted(changed, key=_order), *sorted(removed, key=_order)]


def _has_id(row: Sequence[str], at: int) -> bool:
    return len(row) > at and row[at].isdigit()


def _reshaper(old_header: Sequence[str], new_header: Sequence[str]) -> Callable[[list[str]], tuple[str, ...]]:
    """Old rows as rows of the new columns (a column the old file lacks reads as empty)."""
    width = len(new_header)
    if list(old_header) == list(new_header):
        return lambda row: tuple(row) if len(row) == width else tuple((row + [""] * width)[:width])
    where = {column: i for i, column in enumerate(old_header)}
    picks = [where.get(column) for column in new_header]
    return lambda row: tuple(row[i] if i is not None and i < len(row) else "" for i in picks)


def _order(item: ObjectChange) -> tuple[str, int]:
    return item.name.lower(), item.netbox_id


def changes_compute(*, run: ExportRun, previous: ExportRun | None, new_files: dict[str, Path]) -> Comparison:
    """Compare the devices and VMs CSVs this run wrote (``kind -> path``) with those of ``previous``.

    No comparison (and no changes listed) for a first export, an export from another NetBox than the previous
    one, or when the previous files are gone (pruned): the note says which.
    """
    if previous is None:
        return Comparison([], False, "First export: nothing to compare with.")
    if previous.netbox_url and run.netbox_url and previous.netbox_url != run.netbox_url:
        return Comparison([], False, f"Not compared with export #{previous.pk}: it came from another NetBox.")
    old_files = {
        artifact.kind: Path(settings.DATA_DIR) / artifact.path
        for artifact in previous.artifacts.filter(kind__in=FILES.values())
    }
    changes: list[ObjectChange] = []
    for kind, file_kind in FILES.items():
        old_path, new_path = old_files.get(file_kind), new_files.get(file_kind)
        if old_path is None or new_path is None or not old_path.is_file():
            return Comparison([], False, f"Not compared with export #{previous.pk}: its files are gone.")
        changes.extend(files_compare(kind, old_path, new_path))
    comparison = Comparison(changes, True, "")
    counts = comparison.counts()
    comparison.note = (
        f"Compared with export #{previous.pk}: {counts['added']} added, {counts['changed']} changed, "
        f"{counts['removed']} removed."
    )
    return comparison


def changes_save(*, run: ExportRun, changes: Iterable[ObjectChange]) -> int:
    """Store a run's changes; returns how many."""
    items = [
        ExportChange(
            run=run,
            kind=item.kind,
            change=item.change,
            netbox_id=item.netbox_id,
            name=item.name[:255],
            columns=", ".join(item.fields),
            fields=item.fields,
        )
        for item in changes
    ]
    ExportChange.objects.bulk_create(items, batch_size=SAVE_BATCH)
    return len(items)
