"""Runs outlive their worker: heartbeats, the sweeper of abandoned runs, their retry, and handing runs to the queue.

A run's executing process proves it is alive with a heartbeat thread (``run_heartbeat``), every
``EXPORT_HEARTBEAT`` seconds, whatever the export is busy with. ``export_runs_sweep`` (a django-q2 schedule every
minute, and every new export request) fails a running run whose heartbeat is older than ``EXPORT_STALE_AFTER``,
naming the host and pid that stopped beating, and queues it again by itself (``EXPORT_RETRY_ABANDONED`` times per
original request), so a ``kill -9`` of a worker costs about a minute instead of blocking exports for an hour. It
also fails a run no worker picked up within ``EXPORT_QUEUED_STALE_AFTER``, and removes what dead runs leave on
disk: temp files and failed runs' folders (their records and logs stay). Every run it fails (abandoned, never
started, or refused by the queue's broker) is announced to the after-run steps (``exports.afterrun``), as a run
that failed in its worker is, so that whoever listens for failures hears of each one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from enreach.metrics import counter_add
from exports.afterrun import after_run_execute
from exports.models import ExportRun

logger = logging.getLogger(__name__)

SWEEP_SCHEDULE_NAME = "Export runs sweep"


class QueueUnavailable(Exception):
    """The task queue's broker could not take the run; the run is recorded as failed with the reason."""


def run_worker() -> str:
    """``host:pid`` of this process, recorded on the runs it executes."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def run_heartbeat(*, run_id: int, every: float | None = None) -> Iterator[None]:
    """Refresh the run's heartbeat every ``every`` seconds (``EXPORT_HEARTBEAT``) while the block runs.

    A thread of its own, with its own database connection: it beats while the export waits on NetBox, writes a
    workbook or holds the interpreter lock for a second, and stops when the process dies, which is the point.
    """
    interval = float(settings.EXPORT_HEARTBEAT if every is None else every)
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    ExportRun.objects.filter(pk=run_id, status=ExportRun.Status.RUNNING).update(
                        heartbeat=timezone.now()
                    )
                except Exception as exc:  # the database may be down for a moment; the next beat tries again
                    logger.warning("export run %s: heartbeat not recorded: %s", run_id, exc)
                    close_old_connections()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"export-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# --- Queueing ------------------------------------------------------------------------------------------------------


def export_run_send(*, run: ExportRun) -> None:
    """Put the run on the task queue now; when the broker refuses, fail the run and raise ``QueueUnavailable``."""
    from django_q.tasks import async_task

    try:
        async_task("exports.tasks.export_run_execute_task", run.pk, task_name=f"export-run-{run.pk}", group="exports")
    except Exception as exc:  # whatever the broker raises (Redis down, database broker locked...)
        reason = f"Not queued: the task queue is unreachable ({type(exc).__name__}: {exc})."[:500]
        logger.warning("export run %s: %s", run.pk, reason)
        failed = ExportRun.objects.filter(pk=run.pk, status=ExportRun.Status.QUEUED).update(
            status=ExportRun.Status.FAILED, error=reason, finished=timezone.now(), active=None, step=""
        )
        if failed:
            _announce(run.pk)
        raise QueueUnavailable(
            "The task queue is unreachable, so the export cannot start now; try again in a moment."
        ) from None


# --- Sweeping ------------------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What one sweep did."""

    abandoned: list[int]
    never_started: list[int]
    retried: list[int]
    removed_folders: int
    removed_temp_files: int


def export_runs_sweep() -> SweepResult:
    """Fail abandoned and never-started runs, queue abandoned ones again, and clean up after dead runs.

    Safe to run anywhere at any time, by several processes at once: each run is failed by one conditional update,
    and only the process whose update won queues the retry.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.EXPORT_STALE_AFTER)
    abandoned: list[ExportRun] = []
    for run in ExportRun.objects.filter(active=True, status=ExportRun.Status.RUNNING).filter(
        Q(heartbeat__lt=stale_before) | Q(heartbeat__isnull=True, started__lt=stale_before)
    ):
        seen = run.heartbeat or run.started
        silent = int((now - seen).total_seconds()) if seen else 0
        reason = (
            f"Abandoned: its worker {run.worker or '(unknown)'} stopped giving signs of life "
            f"(no heartbeat for {silent} s, limit EXPORT_STALE_AFTER={settings.EXPORT_STALE_AFTER} s)."
        )
        if _fail(run, reason, now=now):
            abandoned.append(run)

    queued_before = now - timedelta(seconds=settings.EXPORT_QUEUED_STALE_AFTER)
    never_started = [
        run
        for run in ExportRun.objects.filter(active=True, status=ExportRun.Status.QUEUED, created__lt=queued_before)
        if _fail(
            run,
            "Never started: no queue worker picked it up within "
            f"{settings.EXPORT_QUEUED_STALE_AFTER} s (is `manage.py qcluster` running?).",
            now=now,
        )
    ]
    for run in [*abandoned, *never_started]:  # so that whoever listens hears of every failed run
        _announce(run.pk)
    retried = []
    for run in abandoned:
        retry = _retry(run)
        if retry is not None:
            retried.append(retry.pk)
        counter_add("enreach_export_runs_abandoned_total", {"retried": "true" if retry is not None else "false"})
    folders, temp_files = _files_sweep()
    result = SweepResult(
        abandoned=[run.pk for run in abandoned],
        never_started=[run.pk for run in never_started],
        retried=retried,
        removed_folders=folders,
        removed_temp_files=temp_files,
    )
    if abandoned or never_started or folders or temp_files:
        logger.warning("export runs sweep: %s", result)
    return result


def _fail(run: ExportRun, reason: str, *, now: object) -> bool:
    """Fail the run unless it changed since it was read (it beat, finished, or another sweeper got it)."""
    line = f"{timezone.localtime(now).strftime('%H:%M:%S')} {reason}\n"  # type: ignore[arg-type]
    updated = ExportRun.objects.filter(
        pk=run.pk, active=True, status=run.status, heartbeat=run.heartbeat, started=run.started
    ).update(status=ExportRun.Status.FAILED, error=reason, finished=now, active=None, step="", log=run.log + line)
    if updated:
        logger.warning("export run %s: %s", run.pk, reason)
    return bool(updated)


def _announce(run_id: int) -> None:
    """Run the after-run steps registered for failed runs on a run this module failed (they never raise)."""
    run = ExportRun.objects.filter(pk=run_id).first()
    if run is not None:
        after_run_execute(run=run)


def _retry(run: ExportRun) -> ExportRun | None:
    """Queue an abandoned run again as a new run, when its request has retries left."""
    if run.attempt > settings.EXPORT_RETRY_ABANDONED:
        return None
    stamp = timezone.localtime().strftime("%H:%M:%S")
    try:
        with transaction.atomic():
            retry = ExportRun.objects.create(
                trigger=run.trigger,
                requested_by_id=run.requested_by_id,
                force=run.force,
                publish=run.publish,
                retry_of=run,
                attempt=run.attempt + 1,
                log=f"{stamp} Retry of abandoned export #{run.pk} (attempt {run.attempt + 1}).\n",
            )
    except IntegrityError:  # somebody requested a run meanwhile: that one does the work
        return None
    logger.warning("export run %s: abandoned, queued again as export run %s", run.pk, retry.pk)
    with contextlib.suppress(QueueUnavailable):  # recorded on the retry itself
        export_run_send(run=retry)
    return retry


def _files_sweep() -> tuple[int, int]:
    """Remove failed runs' folders and temp files left in the folders of runs that are not active any more."""
    runs_dir = Path(settings.DATA_DIR) / "runs"
    if not runs_dir.is_dir():
        return 0, 0
    folders = {int(entry.name): entry for entry in runs_dir.iterdir() if entry.is_dir() and entry.name.isdigit()}
    if not folders:
        return 0, 0
    statuses = dict(ExportRun.objects.filter(pk__in=list(folders)).values_list("pk", "status"))
    removed_folders = removed_files = 0
    for run_id, folder in folders.items():
        status = statuses.get(run_id)
        if status is None or status in ExportRun.ACTIVE_STATUSES:
            continue  # an active run's files are in the making; an unknown folder is not ours to judge
        if status == ExportRun.Status.FAILED:
            shutil.rmtree(folder, ignore_errors=True)
            removed_folders += 1
            continue
        for temp in folder.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed_files += 1
    return removed_folders, removed_files


def export_sweep_schedule_sync() -> None:
    """Create (or repair) the every-minute schedule of ``export_runs_sweep``. Safe to call repeatedly."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={
            "func": "exports.tasks.export_runs_sweep_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
