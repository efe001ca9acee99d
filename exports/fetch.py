"""Fetching a run's data from NetBox: full or incremental (with the decision between them), the diff against the
stored snapshots (added, changed, removed, which snapshots to write), and the contacts' listing state.

Nothing here holds the inventory: each kind (devices, VMs) comes back as a ``KindSource``, the records in id order a
batch at a time, which ``exports.files`` streams into the files. A full run's source is NetBox's listing, page by
page (its diff against the stored snapshots is counted as the records pass, ``StreamDiff``, and their snapshots are
encoded into a spool as they pass); an incremental run's is the stored snapshots merged with the few records fetched
anew. Reads the stored snapshots but writes nothing but the run's mode and NetBox URL: what it learned comes back as
a ``Fetched`` for ``exports.services`` to save together with the files.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import logging
import marshal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TypeVar

from django.conf import settings
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from enreach.forked import FORK_AVAILABLE, forked
from enreach.outage import database_retry
from exports import render, transform
from exports.columns import DEFAULT_SET, DEVICES, VMS, ColumnSet
from exports.errors import ExportError
from exports.models import ContactSnapshot, ExportRun, NetboxSnapshot
from exports.recorder import RunRecorder
from exports.snapshots import (
    Record,
    SnapshotRow,
    contact_snapshot_field_write,
    snapshot_row,
    snapshots_outdated,
    snapshots_state,
    snapshots_stored,
    snapshots_values,
)
from exports.spool import RowSpool
from integrations.exceptions import NetboxAuthError, NetboxError, NetboxUnavailable
from integrations.netbox.client import AssignmentFilter, Kind, NetboxClient
from integrations.netbox.factory import netbox_client
from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    SNAPSHOT_SCHEMA,
    VM_OBJECT_TYPE,
    ContactAssignmentRecord,
    VirtualMachineRecord,
    device_from_dict,
    virtual_machine_from_dict,
)
from integrations.netbox.transport import ListingChanged

T = TypeVar("T")
logger = logging.getLogger(__name__)

CHANGES_LISTED = 50  # names kept per kind and change type in ExportRun.changes
INCREMENTAL_SLACK = timedelta(minutes=1)


RECORD_BATCH = 1000  # records per batch of an incremental run's source (a full run's: NetBox's page)


class StreamDiff:
    """A kind's added, changed and removed objects, counted as a full run's records pass in id order, against the
    stored snapshots read in id order beside them (a merge of two sorted streams: neither is held). Keeps the counts,
    the removed ids (to delete) and the first ``CHANGES_LISTED`` names of each change in name order."""

    def __init__(self, kind: str, read: Callable[[Callable[[], list[Any]]], list[Any]] | None = None) -> None:
        self.kind = kind
        self._read = read
        self.reset()

    def reset(self) -> None:
        self.current = self.added = self.changed = 0
        self.removed: list[int] = []
        self._names: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        self._stored = snapshots_stored(self.kind, ("netbox_id", "last_updated", "name"), read=self._read)
        self._next = next(self._stored, None)

    def _name(self, change: str, name: str) -> None:
        names = self._names[change]
        names.append(name)
        if len(names) >= 4 * CHANGES_LISTED:  # keep the first names in order, never all of them
            names.sort()
            del names[CHANGES_LISTED:]

    def _gone(self, netbox_id: int, name: str) -> None:
        self.removed.append(netbox_id)
        self._name("removed", name or str(netbox_id))

    def add(self, records: Sequence[Record]) -> None:
        self.add_keys([(record.id, record.last_updated, record.name) for record in records])

    def add_keys(self, keys: Sequence[Sequence[Any]]) -> None:
        """``add`` from each record's ``(id, last_updated, name)`` (``diff_key``)."""
        stored, following = self._stored, self._next
        for netbox_id, last_updated, name in keys:
            while following is not None and following[0] < netbox_id:
                self._gone(following[0], following[2])
                following = next(stored, None)
            if following is not None and following[0] == netbox_id:
                if following[1] != last_updated:
                    self.changed += 1
                    self._name("changed", name)
                following = next(stored, None)
            else:
                self.added += 1
                self._name("added", name)
        self._next = following
        self.current += len(keys)

    def finish(self) -> None:
        while self._next is not None:
            self._gone(self._next[0], self._next[2])
            self._next = next(self._stored, None)

    def names(self, change: str) -> list[str]:
        return sorted(self._names[change])[:CHANGES_LISTED]


@dataclass(frozen=True)
class PreviousRows:
    """What an incremental run needs to reuse the previous run's rows of a kind: its row spool (the rows in id order,
    in the column set of this run), every current object's id (``current``: objects missing from it were deleted)
    and the records fetched anew (their rows replace the previous ones, or are added)."""

    spool: Path
    current: dict[int, str]
    fresh: list[Record]


ROWS_META = ".rows.json"  # beside a run's row spools: the key they were made under and their row counts
_ROW_CODE = ("transform.py", "render.py", "columns.py", "cells.py")  # the code that makes a row from a record


def rows_key(lookups_digest: str, column_set: ColumnSet) -> str:
    """The same for two runs whose rows, from the same records and contacts, are the same: the other lookups (sites,
    tenants), the column set, the records' schema and the code of the transform. An incremental run reuses the
    previous run's row of every object NetBox did not touch only when the previous run's key is this one; else every
    row is made again (a renamed site changes the rows of devices NetBox did not touch). The contacts are compared
    object by object instead: the rows of the objects whose Contacts cell changed are made again."""
    here = Path(__file__).parent
    code = hashlib.sha256(b"".join((here / name).read_bytes() for name in _ROW_CODE)).hexdigest()
    return _digest(
        {
            "lookups": lookups_digest,
            "columns": column_set.as_dict(),
            "absent": sorted(column_set.absent),
            "schema": sorted(str(schema) for schema in SNAPSHOT_SCHEMA.values()),
            "code": code,
            "time_zone": settings.TIME_ZONE,
        }
    )


def previous_rows_usable(previous: ExportRun | None, key: str, contacts_digest: str) -> Path | None:
    """The previous run's folder when its row spools were made under ``key``, with the contacts of the stored
    snapshot (``contacts_digest``), and are all there; else ``None``."""
    if previous is None:
        return None
    folder = Path(settings.DATA_DIR) / "runs" / f"{previous.pk:06d}"
    try:
        meta = json.loads((folder / ROWS_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or meta.get("contacts") != contacts_digest:
        return None
    if not all((folder / f".{kind}.rows").is_file() for kind in NetboxSnapshot.Kind.values):
        return None
    return folder


@dataclass
class KindSource:
    """One kind's records for the files: ``batches()`` walks them in id order, a batch at a time (a fresh walk per
    call; a NetBox listing that changed under the walk raises ``ListingChanged`` after its last batch, and the
    writer walks again after ``reset()``). A full run's source also counts its diff and spools its snapshots as the
    records pass (``passed``)."""

    kind: str
    batches: Callable[[], Iterator[Sequence[Record]]]
    diff: StreamDiff | None = None
    stage: RowSpool | None = None
    # A full run's listing walked by a forked process, which may use neither the database nor the parent's
    # connections: the walk with a client of its own (``NetboxClient.forked_copy``), and how many requests that
    # client sent.
    forked_batches: Callable[[], Iterator[Sequence[Record]]] | None = None
    forked_counts: Callable[[], Any] | None = None  # in the child: its client's ``counts()``
    forked_absorb: Callable[[Any], None] | None = None  # in the parent: the run's client ``absorb``s them
    # An incremental run whose rows would be the previous run's for every object NetBox did not touch: the previous
    # run's row spool merged with the rows of the records fetched anew (``exports.files``), instead of ``batches``.
    previous_rows: PreviousRows | None = None

    def reset(self) -> None:
        if self.diff is not None:
            self.diff.reset()
        if self.stage is not None:
            self.stage.reset()

    def passed(self, records: Sequence[Record]) -> None:
        if self.diff is not None:
            self.diff.add(records)
        if self.stage is not None:
            self.stage.add([snapshot_row(self.kind, record) for record in records])


@dataclass
class Fetched:
    """What a run learned from NetBox."""

    lookups: transform.Lookups
    lookups_digest: str
    rows_key: str = ""  # what the run's rows were made under (``rows_key``), kept beside its row spools
    contacts_digest: str = ""  # the digest of the contacts the run's rows hold (``ContactSnapshot.digest``)
    reuse: bool = False  # nothing changed: the previous run's files serve
    sources: dict[str, KindSource] = field(default_factory=dict)  # "device", "vm"
    snapshot_writes: dict[str, list[SnapshotRow]] = field(default_factory=dict)  # an incremental run's few, encoded
    snapshot_deletes: dict[str, list[int]] = field(default_factory=dict)
    contact_pending: PendingContactSnapshot | None = None  # to save when the contacts were listed anew
    counts: dict[str, int] = field(default_factory=dict)
    changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    spools: list[RowSpool] = field(default_factory=list)  # a full run's encoded snapshots, once walked

    @property
    def contact_snapshot(self) -> PendingContactSnapshot | None:
        """The contacts' snapshot to save (``save()``; the run saves it at its end)."""
        return self.contact_pending

    def staged(self) -> list[RowSpool]:
        """The spools of encoded snapshots a full run wrote as its records passed."""
        return self.spools + [source.stage for source in self.sources.values() if source.stage is not None]

    def finish(self) -> None:
        """Once every source was walked: a full run's counts, changes and deletions from its diffs."""
        for kind, source in self.sources.items():
            diff = source.diff
            if diff is None:
                continue
            diff.finish()
            label = "devices" if kind == "device" else "vms"
            self.counts[label] = diff.current
            self.counts["added"] = self.counts.get("added", 0) + diff.added
            self.counts["changed"] = self.counts.get("changed", 0) + diff.changed
            self.counts["removed"] = self.counts.get("removed", 0) + len(diff.removed)
            self.changes[label] = {change: diff.names(change) for change in ("added", "changed", "removed")}
            self.snapshot_deletes[kind] = diff.removed
        # The sources are walked: what they hold (an incremental run's id -> last_updated of every object) goes
        # before the writing child is forked, which would otherwise keep a copy of every page the run reuses. So do
        # the lookups, whose contacts hold a cell per object: the rows are made (the contacts' snapshot, to save,
        # waits marshalled in ``contact_pending``).
        self.spools = self.staged()
        self.sources = {}
        self.lookups = transform.Lookups()

    def remove(self) -> None:
        for spool in self.staged():
            spool.remove()


@dataclass(frozen=True)
class PendingContactSnapshot:
    """A ``ContactSnapshot`` to save at the end of the run, encoded until then.

    Its state (``id -> last_updated`` of every contact assignment), the object of every assignment and its contacts
    (a cell per object) grow with the inventory and serve only the save: as dicts of Python objects they took about 4
    times the bytes, held through the stream (and copied into a forked child's pages when the parent wrote over
    them). The state and the assignments come as the JSON text the database stores, made by the child that listed
    them; the save writes one field at a time (``save``)."""

    state_json: bytes  # UTF-8 JSON, as ``ContactSnapshot.state`` stores it
    rendered: bytes  # marshalled ``{(object type, object id): cell}``
    digest: str
    assignments_json: bytes = b"{}"  # UTF-8 JSON, as ``ContactSnapshot.assignments`` stores it

    @classmethod
    def of(cls, listed: ContactsListed, rendered: dict[tuple[str, int], str]) -> PendingContactSnapshot:
        """From what the contacts' listing learned (``ContactsListed``: its state and assignments as JSON, made by
        the child that listed them) and every object's rendered cell."""
        return cls(
            listed.state_json, marshal.dumps(rendered), _digest(sorted(rendered.items())), listed.assignments_json
        )

    def save(self) -> None:
        """Store the snapshot as the only ``ContactSnapshot``, a field at a time: each field's JSON text is made (or
        decoded), written and dropped before the next, instead of the three fields as dicts and as JSON at once (at
        500,000 objects that held about 180 MB in the run's process during its save)."""
        ContactSnapshot.objects.all().delete()
        snapshot = ContactSnapshot.objects.create(state={}, contacts={}, assignments={}, digest=self.digest)
        contact_snapshot_field_write(snapshot.pk, "state", self.state_json.decode())
        contact_snapshot_field_write(snapshot.pk, "assignments", self.assignments_json.decode())
        contact_snapshot_field_write(snapshot.pk, "contacts", _contacts_json(marshal.loads(self.rendered)))  # noqa: S302


CONTACTS_JSON_CHUNK = 50_000  # cells encoded at a time into the stored contacts' JSON


def _contacts_json(rendered: dict[tuple[str, int], str]) -> str:
    """``ContactSnapshot.contacts``'s JSON text (``{"<object type>:<object id>": cell}``) for ``rendered``, encoded a
    chunk of cells at a time: no second dict of every cell under its text key."""
    items = iter(rendered.items())
    parts = []
    while chunk := {
        f"{object_type}:{object_id}": cell for (object_type, object_id), cell in islice(items, CONTACTS_JSON_CHUNK)
    }:
        parts.append(json.dumps(chunk)[1:-1])
    return "{" + ",".join(parts) + "}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def export_fetching(
    run: ExportRun,
    recorder: RunRecorder,
    previous: ExportRun | None,
    folder: Path,
    *,
    files_reusable: bool = True,
    column_set: ColumnSet = DEFAULT_SET,
) -> Iterator[Fetched]:
    """What the run writes: ``reuse`` when nothing changed since ``previous`` and its files are ``files_reusable``
    (written as this run would write them), else a source of records per kind. NetBox stays open while the caller
    walks the sources (a full run streams its listings then); its spools in ``folder`` go when the block ends. The
    records keep the values of the ``column_set``'s ``field:`` paths; stored snapshots without one of them make the
    run a full one."""
    paths: dict[str, tuple[str, ...]] = {"device": column_set.paths(DEVICES), "vm": column_set.paths(VMS)}
    with netbox_client() as client:
        client.capture(devices=paths["device"], vms=paths["vm"])
        fetched: Fetched | None = None
        try:
            fetched = _fetch_with(client, run, recorder, previous, files_reusable, folder, paths, column_set)
            yield fetched
        finally:
            client.flush_metrics()
            run.netbox_requests = client.request_count
            if fetched is not None:
                fetched.remove()


def _fetch_with(
    client: NetboxClient,
    run: ExportRun,
    recorder: RunRecorder,
    previous: ExportRun | None,
    files_reusable: bool,
    folder: Path,
    paths: dict[str, tuple[str, ...]],
    column_set: ColumnSet = DEFAULT_SET,
) -> Fetched:
    full_every = timedelta(hours=settings.EXPORT_FULL_EVERY_HOURS)
    incremental = (
        not run.force
        and previous is not None
        and NetboxSnapshot.objects.exists()
        and ExportRun.objects.filter(
            status=ExportRun.Status.SUCCEEDED, mode=ExportRun.Mode.FULL, finished__gte=timezone.now() - full_every
        ).exists()
    )
    # Snapshots of one NetBox say nothing about another: after a switch of NetBox (URL), a full run.
    run.netbox_url = client.url.rstrip("/")
    switched = previous is not None and bool(previous.netbox_url) and previous.netbox_url != run.netbox_url
    incremental = incremental and not switched
    if incremental and (outdated := snapshots_outdated(paths)):
        recorder.log(f"Full export instead of incremental: {outdated}")
        incremental = False
    run.mode = ExportRun.Mode.INCREMENTAL if incremental else ExportRun.Mode.FULL
    ExportRun.objects.filter(pk=run.pk).update(mode=run.mode, netbox_url=run.netbox_url)
    if switched:
        assert previous is not None
        recorder.log(f"NetBox changed from {previous.netbox_url} to {run.netbox_url}: a full export.")
    recorder.log(f"{run.mode.capitalize()} export from {run.netbox_url}")

    # The stored cells stay here (the previous run's rows were made with them); the listings' state and the
    # assignments' objects serve the contacts' listing only, which has them to itself.
    snapshot = ContactSnapshot.objects.defer("state", "assignments").first() if incremental else None
    stored_contacts = StoredContacts.read(snapshot.pk) if snapshot is not None else None
    # The small bulk listings behind the lookups (sites, tenants, contacts) run while the devices and VMs are
    # counted or (incremental) listed; each in a copy of this context, so its spans and log lines carry the run.
    # The client keeps the requests in flight to NETBOX_WORKERS.
    increments: dict[str, tuple[dict[int, str], list[Record], list[int]]] = {}
    stored: dict[str, dict[int, str]] = {}
    with contextlib.ExitStack() as lookups_done:
        # The contacts' child forks first, from this thread, before the pool's threads send requests: a child
        # forked while another thread imports a module (requests imports netrc on a first request) waits forever
        # for that module's lock.
        contacts = lookups_done.enter_context(_contacts_fetching(client, stored_contacts))
        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookups")
        lookups_done.callback(pool.shutdown, wait=True, cancel_futures=True)
        sites = pool.submit(contextvars.copy_context().run, client.fetch_sites)
        tenants = pool.submit(contextvars.copy_context().run, client.fetch_tenants)
        if not callable(contacts):
            contacts = pool.submit(contextvars.copy_context().run, _fetch_contacts, client, stored_contacts).result
        del stored_contacts
        with recorder.step("fetch"):
            if incremental:
                # Both kinds asked of NetBox at once, each as soon as its stored state is read (the VMs' is read
                # while the devices' requests are answered): the client keeps NETBOX_WORKERS requests in flight.
                with ThreadPoolExecutor(max_workers=2, thread_name_prefix="increments") as kinds:
                    asked = {}
                    for kind in NetboxSnapshot.Kind.values:  # kind -> netbox_id -> last_updated
                        stored[kind] = snapshots_state(kind)
                        asked[kind] = kinds.submit(
                            contextvars.copy_context().run, _fetch_incremental, client, recorder, kind, stored[kind]
                        )
                    increments = {kind: done.result() for kind, done in asked.items()}
                recorder.save(force=True)  # the progress the threads noted
            else:  # the records themselves stream from NetBox as the files are written (``exports.files``)
                recorder.progress(devices_total=client.count("devices"), vms_total=client.count("virtual_machines"))
        with recorder.step("lookups"):
            listed = contacts()
            site_records, tenant_records = sites.result(), tenants.result()
    run.netbox_requests = client.request_count
    stored_digest = snapshot.digest if snapshot is not None else None  # the contacts the previous rows were made with
    contact_pending: PendingContactSnapshot | None = None
    touched: set[tuple[str, int]] = set()  # the objects whose Contacts cell is not the stored one (incremental)
    if listed is None:  # the contact listings did not change: neither did the contacts
        assert snapshot is not None
        rendered = _contacts_of(snapshot)
        contacts_digest = snapshot.digest
    else:
        rendered, touched = listed.applied(_contacts_of(snapshot) if snapshot is not None else None)
        if not listed.complete:
            recorder.log(
                f"Contacts: the assignments of {len(listed.cells)} objects read again, {len(touched)} Contacts "
                "cells changed."
            )
        contact_pending = PendingContactSnapshot.of(listed, rendered)
        contacts_digest = contact_pending.digest
    del listed, snapshot
    lookups = transform.Lookups.from_records(sites=site_records, tenants=tenant_records, contacts=rendered)
    # The contacts enter the digest through their own, computed once when they were rendered.
    other_lookups = _digest(
        [sorted(getattr(lookups, f.name).items()) for f in dataclasses.fields(lookups) if f.name != "contacts"]
    )
    lookups_digest = _digest(
        [sorted(getattr(lookups, f.name).items()) for f in dataclasses.fields(lookups) if f.name != "contacts"]
        + [contacts_digest]
    )
    fetched = Fetched(
        lookups=lookups,
        lookups_digest=lookups_digest,
        contact_pending=contact_pending,
        rows_key=rows_key(other_lookups, column_set),
        contacts_digest=contacts_digest,
    )

    if not incremental:
        forked_clients: list[NetboxClient] = []  # the forked process's own client (one per walk), made there

        def forked_vms() -> Iterator[list[VirtualMachineRecord]]:
            forked_clients.append(client.forked_copy())
            return forked_clients[-1].stream_virtual_machines()

        def forked_counts() -> tuple[int, dict[tuple[str, str], int]]:
            requests, responses = 0, collections.Counter[tuple[str, str]]()
            for made in forked_clients:
                made_requests, made_responses = made.counts()
                requests += made_requests
                responses.update(made_responses)
            return requests, dict(responses)

        fetched.sources = {
            "device": KindSource(
                "device",
                lambda: client.stream_devices(progress=lambda n: recorder.progress(devices_fetched=n)),
                StreamDiff(NetboxSnapshot.Kind.DEVICE, lambda page: _after_netbox(page, run)),
                RowSpool(folder / ".device.snapshots"),
            ),
            "vm": KindSource(
                "vm",
                lambda: client.stream_virtual_machines(progress=lambda n: recorder.progress(vms_fetched=n)),
                StreamDiff(NetboxSnapshot.Kind.VM, lambda page: _after_netbox(page, run)),
                RowSpool(folder / ".vm.snapshots"),
                forked_batches=forked_vms,
                forked_counts=forked_counts,
                forked_absorb=client.absorb,
            ),
        }
        return fetched

    unchanged = True
    for kind, (current, changed_records, wanted) in increments.items():
        previous_state = stored[kind]
        # Only the objects asked for again can be new or changed (the others' last_updated is the stored one), and
        # deletions follow from the counts: no pass over every object unless some were deleted.
        added = [i for i in wanted if i in current and i not in previous_state]
        changed = [i for i in wanted if i in current and i in previous_state and previous_state[i] != current[i]]
        removed = (
            sorted(previous_state.keys() - current.keys()) if len(previous_state) + len(added) != len(current) else []
        )
        # A record NetBox touched without changing what we keep needs no write.
        digests = _after_netbox(partial(snapshots_values, kind, "digest", [r.id for r in changed_records]), run)
        rows = [snapshot_row(kind, record) for record in changed_records]  # encoded once: compared, then saved
        writes = [row for row in rows if digests.get(row[1]) != row[4]]
        fetched.snapshot_writes[kind] = writes
        fetched.snapshot_deletes[kind] = removed
        label = "devices" if kind == "device" else "vms"
        fetched.counts[label] = len(current)
        fetched.counts["added"] = fetched.counts.get("added", 0) + len(added)
        fetched.counts["changed"] = fetched.counts.get("changed", 0) + len(changed)
        fetched.counts["removed"] = fetched.counts.get("removed", 0) + len(removed)
        names = {r.id: r.name for r in changed_records}
        fetched.changes[label] = {
            "added": sorted(names.get(i, str(i)) for i in added)[:CHANGES_LISTED],
            "changed": sorted(names.get(i, str(i)) for i in changed)[:CHANGES_LISTED],
            "removed": sorted(
                name or str(i)
                for i, name in _after_netbox(partial(snapshots_values, kind, "name", removed), run).items()
            )[:CHANGES_LISTED],
        }
        unchanged = unchanged and not (added or changed or removed or writes)
    del stored

    if unchanged and previous is not None and previous.lookups_digest == lookups_digest:
        if files_reusable:
            fetched.reuse = True
            return fetched
        recorder.log(
            "Nothing changed in NetBox, but the files are written again: the settings that shape them (the "
            "companions' too, such as the data-quality rules or the day they compare dates with) are not those of "
            "the previous run."
        )
    # Something changed: every current object, from NetBox where fetched and from its snapshot for the rest, merged
    # in id order as the files are written.
    from_dict: dict[str, Callable[[dict[str, Any]], Record]] = {
        "device": device_from_dict,
        "vm": virtual_machine_from_dict,
    }
    # The previous run's rows serve for the objects NetBox did not touch when they were made as this run would make
    # them (same lookups, column set, schema and code): neither their snapshots nor their transform are needed.
    # Objects whose Contacts cell changed though NetBox did not touch them are made again from their snapshots.
    previous_folder = (
        previous_rows_usable(previous, fetched.rows_key, stored_digest) if stored_digest is not None else None
    )
    remake: dict[str, list[Record]] = {kind: [] for kind in increments}
    if previous_folder is not None and contact_pending is not None:
        for kind, object_type in (("device", DEVICE_OBJECT_TYPE), ("vm", VM_OBJECT_TYPE)):
            current, changed_records, _ = increments[kind]
            fresh_ids = {record.id for record in changed_records}
            ids = sorted(i for t, i in touched if t == object_type and i in current and i not in fresh_ids)
            stored_data = _after_netbox(partial(snapshots_values, kind, "data", ids), run)
            if len(stored_data) != len(ids):
                previous_folder = None  # a snapshot missing: every row is made again
                break
            remake[kind] = [
                from_dict[kind](data if isinstance(data, dict) else json.loads(data)) for data in stored_data.values()
            ]
    if previous_folder is not None:
        recorder.log("The rows of the objects NetBox did not touch are the previous run's.")
    for kind, (current, changed_records, _) in increments.items():
        fetched.sources[kind] = KindSource(
            kind,
            lambda kind=kind, current=current, fresh=changed_records: _merged(  # type: ignore[misc]
                kind, current, fresh, from_dict[kind], run
            ),
            previous_rows=(
                PreviousRows(previous_folder / f".{kind}.rows", current, [*changed_records, *remake[kind]])
                if previous_folder is not None
                else None
            ),
        )
    return fetched


def _after_netbox(read: Callable[[], T], run: ExportRun) -> T:
    """A read of the snapshots once NetBox's listings are in: the database may have gone away meanwhile, so it is
    tried again every second until it answers (``EXPORT_DATABASE_WAIT``), instead of failing the run."""
    return database_retry(read, wait=settings.EXPORT_DATABASE_WAIT, where=f"export run {run.pk}")


def _merged(
    kind: str,
    current: dict[int, str],
    fresh: list[Record],
    from_dict: Callable[[dict[str, Any]], Record],
    run: ExportRun,
) -> Iterator[list[Record]]:
    """The records of every current object in id order, ``RECORD_BATCH`` at a time: those fetched now, and the
    stored snapshots of the others (read in id order, a page at a time)."""
    fresh_sorted = sorted(fresh, key=lambda record: record.id)
    fresh_ids = {record.id for record in fresh_sorted}
    position = 0
    batch: list[Record] = []
    total = 0
    for netbox_id, data in snapshots_stored(kind, ("netbox_id", "data"), read=lambda page: _after_netbox(page, run)):
        while position < len(fresh_sorted) and fresh_sorted[position].id < netbox_id:
            batch.append(fresh_sorted[position])
            position += 1
        if netbox_id in current and netbox_id not in fresh_ids:
            batch.append(from_dict(data if isinstance(data, dict) else json.loads(data)))
        if len(batch) >= RECORD_BATCH:
            total += len(batch)
            yield batch
            batch = []
    batch.extend(fresh_sorted[position:])
    total += len(batch)
    if batch:
        yield batch
    if total != len(current):
        raise ExportError("Stored snapshots are incomplete; run the export with --force.")


CONTACT_LISTINGS: tuple[Kind, ...] = ("contacts", "contact_roles", "device_contacts", "vm_contacts")
# The assignment listings and the type of the objects they assign contacts to.
ASSIGNMENT_LISTINGS: dict[str, str] = {"device_contacts": DEVICE_OBJECT_TYPE, "vm_contacts": VM_OBJECT_TYPE}
RENAMES_FOLLOWED = 100  # more contacts and roles changed than this: every assignment is listed again
# Assignments of renamed contacts or roles beyond this share of a listing: the listing is read again in full. Their
# objects' assignments are read as well (a cell holds every contact of its object), a batch of objects a request:
# past about a quarter of the listing, that is more objects served and more requests than the whole listing.
RENAMED_SHARE = 0.25


@dataclass(frozen=True)
class StoredContacts:
    """The stored contacts' snapshot as ``_fetch_contacts`` compares it: the listings' state, and the object of
    every assignment as the JSON text stored (``{"<listing>": {"<assignment id>": object id}}``), decoded only when
    some assignments changed: a dict of every assignment in the run's process, even freed, kept its heap."""

    state: dict[str, dict[int, str]]
    assignments_json: str

    @classmethod
    def read(cls, pk: int) -> StoredContacts:
        """The stored snapshot's (``pk``) state and assignments."""
        stored_state, assignments_json = (
            ContactSnapshot.objects.filter(pk=pk).values_list("state", Cast("assignments", TextField())).get()
        )
        state = {listing: {int(i): stamp for i, stamp in ids.items()} for listing, ids in stored_state.items()}
        return cls(state, assignments_json or "{}")

    def assignments(self) -> dict[str, Any]:
        try:
            decoded = json.loads(self.assignments_json)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}


@dataclass(frozen=True)
class ContactsListed:
    """What ``_fetch_contacts`` learned when the contact listings changed: their state and every assignment's
    object (as the JSON text the snapshot stores: they serve the save only), and the Contacts cells, every object's
    when the assignments were listed in full (``complete``), else only those of the objects whose assignments,
    contacts or roles changed (``None``: the object has none now)."""

    state_json: bytes
    assignments_json: bytes
    cells: dict[tuple[str, int], str | None]
    complete: bool

    def applied(
        self, stored: dict[tuple[str, int], str] | None
    ) -> tuple[dict[tuple[str, int], str], set[tuple[str, int]]]:
        """Every object's cell (``stored``, the previous run's, updated in place unless the cells are complete), and
        the objects whose cell is not the stored one (none without ``stored``: a full run)."""
        if self.complete:
            cells: dict[tuple[str, int], str] = self.cells  # type: ignore[assignment]  # complete: no None
            if stored is None:
                return cells, set()
            return cells, {key for key in stored.keys() | cells.keys() if stored.get(key) != cells.get(key)}
        if stored is None:
            raise ValueError("the cells of some objects only, without the stored cells they update")
        touched = set()
        for key, cell in self.cells.items():
            if stored.get(key) == cell:
                continue
            touched.add(key)
            if cell is None:
                del stored[key]
            else:
                stored[key] = cell
        return stored, touched


def _fetch_contacts(
    client: NetboxClient, stored: StoredContacts | None, warn: Callable[[str], None] = logger.warning
) -> ContactsListed | None:
    """The contacts' listings now and the Contacts cells they change; ``None`` when their ``id -> last_updated``
    state is the stored one (the stored cells still hold).

    NetBox bumps neither a device's ``last_updated`` when its contacts change nor an assignment's when its contact
    or role is renamed, so the four listings' states decide. When some assignments, contacts or roles changed, only
    the assignments of the objects they concern are read again (``_contacts_patched``); when that does not add up,
    every assignment is. Contacts and roles are read before the assignments: a rename in between shows as a change
    next time instead of being lost.
    """
    if stored is not None and set(stored.state) == set(CONTACT_LISTINGS):
        with ThreadPoolExecutor(max_workers=len(CONTACT_LISTINGS), thread_name_prefix="contacts") as pool:
            futures = {
                listing: pool.submit(
                    contextvars.copy_context().run, _current_state, client, listing, stored.state[listing]
                )
                for listing in CONTACT_LISTINGS
            }
            state: dict[str, dict[int, str]] = {listing: future.result() for listing, future in futures.items()}
        if state == stored.state:
            return None
        try:
            patched = _contacts_patched(client, stored, state)
        except (NetboxUnavailable, NetboxAuthError):
            raise
        except NetboxError as exc:  # a filter this NetBox does not take, an answer that is not a page: list all
            warn(f"Contact assignments listed in full: {exc}")
            patched = None
        if patched is not None:
            return patched
        state = {listing: state[listing] for listing in ("contacts", "contact_roles")}
    else:
        try:
            state = {"contacts": client.fetch_last_updated("contacts")}
            state["contact_roles"] = client.fetch_last_updated("contact_roles")
        except NetboxAuthError as exc:
            # A token that may read assignments but not contacts or roles: without their state, every run lists
            # the assignments (the stored state lacks two listings, so the check above never applies).
            warn(f"Contacts will be listed in full on every run: {exc}")
            state = {}
    # Both listings at once: a full run's stream waits for them (the client keeps NETBOX_WORKERS requests in flight).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="assignments") as both:
        listed = {
            listing: both.submit(contextvars.copy_context().run, _assignments_folded, client, object_type, warn)
            for listing, object_type in ASSIGNMENT_LISTINGS.items()
        }
        folded = {listing: done.result() for listing, done in listed.items()}
    state_texts = {listing: json.dumps(stamps) for listing, stamps in state.items()}
    del state
    for listing, (stamps_text, _, _) in folded.items():
        state_texts[listing] = stamps_text
    objects_texts = {listing: objects_text for listing, (_, objects_text, _) in folded.items()}
    cells = render.ContactsFolder.cells([folder for _, _, folder in folded.values()])
    del folded
    state_json, objects_json = _json_object(state_texts), _json_object(objects_texts)
    return ContactsListed(state_json, objects_json, cells, complete=True)  # type: ignore[arg-type]


def _assignments_folded(
    client: NetboxClient, object_type: str, warn: Callable[[str], None]
) -> tuple[str, str, render.ContactsFolder]:
    """One assignment listing read a page at a time, each page folded as it comes: the JSON text of its ``id ->
    last_updated`` and of its ``id -> object id`` (``_json_bytes``'s text of each dict) and its objects' contact
    entries (``render.ContactsFolder``), instead of every record held at once. A listing that changed during the
    walk is read again once, as ``NetboxTransport._walk`` does; twice, ``ListingChanged`` is raised."""
    for walk in (1, 2):
        stamps: list[str] = []
        objects: list[str] = []
        folder = render.ContactsFolder()
        try:
            for page in client.stream_contact_assignments(object_type):
                if not page:
                    continue
                stamps.append(json.dumps({record.id: record.last_updated for record in page})[1:-1])
                objects.append(json.dumps({record.id: record.object_id for record in page})[1:-1])
                for record in page:
                    folder.add(record)
        except ListingChanged as exc:
            if walk == 2:
                raise
            warn(f"Contact assignments of {object_type} changed while they were read ({exc}); reading them again")
            continue
        return "{" + ", ".join(stamps) + "}", "{" + ", ".join(objects) + "}", folder
    raise AssertionError("unreachable")


def _json_object(texts: dict[str, str]) -> bytes:
    """``_json_bytes`` of a dict whose values are already JSON text (``texts``: key -> the value's text)."""
    return ("{" + ", ".join(f"{json.dumps(key)}: {text}" for key, text in texts.items()) + "}").encode()


def _contacts_patched(
    client: NetboxClient, stored: StoredContacts, state: dict[str, dict[int, str]]
) -> ContactsListed | None:
    """The Contacts cells of the objects whose assignments were added, changed or deleted since ``stored``, or
    that name a contact or role that changed, rendered again from every assignment those objects have now (read by
    ``object_id``); ``None`` when listing every assignment is cheaper or safer: too many renames, no stored object
    of an assignment, or what NetBox answers does not add up to the listings' ``state`` (something changed
    meanwhile)."""
    filters: tuple[tuple[AssignmentFilter, str], ...] = (("contact_id", "contacts"), ("role_id", "contact_roles"))
    renamed = {
        name: sorted(i for i, stamp in state[listing].items() if stored.state[listing].get(i, stamp) != stamp)
        for name, listing in filters
    }
    if sum(map(len, renamed.values())) > RENAMES_FOLLOWED:
        return None
    cells: dict[tuple[str, int], str | None] = {}
    objects: dict[str, dict[int, int]] = {}
    assignments_stored = stored.assignments()
    for listing, object_type in ASSIGNMENT_LISTINGS.items():
        now, before = state[listing], stored.state[listing]
        stored_objects = assignments_stored.pop(listing, None)
        if not isinstance(stored_objects, dict) or len(stored_objects) != len(before):
            return None
        of = {int(i): object_id for i, object_id in stored_objects.items()}
        del stored_objects
        if of.keys() != before.keys():
            return None
        changed = [i for i, stamp in now.items() if before.get(i) != stamp]
        affected = {of[i] for i in changed if i in of}  # an assignment may move to another object: its old one
        for gone in [i for i in before if i not in now]:
            affected.add(of.pop(gone))
        for assignment in client.fetch_contact_assignments_by(object_type, "id", changed):
            of[assignment.id] = assignment.object_id
            affected.add(assignment.object_id)
        for name, ids in renamed.items():
            if not ids:
                continue
            where = [(name, i) for i in ids]
            if client.count_contact_assignments(object_type, where=where) > RENAMED_SHARE * len(now):
                return None
            affected.update(a.object_id for a in client.fetch_contact_assignments(object_type, where=where))
        if of.keys() != now.keys():  # an assignment changed but not fetched: deleted meanwhile
            return None
        assignments = client.fetch_contact_assignments_by(object_type, "object_id", affected)
        expected = {i for i, object_id in of.items() if object_id in affected}
        if {a.id for a in assignments} != expected or any(
            now[a.id] != a.last_updated or of[a.id] != a.object_id or a.object_type != object_type for a in assignments
        ):
            return None
        by_object: dict[int, list[ContactAssignmentRecord]] = {object_id: [] for object_id in affected}
        for assignment in assignments:
            by_object[assignment.object_id].append(assignment)
        for object_id, group in by_object.items():
            cells[(object_type, object_id)] = render.render_contacts(group) if group else None
        objects[listing] = of
    return ContactsListed(_json_bytes(state), _json_bytes(objects), cells, complete=False)


def _json_bytes(value: dict[str, dict[int, Any]]) -> bytes:
    """The JSON text a ``ContactSnapshot`` field stores for ``value`` (ids become text keys, as ``JSONField``'s
    encoder makes them)."""
    return json.dumps(value).encode()


@contextlib.contextmanager
def _contacts_fetching(
    client: NetboxClient, stored: StoredContacts | None
) -> Iterator[Callable[[], ContactsListed | None] | None]:
    """``_fetch_contacts`` started in a forked child (with a client of its own), where the export may fork: yields
    the function that waits for its outcome, or ``None`` where it may not (the caller runs it in a thread). The
    listings' pages and records (every contact assignment: more than one per object) come and go in the child; only
    the state and the assignments' objects (JSON text) and the rendered cells come back, instead of the run's
    process keeping the heap they took."""
    if not (settings.EXPORT_PARALLEL_WRITE and FORK_AVAILABLE):
        yield None
        return

    def apart() -> tuple[ContactsListed | None, Any, list[str]]:
        own, warnings = client.forked_copy(), list[str]()
        try:
            return _fetch_contacts(own, stored, warnings.append), own.counts(), warnings
        finally:
            own.close()

    with forked(apart) as result:

        def outcome() -> ContactsListed | None:
            listed, counts, warnings = result()
            client.absorb(counts)
            for warning in warnings:  # logged here, where the run's log context and handlers are
                logger.warning(warning)
            return listed

        yield outcome


def _contacts_of(snapshot: ContactSnapshot) -> dict[tuple[str, int], str]:
    """The stored Contacts cells by ``(object type, object id)``, in one pass; the object types and the cells shared
    (as ``render.contacts_by_object`` shares them), not a copy of each per object."""
    shared: dict[str, str] = {}
    contacts: dict[tuple[str, int], str] = {}
    for key, text in snapshot.contacts.items():
        object_type, _, object_id = key.rpartition(":")
        contacts[(shared.setdefault(object_type, object_type), int(object_id))] = shared.setdefault(text, text)
    return contacts


def _fetch_incremental(
    client: NetboxClient, recorder: RunRecorder, kind: str, stored: dict[int, str]
) -> tuple[dict[int, str], list[Record], list[int]]:
    """The current ``id -> last_updated`` of every object, full records for those that are new or changed, and the
    ids asked for (every object whose ``last_updated`` is not the stored one)."""
    device = kind == NetboxSnapshot.Kind.DEVICE
    endpoint: Literal["devices", "virtual_machines"] = "devices" if device else "virtual_machines"
    current = _current_state(client, endpoint, stored)
    wanted = sorted(i for i, last_updated in current.items() if stored.get(i) != last_updated)
    records: list[Record] = []
    # In a thread of its own beside the other kind's: progress noted, saved by the caller (no database here).
    if device:
        recorder.progress(devices_total=len(wanted), persist=False)
    else:
        recorder.progress(vms_total=len(wanted), persist=False)
    if wanted:
        fetch = client.fetch_devices_by_id if device else client.fetch_virtual_machines_by_id
        records = list(fetch(wanted))
    # Objects edited between the listing and the re-fetch: trust the newer version; deleted meanwhile: drop them.
    for record in records:
        current[record.id] = record.last_updated
    for missing in set(wanted) - {record.id for record in records}:
        del current[missing]
    if device:
        recorder.progress(devices_fetched=len(records), persist=False)
    else:
        recorder.progress(vms_fetched=len(records), persist=False)
    return current, records, wanted


def _current_state(client: NetboxClient, endpoint: Kind, stored: dict[int, str]) -> dict[int, str]:
    """``id -> last_updated`` of every object of a listing now, asking NetBox as little as possible.

    NetBox cannot list deletions, but its count can reveal them: with the objects updated since the newest stored
    change (a minute of slack for transactions that committed late), ``stored + new - count`` is the number of
    deleted objects. When it is not zero, id ranges are counted to find them (``_deletions_found``); the whole
    ``id,last_updated`` listing is read only for many deletions, or when the counts do not add up.
    """
    if not stored:
        return client.fetch_last_updated(endpoint)
    # NetBox writes UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``: the first 19 characters sort like the times they
    # name, to the second, and the slack covers the fraction dropped. (The newest text's first 19 characters are
    # the newest of the first 19 characters, without a slice of every text.)
    newest_text = max(stored.values())[:19]
    if not newest_text:  # no stored object has a time: nothing to compare against
        return client.fetch_last_updated(endpoint)
    newest = _parse_netbox_time(newest_text + "Z")
    since = (newest - INCREMENTAL_SLACK).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    total = client.count(endpoint)
    updated = client.fetch_updated_since(endpoint, since)
    added = sum(1 for netbox_id in updated if netbox_id not in stored)
    deleted = len(stored) + added - total
    if deleted == 0:
        return {**stored, **updated}
    if 0 < deleted <= DELETIONS_SEARCHED:
        found = _deletions_found(client, endpoint, {**stored, **updated}, deleted)
        if found is not None:
            return found
    return client.fetch_last_updated(endpoint)


DELETIONS_SEARCHED = 64  # more deletions than this: the whole id,last_updated listing is cheaper than the search
RANGE_LISTED = 500  # ids in a range whose listing is read instead of halving it further (one page)


def _deletions_found(
    client: NetboxClient, endpoint: Kind, known: dict[int, str], deleted: int
) -> dict[int, str] | None:
    """``known`` (the stored objects and those updated since) without the ``deleted`` objects NetBox no longer has,
    found by counting id ranges (``id__gte``/``id__lt``) instead of listing every object: a range that holds fewer
    objects in NetBox than in ``known`` is halved until it is small, then listed. About ``deleted * log2(objects /
    RANGE_LISTED)`` counts and ``deleted`` one-page listings instead of every page of the listing. ``None`` when
    NetBox's counts do not add up (objects added or deleted meanwhile): the caller lists everything."""
    ids = sorted(known)
    current = known  # the caller's own merge of the stored and updated objects: changed in place, not copied
    pending = [(0, len(ids), deleted)]  # (start, stop) in ``ids``, and how many of them are gone
    while pending:
        start, stop, missing = pending.pop()
        if missing == 0:
            continue
        if stop - start <= RANGE_LISTED or stop - start == missing:
            low, high = ids[start], ids[stop - 1] + 1
            listed = client.fetch_last_updated(endpoint, ids=(low, high))
            gone = [i for i in ids[start:stop] if i not in listed]
            if len(gone) != missing or any(i not in known for i in listed):
                return None
            for netbox_id in gone:
                del current[netbox_id]
            current.update(listed)
            continue
        middle = (start + stop) // 2
        first = middle - start - client.count(endpoint, ids=(ids[start], ids[middle]))
        if not 0 <= first <= missing:
            return None
        pending += [(start, middle, first), (middle, stop, missing - first)]
    return current


def _parse_netbox_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
