"""The files of a run: writing them, reusing the previous run's files when nothing changed, and pruning old runs'
folders.

Written in two passes, never holding the inventory. First the records stream from their sources (``exports.fetch``:
NetBox's pages, or snapshots merged with the records fetched anew) a batch at a time: each batch becomes rows
(``exports.transform``), written to the devices or VMs CSV, appended to the kind's row spool (``exports.spool``) and
measured for the workbook's widths (``exports.cells.ColumnMeter``). Then a forked child writes the merged CSV and the
workbook from the spools while this process runs the companions (``exports.companions``), which read the same
spools, and the caller's block (comparing the CSVs, saving the snapshots)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import marshal
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from enreach.forked import FORK_AVAILABLE, ChildProcessFailed, Mailbox, forked, release_freed_memory
from exports import columns, companions, rowmap, transform
from exports.atomic import FILE_MODE, FileInfo
from exports.cells import ColumnMeter
from exports.changes import RecordsDelta
from exports.column_sets import column_set_for_run
from exports.companions import Companion, CompanionPlan, CompanionWrite, KindRows
from exports.constants import DEVICES_CSV, MERGED_CSV, VMS_CSV, WORKBOOK
from exports.csvfiles import (
    CsvIndexed,
    csv_index_path,
    csv_index_remove,
    csv_indexed,
    csv_records,
    csv_records_of,
    write_csv,
)
from exports.errors import ExportError
from exports.fetch import RECORD_BATCH, ROWS_META, Fetched, KindSource, PreviousRows
from exports.models import ExportArtifact, ExportRun
from exports.recorder import RunRecorder
from exports.snapshots import snapshot_row
from exports.spool import SPOOL_INDEX_SUFFIX, RowSpool, spool_row
from exports.workbook import (
    ROWS_XML,
    ColumnSizes,
    ExtraSheet,
    RowsXml,
    data_sheets_needed,
    read_workbook_order,
    write_workbook_streamed,
)
from integrations.netbox.transport import ListingChanged

logger = logging.getLogger(__name__)

# The files every run writes, in the order they are listed; companions may add others (``artifact_kind``).
ARTIFACT_KINDS = {
    DEVICES_CSV: ExportArtifact.Kind.DEVICES,
    VMS_CSV: ExportArtifact.Kind.VMS,
    MERGED_CSV: ExportArtifact.Kind.MERGED,
    WORKBOOK: ExportArtifact.Kind.WORKBOOK,
}


def artifact_kind(name: str) -> str:
    """The artifact kind of a run's file: one of the four every run writes, or one a companion declared."""
    return ARTIFACT_KINDS.get(name) or companions.artifact_kinds()[name]


@dataclass(frozen=True)
class FilesPlan:
    """What shapes a run's files beyond the rows: the settings, and each companion's plan (its settings read from the
    settings and the database before the export forks its writing child, which must not use the database)."""

    workbook_columns: tuple[str, ...]
    excel_safe: bool
    companions: tuple[tuple[Companion, CompanionPlan], ...] = field(default=())
    column_set: columns.ColumnSet = columns.DEFAULT_SET

    @property
    def digest(self) -> str:
        """The same for two runs whose files, from the same rows, are the same: the previous run's files are reused
        only when nothing changed in NetBox and this matches. Each companion contributes its own digest (the
        data-quality report: its rules, their settings, the day when a rule compares dates with it)."""
        shape = {
            "workbook_columns": self.workbook_columns,
            "excel_safe": self.excel_safe,
            "companions": {companion.name: plan.digest for companion, plan in self.companions},
        }
        if self.column_set.digest:  # the default set leaves the digest as it always was
            shape["columns"] = self.column_set.digest
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def files_plan() -> FilesPlan:
    column_set = column_set_for_run()
    order = settings.EXPORT_WORKBOOK_COLUMNS
    if len(order) == 1 and order[0].lower().endswith(".xlsx"):
        order = read_workbook_order(Path(order[0]))
    planned = []
    for companion in companions.companions():
        plan = companion.prepare()
        if plan is not None:
            planned.append((companion, plan))
    return FilesPlan(
        workbook_columns=column_set.workbook_order(order or None),
        excel_safe=settings.EXPORT_CSV_EXCEL_SAFE,
        companions=tuple(planned),
        column_set=column_set,
    )


@dataclass
class Writing:
    """A run's files in the making: ``files()`` waits for them all; ``companions`` is what each companion did."""

    files: Callable[[], dict[str, FileInfo]]
    companions: dict[str, CompanionWrite]


# Each kind's CSV and per-batch transform (a function of the records, the lookups and the column set).
_KINDS: dict[str, tuple[str, Callable[[Any, transform.Lookups, columns.ColumnSet], list[Any]]]] = {
    "device": (DEVICES_CSV, transform.device_rows),
    "vm": (VMS_CSV, transform.vm_rows),
}


def _kind_columns(kind: str, column_set: columns.ColumnSet) -> tuple[str, ...]:
    return tuple(column_set.device_columns if kind == "device" else column_set.vm_columns)


@dataclass
class _Streamed:
    """A kind's rows once streamed: its CSV, its spool and what was measured of its columns."""

    csv: FileInfo
    spool: RowSpool
    meter: ColumnMeter
    # Where each row's record is in the previous merged CSV (``_rows_reused``), and where that CSV's records of this
    # kind start; None when every merged row is made.
    merged: RowSpool | None = None
    merged_from: tuple[Path, int] | None = None
    # The previous CSV's records this run did not copy, and the records made anew: all that can differ between the
    # previous run's CSV and this one (``_rows_reused``); None when every record may.
    delta: RecordsDelta | None = None
    previous: Path | None = None  # the previous run's folder, whose rows were reused
    made: RowSpool | None = None  # the rows made now (not reused), in order: the merged CSV makes only their records


def _stream_kind(
    source: KindSource,
    first_walk: Iterator[Sequence[Any]],
    lookups: transform.Lookups,
    folder: Path,
    excel_safe: bool,
    recorder: RunRecorder,
    column_set: columns.ColumnSet,
) -> _Streamed:
    """Stream a kind's records into its CSV and spool, a batch at a time; a NetBox listing that changed under the
    walk is walked once more from the start (the CSV, spool, diff and snapshots of the first walk discarded)."""
    name, _ = _KINDS[source.kind]
    kind_columns = _kind_columns(source.kind, column_set)
    # Indexed by each row's id: the next incremental run copies the rows it reuses as bytes (``_rows_reused_copied``).
    spool = RowSpool(folder / f".{source.kind}.rows", key=_id_position(source.kind, column_set))
    merged = RowSpool(folder / f".{source.kind}.merged")  # where each row's previous merged record is, when reused
    made = RowSpool(folder / f".{source.kind}.made")  # beside it, the rows made now
    merged_from = (
        _previous_merged(source.previous_rows, source.kind, excel_safe) if source.previous_rows is not None else None
    )
    previous_meter = _previous_meter(source.previous_rows, source.kind, len(kind_columns))
    for walk in (1, 2):
        meter = ColumnMeter(len(kind_columns))
        dropped = ColumnMeter(len(kind_columns))
        spool.reset()
        merged.reset()
        made.reset()
        source.reset()
        walking = first_walk if walk == 1 else source.batches()
        delta = RecordsDelta()
        unmeasured: list[bool] = []  # batches that came as bytes, not measured as they passed

        def rows(
            meter: ColumnMeter = meter,
            walking: Iterator[Sequence[Any]] = walking,
            delta: RecordsDelta = delta,
            dropped: ColumnMeter = dropped,
            unmeasured: list[bool] = unmeasured,
        ) -> Iterator[Any]:
            if source.previous_rows is not None:
                reused = _rows_reused(
                    source.previous_rows, source.kind, lookups, column_set, excel_safe, delta, merged_from is not None
                )
                for batch, items, picks, made_rows, dropped_rows, encoded in reused:
                    if encoded is not None:
                        spool.add_encoded(encoded.parts, encoded.keys, encoded.lengths)
                    elif batch is not None:
                        spool.add(batch)
                    merged.add(picks)
                    if merged_from is not None:
                        made.add(made_rows)
                    if previous_meter is None:
                        if batch is None:
                            unmeasured.append(True)
                        else:
                            meter.add(batch)
                    else:  # the reused rows' sizes are the previous run's: only the rows made and dropped measured
                        meter.add(made_rows)
                        dropped.add(dropped_rows)
                    yield from items
                return
            for batch in _made(source, walking, lookups, column_set):
                spool.add(batch)
                meter.add(batch)
                yield from batch

        try:
            info = write_csv(
                folder / name,
                kind_columns,
                rows(),
                excel_safe=excel_safe,
                raw=source.previous_rows is not None,
                index=True,
            )
        except ListingChanged as exc:
            if walk == 2:
                raise
            recorder.log(f"{exc}; reading it again.")
            continue
        spool.close()
        merged.close()
        made.close()
        if unmeasured:
            meter = ColumnMeter(len(kind_columns))
            for batch in spool.batches():
                meter.add(batch)
        elif previous_meter is not None and source.previous_rows is not None:
            left = previous_meter.without(dropped)
            if left is None:
                # In some columns every row as long as a longest one dropped: those columns (only) measured again,
                # over every row (the rows made now included).
                left, again = previous_meter.without_measuring(dropped)
                meter.forget(again)
                for batch in spool.batches():
                    left.add(batch, again)
            left.merge(meter)
            meter = left
        return _Streamed(
            info,
            spool,
            meter,
            merged if merged.rows == spool.rows and spool.rows and merged_from is not None else None,
            merged_from,
            delta if delta.new is not None and source.previous_rows is not None else None,
            source.previous_rows.spool.parent if source.previous_rows is not None else None,
            made=made,
        )
    raise AssertionError("unreachable")


def _made(
    source: KindSource, walking: Iterator[Sequence[Any]], lookups: transform.Lookups, column_set: columns.ColumnSet
) -> Iterator[list[Any]]:
    """The rows of each batch of records walked (which the source counts and spools as they pass)."""
    _, rows_of = _KINDS[source.kind]
    for records in walking:
        batch = rows_of(records, lookups, column_set)
        source.passed(records)
        yield batch


def _id_position(kind: str, column_set: columns.ColumnSet) -> int:
    """Where a kind's rows hold the object's id (the column set requires its ``contract:ID`` column)."""
    dataset = columns.DEVICES if kind == "device" else columns.VMS
    sources = [column.source for column in column_set.visible(dataset)]
    return sources.index(columns.CONTRACT_PREFIX + "ID")


def _rows_reused(
    previous: PreviousRows,
    kind: str,
    lookups: transform.Lookups,
    column_set: columns.ColumnSet,
    excel_safe: bool,
    delta: RecordsDelta | None = None,
    merged: bool = False,
) -> Iterator[tuple[list[Any] | None, list[Any], list[int], list[Any], list[Any], _Encoded | None]]:
    """A kind's rows in id order, ``RECORD_BATCH`` at a time: the previous run's row of every object NetBox did not
    touch (read back from its spool), and a row made now for each record fetched anew (changed or added). Rows of
    objects deleted since are dropped. Only the fresh records go through the transform.

    Each batch comes with what the kind's CSV gets for its rows: a reused row's record copied from the previous run's
    CSV when that CSV was written with the same ``excel_safe`` (each run of reused records as one range of bytes,
    ``CsvSpan``, where the CSV's index is there; else each record, ``bytes``, the same record in the same order as its
    spool), else the row to format; and, with ``merged``, where each row's record is in the previous merged
    CSV (``_previous_merged``), which the merged CSV copies in turn (``_merged_items``): how many of that CSV's
    records to pass over before it (those of rows dropped since), or ``-1`` for a row made now.

    When the CSV's records are copied, ``delta`` gets the previous records of the objects made anew or deleted and
    the records made now (``delta.new``, set once the walk is done): what the changes compare (``changes``).

    Each batch also comes with its rows made now and the previous rows it dropped (deleted, or made anew): what the
    column meter measures when it takes the previous run's sizes for the rest (``_previous_meter``).

    Where the previous spool has its index (``RowSpool.index``) and the CSV's records are copied by ranges, nothing is
    read or written row by row (``_rows_reused_copied``): the batches come as bytes for the spool (``_Encoded``),
    without their rows (``None``)."""
    name, rows_of = _KINDS[kind]
    at = _id_position(kind, column_set)
    fresh = rows_of(sorted(previous.fresh, key=lambda record: record.id), lookups, column_set)
    fresh_ids = {record.id for record in previous.fresh}
    current = previous.current
    folder = previous.spool.parent
    try:
        meta = json.loads((folder / ROWS_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    records: Iterator[bytes] | None = None
    # The previous CSV's index (``csv_indexed``) lets each run of reused records be copied as one range of bytes;
    # without one, the records are read one by one.
    indexed: CsvIndexed | None = None
    if meta.get("excel_safe") == excel_safe and (folder / name).is_file():
        indexed = csv_indexed(folder / name)
        if indexed is None:
            records = csv_records(folder / name)
            next(records, None)  # the header
    if indexed is not None and isinstance(meta.get(kind), int):
        index = _previous_index(previous.spool, meta[kind])
        if index is not None:
            if indexed.rows != len(index):
                raise ExportError("The previous run's rows and CSV differ; run the export with --force.")
            yield from _rows_reused_copied(previous, index, fresh, at, indexed, excel_safe, delta, merged)
            return
    position, total, passed, number = 0, 0, 0, 0
    first = stop = 0  # the run of reused records not yet in ``items`` (with the index)
    out: list[Any] = []
    items: list[Any] = []
    picks: list[int] = []
    made: list[Any] = []
    dropped: list[Any] = []
    for batch in RowSpool(previous.spool).batches():
        for row in batch:
            record = next(records, None) if records is not None else None
            netbox_id = row[at]
            while position < len(fresh) and fresh[position][at] < netbox_id:
                if stop > first and indexed is not None:
                    items.append(indexed.span(first, stop))
                    first = stop
                out.append(fresh[position])
                items.append(fresh[position])
                made.append(fresh[position])
                picks.append(-1)
                position += 1
            if netbox_id in current and netbox_id not in fresh_ids:
                out.append(row)
                if indexed is None:
                    items.append(row if record is None else record)
                elif stop != number:
                    if stop > first:
                        items.append(indexed.span(first, stop))
                    first, stop = number, number + 1
                else:
                    stop += 1
                picks.append(passed if merged else -1)
                passed = 0
            else:
                passed += 1
                dropped.append(row)
                if delta is not None and record is not None:
                    delta.old.append(record)  # deleted, or made anew below
                elif delta is not None and indexed is not None and number < indexed.rows:
                    delta.old.append(indexed.read(number, number + 1))
            number += 1
        if len(out) >= RECORD_BATCH:
            if stop > first and indexed is not None:
                items.append(indexed.span(first, stop))
                first = stop
            total += len(out)
            yield out, items, picks, made, dropped, None
            out, items, picks, made, dropped = [], [], [], [], []
    if stop > first and indexed is not None:
        items.append(indexed.span(first, stop))
    if (records is not None and next(records, None) is not None) or (indexed is not None and indexed.rows != number):
        raise ExportError("The previous run's rows and CSV differ; run the export with --force.")
    out.extend(fresh[position:])
    items.extend(fresh[position:])
    made.extend(fresh[position:])
    picks.extend([-1] * (len(fresh) - position))
    total += len(out)
    if out or dropped:
        yield out, items, picks, made, dropped, None
    if total != len(current):
        raise ExportError("The previous run's rows are incomplete; run the export with --force.")
    if delta is not None and (records is not None or indexed is not None):
        delta.new = csv_records_of(fresh, excel_safe=excel_safe)


def _previous_index(spool: Path, rows: int) -> Any:
    """The previous spool's index (``RowSpool.index``) when its rows are in strictly increasing id order (as
    ``_rows_reused`` walks them), else ``None``."""
    import numpy as np

    index = RowSpool(spool).index(rows)
    if index is None or (rows > 1 and not (np.diff(index[:, 0]) > 0).all()):
        return None
    return index


@dataclass
class _Encoded:
    """A batch of rows as an indexed spool's bytes (``RowSpool.add_encoded``): runs of the previous spool's rows
    copied as they are, and the rows made now encoded."""

    parts: list[bytes]
    keys: Any  # numpy arrays: each row's id and size
    lengths: Any


def _rows_reused_copied(
    previous: PreviousRows,
    index: Any,
    fresh: list[Any],
    at: int,
    indexed: CsvIndexed,
    excel_safe: bool,
    delta: RecordsDelta | None,
    merged: bool,
) -> Iterator[tuple[None, list[Any], list[int], list[Any], list[Any], _Encoded]]:
    """``_rows_reused`` from the previous spool's index (``RowSpool.index``): which rows are kept, where the rows made
    now go and what each batch holds are worked out on the index's arrays, and each run of kept rows is copied as one
    range of the spool's bytes (and one ``CsvSpan`` of the CSV), neither read row by row. Only the rows dropped are
    read (for the column meter); the batches come without their rows (``None``) but with their bytes."""
    import numpy as np

    keys, starts, ends = index[:, 0], index[:, 1], index[:, 2]
    current = np.fromiter(previous.current, np.int64, len(previous.current))
    fresh_keys = np.fromiter((row[at] for row in fresh), np.int64, len(fresh))
    kept_mask = np.isin(keys, current) & ~np.isin(keys, np.fromiter((r.id for r in previous.fresh), np.int64))
    kept = np.flatnonzero(kept_mask)
    total = len(kept) + len(fresh)
    if total != len(previous.current):
        raise ExportError("The previous run's rows are incomplete; run the export with --force.")
    # A row made now goes before the first previous row of a greater id (``_rows_reused``'s walk).
    before = np.searchsorted(keys, fresh_keys, side="right")
    kept_at = np.arange(len(kept)) + np.searchsorted(before, kept, side="right")
    fresh_at = np.arange(len(fresh)) + np.searchsorted(kept, before, side="left")
    source = np.empty(total, np.int64)  # each row's previous row, or -1 - its place in ``fresh``
    source[kept_at] = kept
    source[fresh_at] = -1 - np.arange(len(fresh))
    # How many previous rows were dropped since the kept row before: what the merged CSV passes over.
    passed = np.diff(kept, prepend=-1) - 1
    picks_all = np.full(total, -1, np.int64)
    if merged:
        picks_all[kept_at] = passed
    lengths_all = np.empty(total, np.int64)
    lengths_all[kept_at] = ends[kept] - starts[kept]
    keys_all = np.empty(total, np.int64)
    keys_all[kept_at] = keys[kept]
    keys_all[fresh_at] = fresh_keys
    encoded_fresh = [marshal.dumps(row, 2) for row in fresh]  # as ``RowSpool`` encodes an indexed spool's rows
    lengths_all[fresh_at] = np.fromiter(map(len, encoded_fresh), np.int64, len(fresh))
    dropped_rows = np.flatnonzero(~kept_mask)
    with open(previous.spool, "rb") as spool_file:
        spans = zip(starts[dropped_rows].tolist(), ends[dropped_rows].tolist(), strict=True)
        dropped = [spool_row(os.pread(spool_file.fileno(), end - start, start)) for start, end in spans]
        if delta is not None:
            delta.old.extend(indexed.read(number, number + 1) for number in dropped_rows.tolist())
        # Where a run of rows copied as they are breaks: a row made now, a row dropped before it; the spool's bytes
        # also break between the previous spool's batches.
        follows = np.zeros(total, bool)
        follows[1:] = (source[1:] >= 0) & (source[:-1] >= 0) & (source[1:] == source[:-1] + 1)
        contiguous = follows.copy()
        contiguous[1:] &= starts[np.maximum(source[1:], 0)] == ends[np.maximum(source[:-1], 0)]
        sent_dropped = False
        for first in range(0, total, RECORD_BATCH):
            stop = min(first + RECORD_BATCH, total)
            items: list[Any] = []
            parts: list[bytes] = []
            made: list[Any] = []
            span_breaks = np.flatnonzero(~follows[first + 1 : stop]) + first + 1
            byte_breaks = np.flatnonzero(~contiguous[first + 1 : stop]) + first + 1
            for begin, end in itertools.pairwise([first, *span_breaks.tolist(), stop]):
                origin = int(source[begin])
                if origin < 0:
                    made.append(fresh[-1 - origin])
                    items.append(fresh[-1 - origin])
                else:
                    items.append(indexed.span(origin, origin + end - begin))
            for begin, end in itertools.pairwise([first, *byte_breaks.tolist(), stop]):
                origin = int(source[begin])
                if origin < 0:
                    parts.append(encoded_fresh[-1 - origin])
                else:
                    start, finish = int(starts[origin]), int(ends[origin + end - begin - 1])
                    parts.append(os.pread(spool_file.fileno(), finish - start, start))
            yield (
                None,
                items,
                picks_all[first:stop].tolist(),
                made,
                [] if sent_dropped else dropped,
                _Encoded(parts, keys_all[first:stop], lengths_all[first:stop]),
            )
            sent_dropped = True
        if not total and dropped:
            yield None, [], [], [], dropped, _Encoded([], keys_all, lengths_all)
    if delta is not None:
        delta.new = csv_records_of(fresh, excel_safe=excel_safe)


def _previous_meter(previous: PreviousRows | None, kind: str, width: int) -> ColumnMeter | None:
    """What the previous run's column meter measured of its rows of ``kind`` (kept in its ``.rows.json``), or
    ``None`` when it is not there (the reused rows are then measured again)."""
    if previous is None:
        return None
    try:
        meta = json.loads((previous.spool.parent / ROWS_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    meters = meta.get("meters") if isinstance(meta, dict) else None
    return ColumnMeter.of_state(meters.get(kind), width) if isinstance(meters, dict) else None


def _previous_merged(previous: PreviousRows, kind: str, excel_safe: bool) -> tuple[Path, int] | None:
    """The previous run's merged CSV and where its records of ``kind`` start (the devices', then the VMs', each in
    the order of the kind's row spool), when the merged CSV may copy them: written with the same ``excel_safe``."""
    folder = previous.spool.parent
    try:
        meta = json.loads((folder / ROWS_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name, _ = _KINDS[kind]
    if meta.get("excel_safe") != excel_safe or not (folder / name).is_file() or not (folder / MERGED_CSV).is_file():
        return None
    if not isinstance(meta.get("device"), int):
        return None
    return folder / MERGED_CSV, 1 + (meta["device"] if kind == "vm" else 0)


@dataclass
class _ForkedKind:
    """What a kind streamed in a forked process sends back (its spools are files the parent opens again)."""

    csv: FileInfo
    rows: int
    meter: ColumnMeter
    logs: list[str]
    counts: Any  # the child's NetBox client's ``counts()``


def _stream_kind_forked(
    source: KindSource,
    lookups: transform.Lookups,
    folder: Path,
    excel_safe: bool,
    column_set: columns.ColumnSet,
) -> _ForkedKind:
    """``_stream_kind`` in a forked child, beside the parent streaming the other kind: both CPU cores instead of one.

    No database here (nor the parent's NetBox connections): the records walk through a client of the child's own,
    their snapshots go to the kind's snapshot spool as in the parent, and their diff keys (``id, last_updated,
    name``) to a spool the parent diffs against the stored snapshots once the child is done."""
    assert source.forked_batches is not None and source.forked_counts is not None
    name, rows_of = _KINDS[source.kind]
    kind_columns = _kind_columns(source.kind, column_set)
    spool = RowSpool(folder / f".{source.kind}.rows", key=_id_position(source.kind, column_set))
    keys = RowSpool(folder / f".{source.kind}.keys")
    stage = RowSpool(folder / f".{source.kind}.snapshots")
    logs: list[str] = []
    for walk in (1, 2):
        meter = ColumnMeter(len(kind_columns))
        for each in (spool, keys, stage):
            each.reset()
        walking = source.forked_batches()

        def rows(meter: ColumnMeter = meter, walking: Iterator[Sequence[Any]] = walking) -> Iterator[Any]:
            for records in walking:
                batch = rows_of(records, lookups, column_set)
                stage.add([snapshot_row(source.kind, record) for record in records])
                keys.add([(record.id, record.last_updated, record.name) for record in records])
                spool.add(batch)
                meter.add(batch)
                yield from batch

        try:
            info = write_csv(folder / name, kind_columns, rows(), excel_safe=excel_safe, index=True)
        except ListingChanged as exc:
            if walk == 2:
                raise
            logs.append(f"{exc}; reading it again.")
            continue
        for each in (spool, keys, stage):
            each.close()
        return _ForkedKind(info, spool.rows, meter, logs, source.forked_counts())
    raise AssertionError("unreachable")


def _forked_kind_done(source: KindSource, outcome: _ForkedKind, folder: Path, recorder: RunRecorder) -> _Streamed:
    """The parent's side of ``_stream_kind_forked`` once the child is done: its log lines and requests, the kind's
    diff against the stored snapshots (read here, where the database is), its progress."""
    for line in outcome.logs:
        recorder.log(line)
    if source.forked_absorb is not None:
        source.forked_absorb(outcome.counts)
    keys = RowSpool(folder / f".{source.kind}.keys")
    try:
        if source.diff is not None:
            source.diff.reset()
            for batch in keys.batches():
                source.diff.add_keys(batch)
    finally:
        keys.remove()
    if source.kind == "device":
        recorder.progress(devices_fetched=outcome.rows)
    else:
        recorder.progress(vms_fetched=outcome.rows)
    spool = RowSpool(folder / f".{source.kind}.rows")
    spool.rows = outcome.rows
    return _Streamed(outcome.csv, spool, outcome.meter)


def _workbook_sizes(
    streamed: dict[str, _Streamed], workbook_columns: Sequence[str], column_set: columns.ColumnSet
) -> ColumnSizes:
    """The workbook's column sizes from each kind's: a merged row holds a kind's value or ``""`` in each column, and
    ``netbox_type`` holds the kind's type value."""
    lines = [0] * len(workbook_columns)
    values = [0] * len(workbook_columns)
    types = {"device": columns.DEVICE_TYPE_VALUE, "vm": columns.VM_TYPE_VALUE}
    for kind, kind_streamed in streamed.items():
        if not kind_streamed.spool.rows:
            continue
        position = {name: index for index, name in enumerate(_kind_columns(kind, column_set))}
        for index, name in enumerate(workbook_columns):
            if name == column_set.merged_columns[-1]:
                line = value = len(types[kind])
            elif name in position:
                line = kind_streamed.meter.lines[position[name]]
                value = kind_streamed.meter.values[position[name]]
            else:
                continue
            lines[index] = max(lines[index], line)
            values[index] = max(values[index], value)
    return ColumnSizes(lines=lines, values=values)


@dataclass
class Streamed:
    """A run's rows once streamed: each kind's CSV, spool and measured columns (``files_streaming``)."""

    kinds: dict[str, _Streamed]

    @property
    def deltas(self) -> dict[str, RecordsDelta]:
        """Per artifact kind (devices, VMs): what alone can differ from the previous run's CSV, where the run copied
        the previous records (``changes.changes_compute``)."""
        return {
            ARTIFACT_KINDS[_KINDS[kind][0]]: each.delta for kind, each in self.kinds.items() if each.delta is not None
        }

    @property
    def rows(self) -> int:
        return sum(kind.spool.rows for kind in self.kinds.values())


@contextlib.contextmanager
def files_streaming(fetched: Fetched, folder: Path, recorder: RunRecorder, plan: FilesPlan) -> Iterator[Streamed]:
    """Stream each kind's records into its CSV and row spool (see the module); the spools are removed when the block
    ends. Both kinds' walks start at once: the VMs' first page is in flight while the devices stream."""
    folder.mkdir(parents=True, exist_ok=True)
    streamed: dict[str, _Streamed] = {}
    sources = fetched.sources
    # A full run's VMs stream in a forked child while this process streams the devices (each kind's pages, rows,
    # CSV, spools): the transform and the snapshots' encoding take both cores instead of one.
    in_child = [
        kind
        for kind, source in sources.items()
        if source.forked_batches is not None and settings.EXPORT_PARALLEL_WRITE and FORK_AVAILABLE
    ]
    try:
        with contextlib.ExitStack() as children:
            outcomes = {
                kind: children.enter_context(
                    forked(
                        partial(
                            _stream_kind_forked,
                            sources[kind],
                            fetched.lookups,
                            folder,
                            plan.excel_safe,
                            plan.column_set,
                        )
                    )
                )
                for kind in in_child
            }
            walks = {kind: source.batches() for kind, source in sources.items() if kind not in outcomes}
            for kind in list(walks):
                first_walk = walks.pop(kind)
                streamed[kind] = _stream_kind(
                    sources[kind], first_walk, fetched.lookups, folder, plan.excel_safe, recorder, plan.column_set
                )
                del first_walk
            for kind, outcome in outcomes.items():
                streamed[kind] = _forked_kind_done(sources[kind], outcome(), folder, recorder)
        streamed = {kind: streamed[kind] for kind in sources}  # the sources' order (devices first)
        # The row spools stay in the run's folder: the next incremental run reuses them (``_rows_reused``).
        rows_meta = {
            "key": fetched.rows_key,
            "contacts": fetched.contacts_digest,
            "excel_safe": plan.excel_safe,  # the CSVs' records, which the next run may copy
            # What the column meter measured (the longest lines and values and how many rows have them): the next
            # incremental run measures only the rows it makes and drops.
            "meters": {kind: each.meter.state() for kind, each in streamed.items()},
            **{kind: each.spool.rows for kind, each in streamed.items()},
        }
        (folder / ROWS_META).write_text(json.dumps(rows_meta), encoding="utf-8")
        fetched.finish()  # drops the sources: nothing of the walks is left when the writing child is forked
        yield Streamed(streamed)
    except BaseException:
        _rows_remove(folder)
        raise
    finally:
        for kind in _KINDS:
            RowSpool(folder / f".{kind}.keys").remove()
            RowSpool(folder / f".{kind}.merged").remove()
            RowSpool(folder / f".{kind}.made").remove()


def _rows_remove(folder: Path) -> None:
    """Remove a run's row spools (and what says they are there)."""
    with contextlib.suppress(FileNotFoundError):
        (folder / ROWS_META).unlink()
    for kind in _KINDS:
        RowSpool(folder / f".{kind}.rows").remove()
    for name in (ROWS_XML, *companions.kept_files()):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for name in (DEVICES_CSV, VMS_CSV, MERGED_CSV):
        csv_index_remove(folder / name)
    with contextlib.suppress(FileNotFoundError):
        rowmap.row_map_path(folder / MERGED_CSV).unlink()


@contextlib.contextmanager
def files_writing(streamed: Streamed, folder: Path, recorder: RunRecorder, plan: FilesPlan) -> Iterator[Writing]:
    """Write the other files from the streamed rows; yields a ``Writing`` whose ``files()`` waits for them all.

    A forked child writes the workbook from the spools (the larger half of the work) while this process runs the
    companions (the data-quality report) over the same spools, writes the merged CSV and then runs the caller's
    block (comparing the CSVs, saving the snapshots): both CPU cores instead of one. The companions' messages reach
    the child through a mailbox once it has written the data sheets; their sheets follow. Leaving the block with an
    error stops the child.
    """
    excel_safe, workbook_columns, column_set = plan.excel_safe, plan.workbook_columns, plan.column_set
    kinds = streamed.kinds
    total = streamed.rows
    sizes = _workbook_sizes(kinds, workbook_columns, column_set)
    if (sheets_needed := data_sheets_needed(total)) > 1:
        recorder.log(
            f"{total:,} rows are more than an Excel sheet holds: the workbook continues them on {sheets_needed} sheets "
            "of the same columns, each its own table."
        )
    with_sheets = [
        (companion, companion_plan) for companion, companion_plan in plan.companions if companion_plan.sheets
    ]
    mailbox = Mailbox() if with_sheets else None
    mailbox_wait = [0.0]  # the seconds the child waited for the companions' messages

    def companion_sheets() -> list[ExtraSheet]:
        """The companions' sheets, from their messages: ready by the time the data sheets are written, or nearly."""
        sheets: list[ExtraSheet] = []
        if mailbox is not None:
            waiting = time.perf_counter()
            messages = mailbox.receive()
            mailbox_wait[0] = time.perf_counter() - waiting
            assert isinstance(messages, dict)
            for companion, companion_plan in with_sheets:
                assert companion_plan.sheets is not None
                sheets += companion_plan.sheets(messages.get(companion.name), folder)
        return sheets

    def keyed(kind: str, rank: int) -> tuple[Iterator[Sequence[Any]], Iterator[tuple[list[int], list[int]]]]:
        """A kind's row batches in the workbook's columns, and beside them each row's key in the workbook's kept XML
        (``RowsXml``: its kind and id) and its pick in the previous merged CSV (``_rows_reused``), the workbook's too.
        In an incremental run only the rows made now are read (``.made``) and converted: a reused row's batch is read
        from the spool only if the previous run's XML of the row is wanting."""
        kind_streamed = kinds[kind]
        kind_columns, type_value = _kind_columns(kind, column_set), _TYPE_VALUES[kind]
        at = _id_position(kind, column_set)

        def converted(batches: Iterable[Sequence[Any]]) -> Iterator[list[Any]]:
            return transform.kind_rows_as(batches, kind_columns, type_value, workbook_columns, column_set)

        if kind_streamed.merged is None or kind_streamed.made is None:  # every row made
            rows, keyed_rows = itertools.tee(kind_streamed.spool.batches())
            keys = (([rank | row[at] for row in batch], [-1] * len(batch)) for batch in keyed_rows)
            return converted(rows), keys
        made_rows, made_keyed = itertools.tee(chain.from_iterable(kind_streamed.made.batches()))
        made_keys = (rank | row[at] for row in made_keyed)
        made = chain.from_iterable(converted(iter(lambda: list(islice(made_rows, RECORD_BATCH)), [])))
        # The spool and the picks were added a batch of the same rows at a time.
        picked = zip(kind_streamed.merged.batches(), kind_streamed.spool.batches_later(), strict=True)
        for_rows, for_keys = itertools.tee(picked)
        batches = (_PickedRows(picks, made, read, converted, rank, at) for picks, read in for_rows)
        keys = (([next(made_keys) if pick < 0 else rank for pick in picks], picks) for picks, _ in for_keys)
        return batches, keys

    def workbook_file() -> tuple[dict[str, FileInfo], float, float]:
        """The workbook, the seconds the child took to write it (``run.timings["workbook"]``) and those it waited
        for the companions' messages among them (``"workbook_companions_wait"``)."""
        started = time.perf_counter()
        device_rows, device_keys = keyed("device", 0)
        vm_rows, vm_keys = keyed("vm", 1 << 48)  # after every device's
        previous = next((each.previous for each in kinds.values() if each.previous is not None), None)
        book = write_workbook_streamed(
            folder / WORKBOOK,
            workbook_columns,
            chain(device_rows, vm_rows),
            rows_xml=RowsXml(
                folder / ROWS_XML,
                previous / ROWS_XML if previous is not None else None,
                chain(device_keys, vm_keys),
                picked=True,
            ),
            rows=total,
            sizes=sizes,
            extra_sheets=companion_sheets,
            numeric_columns=column_set.numeric_columns(),
            text_columns=column_set.text_columns(),
            date_columns=column_set.date_columns(),
            datetime_columns=column_set.datetime_columns(),
        )
        return {WORKBOOK: book}, time.perf_counter() - started, mailbox_wait[0]

    release_freed_memory()  # the stream's pages and records are gone: not copied into the child
    with mailbox or contextlib.nullcontext(), forked(workbook_file, enabled=settings.EXPORT_PARALLEL_WRITE) as result:
        files: dict[str, FileInfo] = {DEVICES_CSV: kinds["device"].csv, VMS_CSV: kinds["vm"].csv}
        rows = {
            kind: KindRows(
                kind,
                _kind_columns(kind, column_set),
                kind_streamed.spool.batches,
                folder / _KINDS[kind][0],
                kind_streamed.previous if kind_streamed.merged is not None else None,
                kind_streamed.merged.batches if kind_streamed.merged is not None else None,
                kind_streamed.spool.path,
            )
            for kind, kind_streamed in kinds.items()
        }
        done = {companion.name: _companion_write(companion, companion_plan, rows, folder)
                for companion, companion_plan in plan.companions}  # fmt: skip
        if mailbox is not None:
            mailbox.send({name: outcome.message for name, outcome in done.items()})
        # The merged CSV here, once the companions are done: the child writing the workbook is the longer of the two.
        files[MERGED_CSV] = write_csv(
            folder / MERGED_CSV,
            column_set.merged_columns,
            _merged_items(kinds, column_set),
            excel_safe=excel_safe,
            raw=any(kind_streamed.merged is not None for kind_streamed in kinds.values()),
            index=True,
        )
        _row_map_save(kinds, files[MERGED_CSV])
        for outcome in done.values():
            files.update(outcome.files)
        planned = [name for _, companion_plan in plan.companions for name in companion_plan.artifacts]
        files_total = len(ARTIFACT_KINDS) + len(planned)
        recorder.progress(rows_written=total, rows_total=total, files_written=len(files), files_total=files_total)
        order = [*ARTIFACT_KINDS, *planned]

        def written() -> dict[str, FileInfo]:
            waited = time.perf_counter()
            try:
                book, seconds, companions_wait = result()
            except ChildProcessFailed as exc:
                raise ExportError(f"The process writing the workbook {exc}.") from None
            files.update(book)
            # The child's own time, and how long the run waited for it (the part of it on the run's critical path).
            recorder.run.timings["workbook"] = round(seconds, 3)
            recorder.run.timings["workbook_companions_wait"] = round(companions_wait, 3)
            recorder.run.timings["workbook_wait"] = round(time.perf_counter() - waited, 3)
            written_files = {name: files[name] for name in order if name in files}
            # A companion that failed writes one file less than planned: the run is complete all the same.
            recorder.progress(files_written=len(written_files), files_total=len(written_files))
            return written_files

        yield Writing(files=written, companions=done)


_TYPE_VALUES = {"device": columns.DEVICE_TYPE_VALUE, "vm": columns.VM_TYPE_VALUE}


class _PickedRows(Sequence[Any]):
    """A batch of an incremental run's workbook rows as the workbook reads it (``RowsXml.picked``): a row made now
    (pick ``-1``) is the next of ``made`` (taken as the batch is, in order); a reused row is read, with its whole
    batch, from the spool (``read``, then ``convert``) only when asked for, as is its key (``rank`` and its id,
    at ``at`` in the spool's rows)."""

    __slots__ = ("_at", "_convert", "_made", "_picks", "_rank", "_read", "_rows", "_spooled")

    def __init__(
        self,
        picks: list[int],
        made: Iterator[Any],
        read: Callable[[], list[Any]],
        convert: Callable[[Iterable[Sequence[Any]]], Iterator[list[Any]]],
        rank: int,
        at: int,
    ) -> None:
        self._picks = picks
        self._made = {index: next(made) for index, pick in enumerate(picks) if pick < 0}
        self._read, self._convert, self._rank, self._at = read, convert, rank, at
        self._spooled: list[Any] | None = None
        self._rows: list[Any] | None = None

    def __len__(self) -> int:
        return len(self._picks)

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, int):
            raise TypeError("A batch of picked rows is read a row at a time")
        if index in self._made:
            return self._made[index]
        if self._rows is None:
            self._rows = next(self._convert([self._batch()]))
        return self._rows[index]

    def key(self, index: int) -> int:
        return self._rank | self._batch()[index][self._at]

    def _batch(self) -> list[Any]:
        if self._spooled is None:
            self._spooled = self._read()
            if len(self._spooled) != len(self._picks):
                raise ExportError("The run's rows and their picks differ; run the export with --force.")
        return self._spooled


def _merged_items(kinds: dict[str, _Streamed], column_set: columns.ColumnSet) -> Iterator[Any]:
    """The merged CSV's rows, devices then VMs; a row the previous run's merged CSV holds as it is comes as that
    record (``bytes``) instead, and only the other rows are made into merged rows."""
    for kind in ("device", "vm"):
        kind_streamed = kinds[kind]

        def merged(batches: Iterable[Sequence[Any]], kind: str = kind) -> Iterator[Any]:
            return (
                transform.merged_row_stream(batches, (), column_set)
                if kind == "device"
                else transform.merged_row_stream((), batches, column_set)
            )

        if kind_streamed.merged is None or kind_streamed.merged_from is None:
            yield from merged(kind_streamed.spool.batches())
            continue
        path, start = kind_streamed.merged_from
        if kind_streamed.made is not None and (indexed := csv_indexed(path)) is not None:
            # Closed once the spans that read it are written.
            yield from _merged_copied(kind_streamed.merged, kind_streamed.made, indexed, start - 1, merged)
            continue
        previous = islice(csv_records(path), start, None)
        # The spool and the picks were added a batch of the same rows at a time.
        for batch, picks in zip(kind_streamed.spool.batches(), kind_streamed.merged.batches(), strict=True):
            records: list[bytes | None] = []
            for pick in picks:
                if pick < 0:
                    records.append(None)
                    continue
                for _ in range(pick):  # the records of rows dropped since
                    next(previous, None)
                records.append(next(previous, None))  # None past its end: the row is made
            made = merged([[row for row, record in zip(batch, records, strict=True) if record is None]])
            for record in records:
                yield next(made) if record is None else record


def _row_map_save(kinds: dict[str, _Streamed], merged: FileInfo) -> None:
    """Beside the merged CSV, where each of its records is in the previous run's (``exports.rowmap``), from each
    kind's picks: what the CMDB table's build takes the previous table's rows by. None when no record was copied; a
    map that cannot be made or written costs only that build's speed."""
    import numpy as np

    try:
        parts, previous = [], None
        for kind in ("device", "vm"):
            each = kinds[kind]
            if each.merged is None or each.merged_from is None:
                parts.append(np.full(each.spool.rows, -1, np.int64))
                continue
            path, start = each.merged_from
            previous = path.parent
            picks = np.fromiter(chain.from_iterable(each.merged.batches()), np.int64)
            rows = rowmap.picked_rows(picks, start - 1)
            meta = json.loads((previous / ROWS_META).read_text(encoding="utf-8"))
            if len(rows) != each.spool.rows or (len(rows) and rows.max() >= start - 1 + meta[kind]):
                return  # a record past the kind's (made, not copied): no map
            parts.append(rows)
        if previous is not None:
            meta = json.loads((previous / ROWS_META).read_text(encoding="utf-8"))
            rowmap.row_map_write(
                merged.path,
                np.concatenate(parts),
                sha256=merged.sha256,
                previous=previous.name,
                previous_rows=meta["device"] + meta["vm"],
            )
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("no row map beside %s", merged.path, exc_info=True)


def _merged_copied(
    picks: RowSpool,
    made: RowSpool,
    indexed: CsvIndexed,
    position: int,
    merged: Callable[[Iterable[Any]], Iterator[Any]],
) -> Iterator[Any]:
    """``_merged_items`` of a kind from the previous merged CSV's index: each run of records the previous merged CSV
    holds as they are, from its record ``position`` on, is copied as one range of bytes (``CsvSpan``); the rows made
    now (``made``, in order) are made into merged rows. Neither the kind's spool nor the copied records are read."""
    rows = merged(made.batches())
    first = stop = position
    for batch in picks.batches():
        for pick in batch:
            if pick < 0:
                if stop > first:
                    yield indexed.span(first, stop)
                first = stop
                yield next(rows)
                continue
            if pick:  # the records of rows dropped since
                if stop > first:
                    yield indexed.span(first, stop)
                first = stop = stop + pick
            stop += 1
    if stop > first:
        yield indexed.span(first, stop)
    if stop > indexed.rows or next(rows, None) is not None:
        raise ExportError("The previous run's rows and merged CSV differ; run the export with --force.")


def _companion_write(companion: Companion, plan: CompanionPlan, rows: dict[str, KindRows], folder: Path) -> Any:
    """A companion's write; one that breaks its contract and raises costs its own part, never the export."""
    started = time.perf_counter()
    try:
        return plan.write(rows, folder)
    except Exception:
        logger.exception("companion %s failed while the run wrote its files", companion.name)
        return CompanionWrite(seconds=time.perf_counter() - started)


def files_reuse(previous: ExportRun, folder: Path) -> dict[str, FileInfo]:
    """Link (or copy) the previous run's files into this run's folder: same content, no rewrite."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for artifact in previous.artifacts.all():
        source = Path(settings.DATA_DIR) / artifact.path
        target = folder / artifact.name
        if not source.is_file():
            raise ExportError(f"The previous run's file {artifact.name} is missing; run the export with --force.")
        _link(source, target)
        files[artifact.name] = FileInfo(path=target, size=artifact.size, sha256=artifact.sha256, rows=artifact.rows)
    if not set(ARTIFACT_KINDS) <= set(files):
        raise ExportError("The previous run's files are incomplete; run the export with --force.")
    # The previous run's row spools too, for the next incremental run (same rows: nothing changed).
    previous_folder = Path(settings.DATA_DIR) / "runs" / f"{previous.pk:06d}"
    indexes = (csv_index_path(Path(name)).name for name in (DEVICES_CSV, VMS_CSV, MERGED_CSV))
    spools = (f".{kind}.rows{suffix}" for kind in _KINDS for suffix in ("", SPOOL_INDEX_SUFFIX))
    for name in (*spools, ROWS_META, ROWS_XML, *indexes, *companions.kept_files()):
        if (previous_folder / name).is_file():
            _link(previous_folder / name, folder / name)
    return files


def _link(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy across file systems), put in place atomically."""
    temp = target.with_name(f".{target.name}.tmp")
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
        os.chmod(temp, FILE_MODE)
    os.replace(temp, target)


def export_files_prune() -> int:
    """Delete the files of successful runs beyond the newest ``EXPORT_KEEP_RUNS``; returns how many runs lost theirs.

    Never those of a run that finished less than ``EXPORT_KEEP_HOURS`` ago: people may be downloading them, or be
    about to from a page they opened, however many runs started since.
    """
    keep = settings.EXPORT_KEEP_RUNS
    young = timezone.now() - timedelta(hours=settings.EXPORT_KEEP_HOURS)
    with_files = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED, artifacts__isnull=False).distinct()
    kept = list(with_files.order_by("-finished", "-id").values_list("pk", flat=True)[:keep])
    old_runs = list(with_files.exclude(pk__in=kept).filter(finished__lt=young).order_by("-finished", "-id"))
    for run in old_runs:
        shutil.rmtree(Path(settings.DATA_DIR) / "runs" / f"{run.pk:06d}", ignore_errors=True)
        run.artifacts.all().delete()
    # Only the newest run's row spools serve (the next incremental run reads them): the older kept runs' go.
    for pk in kept[1:]:
        _rows_remove(Path(settings.DATA_DIR) / "runs" / f"{pk:06d}")
    return len(old_runs)
