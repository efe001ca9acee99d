"""What a run changed, object by object and column by column: the previous export's rows against the new ones.

Both sides are read from the devices and VMs CSVs (the previous run's, and the ones this run has just written), so
a change is exactly what a reader of the files would see: an edited device, but also every device whose site was
renamed (its row changed though NetBox did not touch the device). Reading the two CSVs back with the C ``csv``
reader and comparing whole rows first keeps this to a fraction of a second for 50,000 objects; only the rows that
differ are compared cell by cell. The result is stored per run (``ExportChange``) inside the run's transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


def read_rows(path: Path) -> tuple[list[str], dict[int, tuple[str, ...]]]:
    """A CSV's header and its rows by NetBox id (the ``ID`` column), every cell as the text in the file."""
    # utf-8-sig: the writers prefix a BOM for Excel when EXPORT_CSV_EXCEL_SAFE is on.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if ID_COLUMN not in header:
            raise ValueError(f"{path.name} has no {ID_COLUMN} column")
        at = header.index(ID_COLUMN)
        rows: dict[int, tuple[str, ...]] = {}
        for row in reader:
            if len(row) > at and row[at].isdigit():
                rows[int(row[at])] = tuple(row)
    return header, rows


def rows_compare(
    kind: str,
    old_header: Sequence[str],
    old_rows: dict[int, tuple[str, ...]],
    new_header: Sequence[str],
    new_rows: dict[int, tuple[str, ...]],
) -> list[ObjectChange]:
    """Objects added, removed and changed between two sets of rows of one kind, in that order, by name."""
    if list(old_header) != list(new_header):  # the column set or order changed: read the old rows as new columns
        where = {column: i for i, column in enumerate(old_header)}
        picks = [where.get(column) for column in new_header]
        old_rows = {
            netbox_id: tuple(row[i] if i is not None and i < len(row) else "" for i in picks)
            for netbox_id, row in old_rows.items()
        }
    name_at = list(new_header).index(NAME_COLUMN) if NAME_COLUMN in new_header else None

    def name(row: tuple[str, ...]) -> str:
        return row[name_at] if name_at is not None and name_at < len(row) else ""

    added: list[ObjectChange] = []
    changed: list[ObjectChange] = []
    for netbox_id, row in new_rows.items():
        old = old_rows.get(netbox_id)
        if old is None:
            added.append(ObjectChange(kind, ExportChange.Change.ADDED, netbox_id, name(row)))
        elif old != row:
            fields = {
                column: [old[i] if i < len(old) else "", row[i] if i < len(row) else ""]
                for i, column in enumerate(new_header)
                if (old[i] if i < len(old) else "") != (row[i] if i < len(row) else "")
            }
            if fields:
                changed.append(ObjectChange(kind, ExportChange.Change.CHANGED, netbox_id, name(row), fields))
    removed = [
        ObjectChange(kind, ExportChange.Change.REMOVED, netbox_id, name(row))
        for netbox_id, row in old_rows.items()
        if netbox_id not in new_rows
    ]
    return [
        *sorted(added, key=_order),
        *sorted(changed, key=_order),
        *sorted(removed, key=_order),
    ]


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
        old_header, old_rows = read_rows(old_path)
        new_header, new_rows = read_rows(new_path)
        changes.extend(rows_compare(kind, old_header, old_rows, new_header, new_rows))
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
