"""Runs outlive their worker: heartbeats, the sweeper of abandoned runs, their retry, and handing runs to the queue.

A run's executing process proves it is alive with a heartbeat thread (``run_heartbeat``), every
``EXPORT_HEARTBEAT`` seconds, whatever the export is busy with: into the run's row, and into the cache (a sign of
life that does not need the database). ``export_runs_sweep`` (a django-q2 schedule every minute, and every new
export request) fails a running run that gave neither sign for ``EXPORT_STALE_AFTER`` seconds, naming the host and
pid that stopped beating, and queues it again by itself (``EXPORT_RETRY_ABANDONED`` times per original request), so
a ``kill -9`` of a worker costs about a minute instead of blocking exports for an hour. A worker that is alive but
cannot write to the database (an outage) keeps its run: it writes the heartbeat again once the database is back,
and the outage spends no retry.

The sweeper also queues again a run whose task the broker lost (Redis restarted without persistence while the run
waited): a run queued for ``EXPORT_QUEUED_LOST_AFTER`` seconds whose task is in no queue is sent again (a task
delivered twice runs once: only one delivery can claim the run). It fails a run no worker picked up within
``EXPORT_QUEUED_STALE_AFTER``, and removes what dead runs leave on disk: temp files and failed runs' folders (their
records and logs stay). Every run it fails (abandoned, never started, or refused by the queue's broker) is
announced to the after-run steps (``exports.afterrun``), as a run that failed in its worker is, so that whoever
listens for failures hears of each one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from enreach.outage import database_unreachable, outage_noted
from exports.afterrun import after_run_execute
from exports.models import ExportRun

logger = logging.getLogger(__name__)

SWEEP_SCHEDULE_NAME = "Export runs sweep"


class QueueUnavailable(Exception):
    """The task queue's broker could not take the run; the run is recorded as failed with the reason."""


def run_worker() -> str:
    """``host:pid`` of this process, recorded on the runs it executes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive_key(run_id: int) -> str:
    return f"exports:run:{run_id}:alive"


def run_alive_mark(run_id: int) -> None:
    """Record in the cache that this process, executing the run, is alive now. Never raises (the cache may be down
    too: the database heartbeat says the rest)."""
    try:
        value = {"worker": run_worker(), "at": time.time()}
        cache.set(_alive_key(run_id), value, timeout=max(2 * int(settings.EXPORT_STALE_AFTER), 60))
    except Exception as exc:
        logger.debug("export run %s: sign of life not cached: %s", run_id, exc)


def run_alive_seen(run: ExportRun) -> float | None:
    """When the run's worker last marked itself alive in the cache (a Unix time), or None."""
    try:
        value = cache.get(_alive_key(run.pk))
    except Exception:  # the cache is down: the database heartbeat alone decides
        return None
    if not isinstance(value, dict) or value.get("worker") != run.worker:
        return None  # another process's mark (a reused id, an older attempt)
    at = value.get("at")
    return float(at) if isinstance(at, (int, float)) else None


@contextlib.contextmanager
def run_heartbeat(*, run_id: int, every: float | None = None) -> Iterator[None]:
    """Refresh the run's heartbeat every ``every`` seconds (``EXPORT_HEARTBEAT``) while the block runs.

    A thread of its own, with its own database connection: it beats while the export waits on NetBox, writes a
    workbook or holds the interpreter lock for a second, and stops when the process dies, which is the point. Each
    beat also marks the run alive in the cache. A beat the database refuses (an outage) is tried again every second
    until it is written; the outage is logged once.
    """
    interval = float(settings.EXPORT_HEARTBEAT if every is None else every)
    stop = threading.Event()

    def beat() -> None:
        failing = False
        try:
            while not stop.wait(min(interval, 1.0) if failing else interval):
                run_alive_mark(run_id)
                try:
                    ExportRun.objects.filter(pk=run_id, status=ExportRun.Status.RUNNING).update(
                        heartbeat=timezone.now()
                    )
                    failing = False
                except Exception as exc:  # the database may be down for a moment; the next beat tries again
                    if database_unreachable(exc):
                        outage_noted(exc, where=f"export run {run_id} heartbeat")
                    else:
                        logger.warning("export run %s: heartbeat not recorded: %s", run_id, exc)
                    failing = True
                    with contextlib.suppress(Exception):
                        connection.close()  # this thread's own connection: the next beat opens a new one
        finally:
            connection.close()

    # The first sign of life from the caller's thread: on SQLite a second connection's write waits for the caller's
    # open transaction, and the run's end would then wait for it.
    run_alive_mark(run_id)
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
        async_task("exports.tasks.export_run_execute_task", run.pk, task_name=run_task_name(run.pk), group="exports")
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
    requeued: list[int] = field(default_factory=list)


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
        alive = run_alive_seen(run)
        if alive is not None and alive >= stale_before.timestamp():
            # Its worker is alive but could not write its heartbeat (the database was out): it keeps the run.
            continue
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
    requeued = _requeue_lost(now)
    folders, temp_files = _files_sweep()
    result = SweepResult(
        abandoned=[run.pk for run in abandoned],
        never_started=[run.pk for run in never_started],
        retried=retried,
        removed_folders=folders,
        removed_temp_files=temp_files,
        requeued=requeued,
    )
    if abandoned or never_started or requeued or folders or temp_files:
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


def run_task_name(run_id: int) -> str:
    """The name of the queue task that executes a run."""
    return f"export-run-{run_id}"


def _requeue_lost(now: object) -> list[int]:
    """Send again the queued runs whose task is in no queue any more (the broker lost it); returns their ids."""
    lost_before = now - timedelta(seconds=settings.EXPORT_QUEUED_LOST_AFTER)  # type: ignore[operator]
    waiting = list(ExportRun.objects.filter(active=True, status=ExportRun.Status.QUEUED, created__lt=lost_before))
    if not waiting:
        return []
    queued = broker_task_names()
    if queued is None:  # the broker cannot be read: nothing to judge by (starting an export says so)
        return []
    requeued = []
    for run in waiting:
        if run_task_name(run.pk) in queued:
            continue
        line = (
            f"{timezone.localtime().strftime('%H:%M:%S')} Queued again: its task was no longer in the queue's "
            "broker (lost, e.g. Redis restarted without persistence).\n"
        )
        if not ExportRun.objects.filter(pk=run.pk, status=ExportRun.Status.QUEUED).update(log=run.log + line):
            continue  # a worker claimed it meanwhile
        logger.warning("export run %s: its task was lost by the broker; queued again", run.pk)
        with contextlib.suppress(QueueUnavailable):  # recorded on the run itself
            export_run_send(run=run)
        requeued.append(run.pk)
    return requeued


def broker_task_names(limit: int = 10_000) -> set[str] | None:
    """The names of the tasks waiting in the queue's broker (Redis or the database), or None when unreadable."""
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis
    from django_q.signing import SignedPackage

    try:
        broker = get_broker()
        if isinstance(broker, Redis):
            payloads = list(broker.connection.lrange(broker.list_key, 0, limit - 1))
        elif isinstance(broker, ORM):
            payloads = list(
                broker.get_connection().filter(key=broker.list_key).values_list("payload", flat=True)[:limit]
            )
        else:
            return None
    except Exception as exc:
        logger.warning("the queue's broker cannot be read: %s", exc)
        return None
    names = set()
    for payload in payloads:
        try:
            task = SignedPackage.loads(payload.decode() if isinstance(payload, bytes) else payload)
        except Exception as exc:  # another cluster's task, signed with another key
            logger.debug("a task in the broker could not be read: %s", exc)
            continue
        if isinstance(task, dict) and task.get("name"):
            names.add(str(task["name"]))
    return names


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
