"""The NetBox → CMDB export: requesting, queueing and executing runs.

Every door (the ``netbox_update`` command, the API, the web page, the admin, the django-q2 schedule) ends in
``export_run_request`` and ``export_run_execute``.

A run writes its files into a folder of its own under ``ENREACH_DATA_DIR/runs/``, each through a temp file moved
into place; the database records the files only once all of them are written. So a failed run never touches the
files of the last successful one, which stay the "latest" files.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import gc
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from enreach.forked import ChildProcessFailed, forked
from enreach.logs import log_context
from enreach.tracing import span
from exports import changes, quality, transform, writers
from exports.constants import DEVICES_CSV, MERGED_CSV, QUALITY_CSV, VMS_CSV, WORKBOOK
from exports.models import ContactSnapshot, ExportArtifact, ExportRun, NetboxSnapshot
from exports.publishing import export_run_publish
from exports.quality_services import quality_config_current, quality_counts_save, quality_summary_of
from exports.runs import export_run_send, export_runs_sweep, run_heartbeat, run_worker
from exports.snapshots import snapshots_outdated
from exports.steps import step_label
from integrations.caching import cache_event
from integrations.exceptions import IntegrationError, NetboxAuthError
from integrations.netbox.client import Kind, NetboxClient
from integrations.netbox.factory import netbox_client
from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    VM_OBJECT_TYPE,
    DeviceRecord,
    VirtualMachineRecord,
    device_from_dict,
    record_json,
    virtual_machine_from_dict,
)

logger = logging.getLogger(__name__)

ARTIFACT_KINDS = {
    DEVICES_CSV: ExportArtifact.Kind.DEVICES,
    VMS_CSV: ExportArtifact.Kind.VMS,
    MERGED_CSV: ExportArtifact.Kind.MERGED,
    WORKBOOK: ExportArtifact.Kind.WORKBOOK,
    QUALITY_CSV: ExportArtifact.Kind.QUALITY,
}
OPTIONAL_ARTIFACTS = frozenset((QUALITY_CSV,))  # absent when the data-quality report is off or failed
CHANGES_LISTED = 50  # names kept per kind and change type in ExportRun.changes
SNAPSHOT_BATCH = 1000
INCREMENTAL_SLACK = timedelta(minutes=1)

ProgressCallback = Callable[[ExportRun], None]
Record = DeviceRecord | VirtualMachineRecord


class ExportError(Exception):
    """An export cannot be requested or executed as asked."""


# --- Requesting -------------------------------------------------------------------------------------------------


def export_run_reap_stale() -> int:
    """Fail (and retry) runs whose worker stopped giving signs of life; see ``exports.runs.export_runs_sweep``.

    Without this a dead worker would block every later export, since only one run may be active.
    """
    result = export_runs_sweep()
    return len(result.abandoned) + len(result.never_started)


def export_run_request(
    *, trigger: str, user: Any = None, force: bool = False, publish: bool = True
) -> tuple[ExportRun, bool]:
    """Create a queued run, or return the run that is already queued or running.

    Returns ``(run, created)``. Only one run can be active: the database's unique index on ``active`` decides
    between concurrent requests.
    """
    if trigger not in ExportRun.Trigger.values:
        raise ExportError(f"Unknown trigger {trigger!r}.")
    export_run_reap_stale()
    for _ in range(3):
        try:
            with transaction.atomic():
                run = ExportRun.objects.create(
                    trigger=trigger,
                    requested_by=user if user is not None and user.is_authenticated else None,
                    force=force,
                    publish=publish,
                )
            return run, True
        except IntegrityError:
            active = ExportRun.objects.filter(active=True).first()
            if active is not None:
                return active, False
    raise ExportError("Could not create an export run.")


def export_run_enqueue(*, run: ExportRun) -> None:
    """Hand the run to the django-q2 workers once the surrounding transaction commits."""
    # Raises QueueUnavailable (the run is then failed) when the broker is down.
    transaction.on_commit(lambda: export_run_send(run=run))


# --- Executing ----------------------------------------------------------------------------------------------------


@dataclass
class _Fetched:
    """What a run learned from NetBox."""

    devices: list[DeviceRecord] | None  # None when nothing changed and the files can be reused
    vms: list[VirtualMachineRecord] | None
    lookups: transform.Lookups
    lookups_digest: str
    snapshot_writes: dict[str, list[Record]] = field(default_factory=dict)  # snapshots to insert or replace
    snapshot_deletes: dict[str, list[int]] = field(default_factory=dict)
    contact_snapshot: ContactSnapshot | None = None  # to save when the contacts were listed anew
    counts: dict[str, int] = field(default_factory=dict)
    changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    quality: quality.QualitySummary | None = None  # the data-quality results, once the files are written


class _Recorder:
    """Keeps the run row up to date: current step, per-step timings, progress (throttled) and log lines."""

    def __init__(self, run: ExportRun, on_progress: ProgressCallback | None) -> None:
        self.run = run
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._last_save = 0.0

    def log(self, message: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        with self._lock:
            self.run.log += f"{stamp} {message}\n"
        logger.info("export run %s: %s", self.run.pk, message)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.run.step = name
        with log_context(step=name), span(f"export.{name}", **{"export.run_id": self.run.pk}):
            self.log(f"{step_label(name)}…")
            self.save(force=True)
            started = time.perf_counter()
            yield
            self.run.timings[name] = round(time.perf_counter() - started, 3)

    def progress(self, *, persist: bool = True, **values: int) -> None:
        """Record progress; ``persist=False`` from other threads, which must not use the database."""
        with self._lock:
            self.run.progress.update(values)
        if persist:
            self.save()

    def save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_save < 1.0:
            return
        self._last_save = now
        self.run.heartbeat = timezone.now()
        with self._lock:
            ExportRun.objects.filter(pk=self.run.pk).update(
                step=self.run.step,
                progress=dict(self.run.progress),
                timings=dict(self.run.timings),
                log=self.run.log,
                heartbeat=self.run.heartbeat,
            )
        if self.on_progress is not None:
            self.on_progress(self.run)


def export_run_execute(*, run: ExportRun, on_progress: ProgressCallback | None = None) -> ExportRun:
    """Execute a queued run: fetch from NetBox, transform, write the files, record everything.

    Never raises for an export failure: the run is marked failed with a readable reason and the previous files
    stay as they were. A run that is not queued any more (delivered twice) is returned untouched.
    """
    claimed = ExportRun.objects.filter(pk=run.pk, status=ExportRun.Status.QUEUED).update(
        status=ExportRun.Status.RUNNING, started=timezone.now(), heartbeat=timezone.now(), worker=run_worker()
    )
    run.refresh_from_db()
    if not claimed:
        return run
    with (
        log_context(run_id=run.pk),
        span("export.run", **{"export.run_id": run.pk, "export.trigger": run.trigger}),
        run_heartbeat(run_id=run.pk),
        _gc_paused(),
    ):
        return _execute(run, on_progress)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration of a run.

    A run holds millions of small objects at once (decoded pages, records, rows), and every collection of the
    oldest generation walks all of them: measured on 50,000 objects, collections took nearly half of the export.
    What a run allocates is freed by reference counting (dicts, lists, tuples, slotted records: no cycles to
    find), so nothing is lost by pausing; the collector resumes, as it was, when the run ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _execute(run: ExportRun, on_progress: ProgressCallback | None) -> ExportRun:
    recorder = _Recorder(run, on_progress)
    folder = Path(settings.DATA_DIR) / "runs" / f"{run.pk:06d}"
    pandas_loaded = quality.pandas_preload() if settings.EXPORT_QUALITY else lambda: None
    try:
        previous = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED).order_by("-finished").first()
        fetched = _fetch(run, recorder, previous)
        pandas_loaded()  # before the writing child is forked
        with contextlib.ExitStack() as writing:
            with recorder.step("write"):
                if fetched.devices is None and previous is not None:
                    reused = _reuse_files(previous, folder)
                    written: Callable[[], dict[str, writers.FileInfo]] = lambda: reused  # noqa: E731
                    run.reused_files = True
                    fetched.quality = quality_summary_of(previous)  # same rows, same findings file
                    recorder.log("Nothing changed in NetBox: reused the previous run's files.")
                    comparison = changes.Comparison([], True, "")
                else:
                    written = writing.enter_context(_files_writing(fetched, folder, recorder))
                    # The devices and VMs CSVs are written; compared while the child writes the workbook.
                    comparison = changes.changes_compute(
                        run=run,
                        previous=previous,
                        new_files={ARTIFACT_KINDS[name]: folder / name for name in (DEVICES_CSV, VMS_CSV)},
                    )
                    recorder.log(comparison.note)
            # Snapshots, files and counts commit together or not at all. The snapshots are encoded and saved while
            # the child writes the workbook; the transaction begins as late as it can (SQLite has one writer).
            with recorder.step("save"), transaction.atomic():
                _snapshots_save(fetched)
                run.compared = comparison.compared
                changes.changes_save(run=run, changes=comparison.changes)
                _save(run, fetched, written())
        recorder.log(
            f"Succeeded: {run.devices} devices, {run.vms} VMs; "
            f"{run.added} added, {run.changed} changed, {run.removed} removed."
        )
        _finish(run, status=ExportRun.Status.SUCCEEDED)
        cache_event("export_succeeded")
    except Exception as exc:  # every failure becomes a failed run, never a crash of the caller
        reason = _reason(exc)
        if not isinstance(exc, (IntegrationError, ExportError, ValueError, OSError)):
            logger.exception("export run %s crashed", run.pk)
            recorder.log(traceback.format_exc(limit=5))
        recorder.log(f"Failed: {reason}")
        shutil.rmtree(folder, ignore_errors=True)
        _finish(run, status=ExportRun.Status.FAILED, error=reason)
        return run
    with contextlib.suppress(OSError):
        export_files_prune()
    if run.publish:  # publishing records its own outcome and never raises
        export_run_publish(run=run)
    return run


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (IntegrationError, ExportError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _finish(run: ExportRun, *, status: str, error: str = "") -> None:
    if run.pk is not None and not ExportRun.objects.filter(pk=run.pk, active=True).exists():
        # The sweeper failed it as abandoned meanwhile (a worker silent for too long): its verdict stands.
        logger.warning("export run %s finished after it was failed as abandoned; keeping that outcome", run.pk)
        run.refresh_from_db()
        return
    run.status = status
    run.error = error
    run.finished = timezone.now()
    run.active = None
    run.step = ""
    run.save()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _fetch(run: ExportRun, recorder: _Recorder, previous: ExportRun | None) -> _Fetched:
    with netbox_client() as client:
        try:
            return _fetch_with(client, run, recorder, previous)
        finally:
            client.flush_metrics()


def _fetch_with(client: NetboxClient, run: ExportRun, recorder: _Recorder, previous: ExportRun | None) -> _Fetched:
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
    if incremental and (outdated := snapshots_outdated()):
        recorder.log(f"Full export instead of incremental: {outdated}")
        incremental = False
    run.mode = ExportRun.Mode.INCREMENTAL if incremental else ExportRun.Mode.FULL
    ExportRun.objects.filter(pk=run.pk).update(mode=run.mode, netbox_url=run.netbox_url)
    if switched:
        assert previous is not None
        recorder.log(f"NetBox changed from {previous.netbox_url} to {run.netbox_url}: a full export.")
    recorder.log(f"{run.mode.capitalize()} export from {run.netbox_url}")

    snapshot = ContactSnapshot.objects.first() if incremental else None
    stored_contacts = _contact_state(snapshot) if snapshot is not None else None
    # The small bulk listings behind the lookups (sites, tenants, contacts) run while the devices and VMs are
    # fetched; each in a copy of this context, so its spans and log lines carry the run. The client keeps the
    # requests in flight to NETBOX_WORKERS.
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookups")
    try:
        sites = pool.submit(contextvars.copy_context().run, client.fetch_sites)
        tenants = pool.submit(contextvars.copy_context().run, client.fetch_tenants)
        contacts = pool.submit(contextvars.copy_context().run, _fetch_contacts, client, stored_contacts)
        with recorder.step("fetch"):
            stored: dict[str, dict[int, str]] = {  # kind -> netbox_id -> last_updated
                kind: dict(NetboxSnapshot.objects.filter(kind=kind).values_list("netbox_id", "last_updated"))
                for kind in NetboxSnapshot.Kind.values
            }
            if incremental:
                devices = _fetch_incremental(client, recorder, NetboxSnapshot.Kind.DEVICE, stored["device"])
                vms = _fetch_incremental(client, recorder, NetboxSnapshot.Kind.VM, stored["vm"])
            else:  # devices and VMs at once: their first pages (which give the counts) need not wait for each other
                recorder.progress(devices_total=client.count("devices"), vms_total=client.count("virtual_machines"))
                vm_records = pool.submit(
                    contextvars.copy_context().run,
                    client.fetch_virtual_machines,
                    lambda n: recorder.progress(persist=False, vms_fetched=n),
                )
                devices = _full(client.fetch_devices(progress=lambda n: recorder.progress(devices_fetched=n)))
                vms = _full(vm_records.result())
        # What is left to wait for once the devices and VMs are in.
        with recorder.step("lookups"):
            contact_state, rendered = contacts.result()
            site_records, tenant_records = sites.result(), tenants.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    run.netbox_requests = client.request_count
    if rendered is None:  # the contact listings did not change: neither did the contacts
        assert snapshot is not None
        contact_snapshot = None
        rendered = _contacts_of(snapshot)
    else:
        contact_snapshot = _contact_snapshot(contact_state, rendered)
        snapshot = contact_snapshot
    lookups = transform.Lookups.from_records(sites=site_records, tenants=tenant_records, contacts=rendered)
    # The contacts enter the digest through their own, computed once when they were rendered.
    lookups_digest = _digest(
        [sorted(getattr(lookups, f.name).items()) for f in dataclasses.fields(lookups) if f.name != "contacts"]
        + [snapshot.digest]
    )

    fetched = _Fetched(
        devices=None, vms=None, lookups=lookups, lookups_digest=lookups_digest, contact_snapshot=contact_snapshot
    )
    unchanged = True
    for kind, (current, changed_records) in {"device": devices, "vm": vms}.items():
        previous_state = stored[kind]
        current_ids = set(current)
        added = [i for i in current_ids if i not in previous_state]
        changed = [i for i in current_ids if i in previous_state and previous_state[i] != current[i]]
        removed = [i for i in previous_state if i not in current_ids]
        if incremental:  # a record NetBox touched without changing what we keep needs no write
            digests = _stored_values(kind, "digest", [r.id for r in changed_records])
            writes = [r for r in changed_records if digests.get(r.id) != _snapshot(r)[1]]
        else:  # a full run rewrites every snapshot
            writes = list(changed_records)
        fetched.snapshot_writes[kind] = writes
        fetched.snapshot_deletes[kind] = removed
        label = "devices" if kind == "device" else "vms"
        fetched.counts[label] = len(current_ids)
        fetched.counts["added"] = fetched.counts.get("added", 0) + len(added)
        fetched.counts["changed"] = fetched.counts.get("changed", 0) + len(changed)
        fetched.counts["removed"] = fetched.counts.get("removed", 0) + len(removed)
        names = {r.id: r.name for r in changed_records}
        fetched.changes[label] = {
            "added": sorted(names.get(i, str(i)) for i in added)[:CHANGES_LISTED],
            "changed": sorted(names.get(i, str(i)) for i in changed)[:CHANGES_LISTED],
            "removed": sorted(name or str(i) for i, name in _stored_values(kind, "name", removed).items())[
                :CHANGES_LISTED
            ],
        }
        unchanged = unchanged and not (added or changed or removed or writes)

    if incremental and unchanged and previous is not None and previous.lookups_digest == lookups_digest:
        return fetched
    # Something changed: build complete record lists, from NetBox where fetched and snapshots for the rest.
    with recorder.step("reuse") if incremental else contextlib.nullcontext():
        fetched.devices = _complete(NetboxSnapshot.Kind.DEVICE, *devices, device_from_dict)  # type: ignore[assignment]
        fetched.vms = _complete(NetboxSnapshot.Kind.VM, *vms, virtual_machine_from_dict)  # type: ignore[assignment]
    return fetched


def _stored_values(kind: str, column: str, ids: Sequence[int]) -> dict[int, str]:
    """``netbox_id -> column`` of the stored snapshots with these ids."""
    values: dict[int, str] = {}
    for start in range(0, len(ids), SNAPSHOT_BATCH):
        batch = ids[start : start + SNAPSHOT_BATCH]
        values.update(NetboxSnapshot.objects.filter(kind=kind, netbox_id__in=batch).values_list("netbox_id", column))
    return values


CONTACT_LISTINGS: tuple[Kind, ...] = ("contacts", "contact_roles", "device_contacts", "vm_contacts")


def _fetch_contacts(
    client: NetboxClient, stored: dict[str, dict[int, str]] | None
) -> tuple[dict[str, dict[int, str]], dict[tuple[str, int], str] | None]:
    """The ``id -> last_updated`` state of the contact listings, and the Contacts cells unless that state is the
    stored one (``None``: the stored cells still hold).

    NetBox bumps neither a device's ``last_updated`` when its contacts change nor an assignment's when its contact
    or role is renamed, so the four listings' states decide. Contacts and roles are read before the assignments:
    a rename in between shows as a change next time instead of being lost.
    """
    if stored is not None and set(stored) == set(CONTACT_LISTINGS):
        with ThreadPoolExecutor(max_workers=len(CONTACT_LISTINGS), thread_name_prefix="contacts") as pool:
            futures = {
                listing: pool.submit(contextvars.copy_context().run, _current_state, client, listing, stored[listing])
                for listing in CONTACT_LISTINGS
            }
            state: dict[str, dict[int, str]] = {listing: future.result() for listing, future in futures.items()}
        if state == stored:
            return state, None
    else:
        try:
            state = {"contacts": client.fetch_last_updated("contacts")}
            state["contact_roles"] = client.fetch_last_updated("contact_roles")
        except NetboxAuthError as exc:
            # A token that may read assignments but not contacts or roles: without their state, every run lists
            # the assignments (the stored state lacks two listings, so the check above never applies).
            logger.warning("Contacts will be listed in full on every run: %s", exc)
            state = {}
    assignments = {
        "device_contacts": client.fetch_contact_assignments(DEVICE_OBJECT_TYPE),
        "vm_contacts": client.fetch_contact_assignments(VM_OBJECT_TYPE),
    }
    for listing, records in assignments.items():
        state[listing] = {record.id: record.last_updated for record in records}
    return state, transform.contacts_by_object([*assignments["device_contacts"], *assignments["vm_contacts"]])


def _contact_state(snapshot: ContactSnapshot) -> dict[str, dict[int, str]]:
    return {listing: {int(i): stamp for i, stamp in ids.items()} for listing, ids in snapshot.state.items()}


def _contacts_of(snapshot: ContactSnapshot) -> dict[tuple[str, int], str]:
    keys = {key: key.rpartition(":") for key in snapshot.contacts}
    return {(keys[key][0], int(keys[key][2])): text for key, text in snapshot.contacts.items()}


def _contact_snapshot(state: dict[str, dict[int, str]], rendered: dict[tuple[str, int], str]) -> ContactSnapshot:
    return ContactSnapshot(
        state=state,
        contacts={f"{object_type}:{object_id}": text for (object_type, object_id), text in rendered.items()},
        digest=_digest(sorted(rendered.items())),
    )


def _fetch_incremental(
    client: NetboxClient, recorder: _Recorder, kind: str, stored: dict[int, str]
) -> tuple[dict[int, str], list[Record]]:
    """The current ``id -> last_updated`` of every object, and full records for those that are new or changed."""
    device = kind == NetboxSnapshot.Kind.DEVICE
    endpoint: Literal["devices", "virtual_machines"] = "devices" if device else "virtual_machines"
    current = _current_state(client, endpoint, stored)
    wanted = sorted(i for i, last_updated in current.items() if stored.get(i) != last_updated)
    records: list[Record] = []
    if device:
        recorder.progress(devices_total=len(wanted))
    else:
        recorder.progress(vms_total=len(wanted))
    if wanted:
        fetch = client.fetch_devices_by_id if device else client.fetch_virtual_machines_by_id
        records = list(fetch(wanted))
    # Objects edited between the listing and the re-fetch: trust the newer version; deleted meanwhile: drop them.
    for record in records:
        current[record.id] = record.last_updated
    for missing in set(wanted) - {record.id for record in records}:
        del current[missing]
    if device:
        recorder.progress(devices_fetched=len(records))
    else:
        recorder.progress(vms_fetched=len(records))
    return current, records


def _current_state(client: NetboxClient, endpoint: Kind, stored: dict[int, str]) -> dict[int, str]:
    """``id -> last_updated`` of every object of a listing now, asking NetBox as little as possible.

    NetBox cannot list deletions, but its count can reveal them: with the objects updated since the newest stored
    change (a minute of slack for transactions that committed late), ``stored + new - count`` is the number of
    deleted objects. Only when that is not zero is the whole ``id,last_updated`` listing needed to find them.
    """
    if not stored:
        return client.fetch_last_updated(endpoint)
    # NetBox writes UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``: the first 19 characters sort like the times they
    # name, to the second, and the slack covers the fraction dropped.
    newest_text = max(last_updated[:19] for last_updated in stored.values())
    if not newest_text:  # no stored object has a time: nothing to compare against
        return client.fetch_last_updated(endpoint)
    newest = _parse_netbox_time(newest_text + "Z")
    since = (newest - INCREMENTAL_SLACK).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    total = client.count(endpoint)
    updated = client.fetch_updated_since(endpoint, since)
    added = sum(1 for netbox_id in updated if netbox_id not in stored)
    if len(stored) + added - total != 0:
        return client.fetch_last_updated(endpoint)
    return {**stored, **updated}


def _parse_netbox_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _full(records: Sequence[Record]) -> tuple[dict[int, str], list[Record]]:
    return {r.id: r.last_updated for r in records}, list(records)


def _complete(
    kind: str, current: dict[int, str], fresh: list[Record], from_dict: Callable[[dict[str, Any]], Record]
) -> list[Record]:
    """The records of every current object: those fetched now, and the stored snapshots of the others."""
    fresh_ids = {record.id for record in fresh}
    reuse = {i for i in current if i not in fresh_ids}
    records = list(fresh)
    if not reuse:
        return records
    # One pass over the kind's snapshots: far cheaper than thousands of ``netbox_id IN (...)`` batches.
    for netbox_id, data in (
        NetboxSnapshot.objects.filter(kind=kind).values_list("netbox_id", "data").iterator(chunk_size=SNAPSHOT_BATCH)
    ):
        if netbox_id in reuse:
            records.append(from_dict(data))
    if len(records) != len(current):
        raise ExportError("Stored snapshots are incomplete; run the export with --force.")
    return records


def _workbook_columns() -> tuple[str, ...]:
    order = settings.EXPORT_WORKBOOK_COLUMNS
    if len(order) == 1 and order[0].lower().endswith(".xlsx"):
        order = writers.read_workbook_order(Path(order[0]))
    return transform.workbook_column_order(order or None)


@contextlib.contextmanager
def _files_writing(
    fetched: _Fetched, folder: Path, recorder: _Recorder
) -> Iterator[Callable[[], dict[str, writers.FileInfo]]]:
    """Write the four files; yields a function that waits for them all.

    Once the rows are built, a forked child writes the merged CSV and the workbook (the larger half of the work)
    while this process writes the devices and VMs CSVs and then runs the caller's block (encoding and saving the
    snapshots): both CPU cores instead of one. Leaving the block with an error stops the child.
    """
    assert fetched.devices is not None and fetched.vms is not None
    folder.mkdir(parents=True, exist_ok=True)
    device_rows = transform.device_rows(fetched.devices, fetched.lookups)
    vm_rows = transform.vm_rows(fetched.vms, fetched.lookups)
    excel_safe = settings.EXPORT_CSV_EXCEL_SAFE
    columns = _workbook_columns()
    # Read here: the child must not use the database.
    quality_config = quality_config_current() if settings.EXPORT_QUALITY else None
    quality_sheet = settings.EXPORT_QUALITY_SHEET

    def merged_files() -> tuple[dict[str, writers.FileInfo], quality.QualitySummary | None]:
        merged = transform.merged_rows(device_rows, vm_rows)  # built where it is used: in the child
        files = {
            MERGED_CSV: writers.write_csv(folder / MERGED_CSV, transform.MERGED_COLUMNS, merged, excel_safe=excel_safe)
        }
        sheets: list[writers.ExtraSheet] = []
        summary = None
        if quality_config is not None:  # the data-quality report, from the rows the child has anyway
            info, sheets, summary = quality.quality_files_write(
                merged, transform.MERGED_COLUMNS, quality_config, folder / QUALITY_CSV, sheet=quality_sheet
            )
            if info is not None:
                files[QUALITY_CSV] = info
        files[WORKBOOK] = writers.write_workbook(
            folder / WORKBOOK,
            columns,
            transform.reorder(merged, transform.MERGED_COLUMNS, columns),
            extra_sheets=sheets,
        )
        return files, summary

    with forked(merged_files, enabled=settings.EXPORT_PARALLEL_WRITE) as merged_result:
        files = {
            DEVICES_CSV: writers.write_csv(
                folder / DEVICES_CSV, transform.DEVICE_COLUMNS, device_rows, excel_safe=excel_safe
            ),
            VMS_CSV: writers.write_csv(folder / VMS_CSV, transform.VM_COLUMNS, vm_rows, excel_safe=excel_safe),
        }
        rows = len(device_rows) + len(vm_rows)
        files_total = len(ARTIFACT_KINDS) - (0 if quality_config is not None else len(OPTIONAL_ARTIFACTS))
        recorder.progress(rows_written=rows, rows_total=rows, files_written=len(files), files_total=files_total)

        def written() -> dict[str, writers.FileInfo]:
            try:
                merged, fetched.quality = merged_result()
                files.update(merged)
            except ChildProcessFailed as exc:
                raise ExportError(f"The process writing the merged CSV and the workbook {exc}.") from None
            written_files = {name: files[name] for name in ARTIFACT_KINDS if name in files}
            # A failed data-quality report writes one file less than planned: the run is complete all the same.
            recorder.progress(files_written=len(written_files), files_total=len(written_files))
            return written_files

        yield written


def _reuse_files(previous: ExportRun, folder: Path) -> dict[str, writers.FileInfo]:
    """Link (or copy) the previous run's files into this run's folder: same content, no rewrite."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for artifact in previous.artifacts.all():
        source = Path(settings.DATA_DIR) / artifact.path
        target = folder / artifact.name
        temp = folder / f".{artifact.name}.tmp"
        if not source.is_file():
            raise ExportError(f"The previous run's file {artifact.name} is missing; run the export with --force.")
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
            os.chmod(temp, writers.FILE_MODE)
        os.replace(temp, target)
        files[artifact.name] = writers.FileInfo(
            path=target, size=artifact.size, sha256=artifact.sha256, rows=artifact.rows
        )
    if not set(ARTIFACT_KINDS) - OPTIONAL_ARTIFACTS <= set(files):
        raise ExportError("The previous run's files are incomplete; run the export with --force.")
    return files


def _snapshots_save(fetched: _Fetched) -> None:
    """Store what the next incremental run compares against: device and VM snapshots, and the contacts."""
    _snapshots_upsert(fetched.snapshot_writes)
    for kind, ids in fetched.snapshot_deletes.items():
        for start in range(0, len(ids), SNAPSHOT_BATCH):
            NetboxSnapshot.objects.filter(kind=kind, netbox_id__in=ids[start : start + SNAPSHOT_BATCH]).delete()
    if fetched.contact_snapshot is not None:
        ContactSnapshot.objects.all().delete()
        fetched.contact_snapshot.save()


def _save(run: ExportRun, fetched: _Fetched, files: dict[str, writers.FileInfo]) -> None:
    """Record the run's files and counts."""
    data_dir = Path(settings.DATA_DIR)
    ExportArtifact.objects.bulk_create(
        ExportArtifact(
            run=run,
            kind=ARTIFACT_KINDS[name],
            name=name,
            path=str(info.path.relative_to(data_dir)),
            size=info.size,
            sha256=info.sha256,
            rows=info.rows,
        )
        for name, info in files.items()
    )
    run.devices = fetched.counts["devices"]
    run.vms = fetched.counts["vms"]
    run.added = fetched.counts["added"]
    run.changed = fetched.counts["changed"]
    run.removed = fetched.counts["removed"]
    run.changes = fetched.changes
    run.lookups_digest = fetched.lookups_digest
    if fetched.quality is not None:
        quality_counts_save(run=run, summary=fetched.quality)
        if not run.reused_files:
            run.timings["quality"] = round(fetched.quality.seconds, 3)
    run.save()


def _snapshot(record: Record) -> tuple[str, str]:
    """A record's snapshot: its JSON, and the JSON's SHA-256 (compared to skip unchanged writes)."""
    text = record_json(record)
    return text, hashlib.sha256(text.encode()).hexdigest()


def _snapshots_upsert(writes: dict[str, list[Record]]) -> None:
    """Insert or replace the snapshots of these records, ``SNAPSHOT_BATCH`` rows per ``INSERT … ON CONFLICT``.

    Plain SQL (the same on SQLite and PostgreSQL) with each record's JSON encoded once, batch by batch so only one
    batch of JSON is held at a time: ``bulk_create`` built a model instance and encoded the JSON again for each of
    50,000 rows, which took longer than writing all the files.
    """
    table = connection.ops.quote_name(NetboxSnapshot._meta.db_table)
    data = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    # The table name comes from the model; every value is a parameter.
    sql = (
        f"INSERT INTO {table} (kind, netbox_id, name, last_updated, digest, data) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s, %s, {data}) "
        "ON CONFLICT (kind, netbox_id) DO UPDATE SET name = excluded.name, last_updated = excluded.last_updated, "
        "digest = excluded.digest, data = excluded.data"
    )
    with connection.cursor() as cursor:
        for kind, records in writes.items():
            for start in range(0, len(records), SNAPSHOT_BATCH):
                cursor.executemany(
                    sql,
                    [
                        (kind, record.id, record.name[:255], record.last_updated, digest, text)
                        for record in records[start : start + SNAPSHOT_BATCH]
                        for text, digest in [_snapshot(record)]
                    ],
                )


def export_files_prune() -> int:
    """Delete the folders of successful runs beyond the newest ``EXPORT_KEEP_RUNS``; returns how many."""
    keep = settings.EXPORT_KEEP_RUNS
    old = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED, artifacts__isnull=False).distinct()
    old_runs = list(old.order_by("-finished")[keep:])
    for run in old_runs:
        shutil.rmtree(Path(settings.DATA_DIR) / "runs" / f"{run.pk:06d}", ignore_errors=True)
        run.artifacts.all().delete()
    return len(old_runs)


# --- Schedule ----------------------------------------------------------------------------------------------------

SCHEDULE_NAME = "NetBox export"


def export_schedule_parse(value: str) -> tuple[str, dict[str, Any]]:
    """``EXPORT_SCHEDULE`` as django-q2 schedule fields: a number of minutes, or a cron expression."""
    from croniter import croniter
    from django_q.models import Schedule

    value = value.strip()
    if value.isdigit() and int(value) > 0:
        return Schedule.MINUTES, {"minutes": int(value), "cron": None}
    if croniter.is_valid(value):
        return Schedule.CRON, {"cron": value, "minutes": None}
    raise ExportError(f"EXPORT_SCHEDULE={value!r} is neither a number of minutes nor a cron expression.")


def export_schedule_sync() -> str:
    """Create, update or remove the export schedule to match ``EXPORT_SCHEDULE``. Safe to call repeatedly."""
    from django_q.models import Schedule

    if not settings.EXPORT_SCHEDULE:
        deleted, _ = Schedule.objects.filter(name=SCHEDULE_NAME).delete()
        return "removed" if deleted else "none"
    schedule_type, fields = export_schedule_parse(settings.EXPORT_SCHEDULE)
    _, created = Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "exports.tasks.export_scheduled_task",
            "schedule_type": schedule_type,
            "repeats": -1,
            **fields,
        },
    )
    return "created" if created else "updated"
