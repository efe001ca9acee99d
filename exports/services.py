"""The NetBox → CMDB export: requesting, queueing and executing runs.

Every door (the ``netbox_update`` command, the API, the web page, the admin, the django-q2 schedule) ends in
``export_run_request`` and ``export_run_execute``.

A run writes its files into a folder of its own under ``ENREACH_DATA_DIR/runs/``, each through a temp file moved
into place; the database records the files only once all of them are written. So a failed run never touches the
files of the last successful one, which stay the "latest" files. Other apps take part through two registries and are
never imported here: companions work while the files are written (``exports.companions``: the data-quality report),
and once the run is finished, succeeded or failed, it is announced to the after-run steps (``exports.afterrun``:
publishing, the CMDB table, notifications).
"""

import contextlib
import gc
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from enreach.forked import heap_bounded, release_freed_memory
from enreach.logs import log_context
from enreach.outage import database_retry
from enreach.tracing import span
from exports import changes
from exports.afterrun import after_run_execute
from exports.atomic import FileInfo
from exports.column_sets import column_set_notes
from exports.companions import CompanionWrite
from exports.constants import DEVICES_CSV, VMS_CSV
from exports.errors import ExportError
from exports.fetch import Fetched, export_fetching
from exports.files import (
    ARTIFACT_KINDS,
    artifact_kind,
    export_files_prune,
    files_plan,
    files_reuse,
    files_streaming,
    files_writing,
)
from exports.limits import LIMITED_TRIGGERS, export_start_check
from exports.models import ExportArtifact, ExportRun
from exports.recorder import ProgressCallback, RunRecorder
from exports.runs import export_run_send, export_runs_sweep, run_heartbeat, run_worker
from exports.snapshots import snapshots_save
from integrations.caching import cache_event
from integrations.exceptions import IntegrationError

logger = logging.getLogger(__name__)

__all__ = ["ExportError", "export_run_enqueue", "export_run_execute", "export_run_reap_stale", "export_run_request"]


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
    between concurrent requests. A new run from the API, the page or the admin is refused with ``ExportThrottled``
    when its user, or everyone together, started too many recently (``exports.limits``).
    """
    if trigger not in ExportRun.Trigger.values:
        raise ExportError(f"Unknown trigger {trigger!r}.")
    export_run_reap_stale()
    for _ in range(3):
        if trigger in LIMITED_TRIGGERS:
            active = ExportRun.objects.filter(active=True).first()
            if active is not None:  # joining the active run starts nothing
                return active, False
            export_start_check(user=user)
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
    heap_bounded()  # the pages and rows a run streams through its threads do not stay resident after it
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
    recorder = RunRecorder(run, on_progress)
    folder = Path(settings.DATA_DIR) / "runs" / f"{run.pk:06d}"
    try:
        previous = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED).order_by("-finished").first()
        plan = files_plan()
        run.files_digest = plan.digest
        run.columns = {} if plan.column_set.is_default else plan.column_set.as_dict()
        for note in column_set_notes(plan.column_set):
            recorder.log(note)
        with contextlib.ExitStack() as writing:
            fetched = writing.enter_context(
                export_fetching(
                    run,
                    recorder,
                    previous,
                    folder,
                    files_reusable=previous is not None and previous.files_digest == plan.digest,
                    column_set=plan.column_set,
                )
            )
            if fetched.reuse and previous is not None:
                with recorder.step("write"):
                    reused = _wait_for_database(lambda: files_reuse(previous, folder), run)
                    written: Callable[[], dict[str, FileInfo]] = lambda: reused  # noqa: E731
                    run.reused_files = True
                    # Same rows, same companions' files: each companion reads its result back from the previous run.
                    results = _wait_for_database(
                        lambda: {companion.name: companion.reuse(previous) for companion, _ in plan.companions}, run
                    )
                    recorder.log("Nothing changed in NetBox: reused the previous run's files.")
                    comparison = changes.Comparison([], True, "")
            else:
                with recorder.step("stream"):  # the records, a page at a time, into the devices and VMs CSVs
                    streamed = writing.enter_context(files_streaming(fetched, folder, recorder, plan))
                with recorder.step("write"):  # a child writes the workbook; companions and the merged CSV here
                    files = writing.enter_context(files_writing(streamed, folder, recorder, plan))
                    written = files.files
                    results = {name: done.result for name, done in files.companions.items()}
                    _companion_timings(run, files.companions)
                    # The devices and VMs CSVs are written; compared while the child writes the workbook.
                    comparison = _wait_for_database(
                        lambda: changes.changes_compute(
                            run=run,
                            previous=previous,
                            new_files={ARTIFACT_KINDS[name]: folder / name for name in (DEVICES_CSV, VMS_CSV)},
                            deltas=streamed.deltas,  # an incremental run compares only the records it made anew
                        ),
                        run,
                    )
                    recorder.log(comparison.note)
            # Snapshots, files and counts commit together or not at all. The snapshots (a full run's encoded into a
            # spool as its records passed) are saved while the child writes the workbook; the transaction begins as
            # late as it can (SQLite has one writer). While the database is out, the run waits for it (its heartbeat
            # stays in the cache) and tries again.
            written_once = _once(written)

            def save() -> None:
                with transaction.atomic():
                    started = time.perf_counter()
                    snapshots_save(
                        fetched.snapshot_writes, fetched.snapshot_deletes, fetched.contact_snapshot, fetched.staged()
                    )
                    # The save step also waits for the writing child (``written()``): the snapshots' share apart.
                    run.timings["snapshots"] = round(time.perf_counter() - started, 3)
                    run.compared = comparison.compared
                    changes.changes_save(run=run, changes=comparison.changes)
                    _save(run, fetched, written_once())
                    for companion, _ in plan.companions:  # what each companion keeps of the run (quality: counts)
                        if results.get(companion.name) is not None:
                            companion.record(run, results[companion.name])

            with recorder.step("save"):
                _wait_for_database(save, run)
        recorder.log(
            f"Succeeded: {run.devices} devices, {run.vms} VMs; "
            f"{run.added} added, {run.changed} changed, {run.removed} removed."
        )
        finished = _wait_for_database(lambda: _finish(run, status=ExportRun.Status.SUCCEEDED), run)
        cache_event("export_succeeded")
    except Exception as exc:  # every failure becomes a failed run, never a crash of the caller
        reason = _reason(exc)
        if not isinstance(exc, (IntegrationError, ExportError, ValueError, OSError)):
            logger.exception("export run %s crashed", run.pk)
            recorder.log(traceback.format_exc(limit=5))
        recorder.log(f"Failed: {reason}")
        shutil.rmtree(folder, ignore_errors=True)
        if _wait_for_database(lambda: _finish(run, status=ExportRun.Status.FAILED, error=reason), run):
            after_run_execute(run=run)
        return run
    with contextlib.suppress(OSError, DatabaseError):  # the next run prunes what this one could not
        export_files_prune()
        changes.export_changes_prune()
    if finished:  # the steps other apps registered (publishing, notifications...): each records its own outcome
        _connection_released()
        release_freed_memory()  # some fork a child (the CMDB table's build)
        after_run_execute(run=run)
    return run


def _connection_released() -> None:
    """Close this thread's database connection, unless a transaction holds it (the next query opens another): what
    SQLite and its driver keep of the run's bulk writes goes with it, before an after-run step forks a child. It
    grows with the inventory: closing it took 15 MB from the run's process at 250,000 objects and 40 MB at 500,000
    (``bench/export_bench.py --sizes 250000,500000 --full-only``, phase ``after-run cmdb-table``)."""
    if not connection.in_atomic_block:
        connection.close()


def _companion_timings(run: ExportRun, done: dict[str, CompanionWrite]) -> None:
    for name, outcome in done.items():
        run.timings[name] = round(outcome.seconds, 3)


def _wait_for_database(call: Callable[[], Any], run: ExportRun) -> Any:
    """``call()``, tried again every second while the database is unreachable, up to ``EXPORT_DATABASE_WAIT``.

    Around the run's reads and writes that come after a long step (fetching from NetBox, writing files), when an
    outage is most likely to have begun; each call must be safe to repeat (a read, or one transaction)."""
    return database_retry(call, wait=settings.EXPORT_DATABASE_WAIT, where=f"export run {run.pk}")


def _once(function: Callable[[], Any]) -> Callable[[], Any]:
    """``function``, called at most once: later calls return the first call's result."""
    results: list[Any] = []

    def call() -> Any:
        if not results:
            results.append(function())
        return results[0]

    return call


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (IntegrationError, ExportError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _finish(run: ExportRun, *, status: str, error: str = "") -> bool:
    """Record the run's end; ``False`` when the sweeper had already failed it (and announced it)."""
    if run.pk is not None and not ExportRun.objects.filter(pk=run.pk, active=True).exists():
        # The sweeper failed it as abandoned meanwhile (a worker silent for too long): its verdict stands.
        logger.warning("export run %s finished after it was failed as abandoned; keeping that outcome", run.pk)
        run.refresh_from_db()
        return False
    run.status = status
    run.error = error
    run.finished = timezone.now()
    run.active = None
    run.step = ""
    run.save()
    return True


def _save(run: ExportRun, fetched: Fetched, files: dict[str, FileInfo]) -> None:
    """Record the run's files and counts."""
    data_dir = Path(settings.DATA_DIR)
    ExportArtifact.objects.bulk_create(
        ExportArtifact(
            run=run,
            kind=artifact_kind(name),
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
    run.save()
