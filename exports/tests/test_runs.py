"""Runs outlive their worker: heartbeats, the sweeper of abandoned runs, retries, clean-up, and a broker outage."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from prometheus_client import REGISTRY

from enreach.tests.redis_server import RedisServer
from exports.models import ExportRun
from exports.runs import SWEEP_SCHEDULE_NAME, QueueUnavailable, _fail, export_runs_sweep, run_heartbeat, run_worker
from exports.services import export_run_enqueue, export_run_execute, export_run_request


def stuck_run(*, silent_for: int, attempt: int = 1, worker: str = "worker-7.example:4242") -> ExportRun:
    """A run whose worker died ``silent_for`` seconds after its last heartbeat."""
    run = ExportRun.objects.create(trigger=ExportRun.Trigger.API, attempt=attempt)
    last = timezone.now() - timedelta(seconds=silent_for)
    ExportRun.objects.filter(pk=run.pk).update(status="running", started=last, heartbeat=last, worker=worker)
    run.refresh_from_db()
    return run


def test_the_executing_process_records_its_host_and_pid(db, netbox):
    run, _ = export_run_request(trigger="command")
    assert export_run_execute(run=run).worker == run_worker() == f"{socket.gethostname()}:{os.getpid()}"


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_while_the_block_runs_and_stops_after_it():
    run = stuck_run(silent_for=3600)
    before = run.heartbeat
    with run_heartbeat(run_id=run.pk, every=0.05):
        deadline = time.monotonic() + 10
        while ExportRun.objects.get(pk=run.pk).heartbeat == before and time.monotonic() < deadline:
            time.sleep(0.05)
    beat = ExportRun.objects.get(pk=run.pk).heartbeat
    assert beat > before + timedelta(minutes=59)
    time.sleep(0.3)
    assert ExportRun.objects.get(pk=run.pk).heartbeat == beat  # the thread is gone


def test_a_silent_run_is_failed_naming_its_worker_and_queued_again_once(db, netbox, settings):
    settings.EXPORT_STALE_AFTER = 60
    stuck = stuck_run(silent_for=61)
    abandoned_before = REGISTRY.get_sample_value("enreach_export_runs_abandoned_total", {"retried": "true"}) or 0

    result = export_runs_sweep()

    stuck.refresh_from_db()
    assert stuck.status == "failed" and stuck.active is None and stuck.finished is not None
    assert "Abandoned" in stuck.error and "worker-7.example:4242" in stuck.error
    assert "Abandoned" in stuck.log
    retry = ExportRun.objects.get(retry_of=stuck)
    assert result.abandoned == [stuck.pk] and result.retried == [retry.pk]
    # django-q2 runs tasks inline in the tests: the retry was executed against the NetBox test server.
    assert retry.status == "succeeded" and retry.attempt == 2 and retry.trigger == stuck.trigger
    assert retry.devices == 40 and "Retry of abandoned export" in retry.log
    assert REGISTRY.get_sample_value("enreach_export_runs_abandoned_total", {"retried": "true"}) == abandoned_before + 1


def test_a_retry_that_is_abandoned_again_is_not_retried_a_second_time(db, settings):
    settings.EXPORT_RETRY_ABANDONED = 1
    stuck = stuck_run(silent_for=600, attempt=2)
    result = export_runs_sweep()
    assert result.abandoned == [stuck.pk] and result.retried == []
    assert not ExportRun.objects.filter(active=True).exists()


def test_retries_can_be_switched_off(db, settings):
    settings.EXPORT_RETRY_ABANDONED = 0
    stuck_run(silent_for=600)
    assert export_runs_sweep().retried == []


def test_a_run_with_a_recent_heartbeat_is_left_alone(db, settings):
    settings.EXPORT_STALE_AFTER = 60
    alive = stuck_run(silent_for=20)
    assert export_runs_sweep().abandoned == []
    alive.refresh_from_db()
    assert alive.status == "running" and alive.active


def test_a_run_failed_by_one_sweeper_is_not_failed_or_retried_again_by_another(db, settings):
    settings.EXPORT_RETRY_ABANDONED = 0
    stuck = stuck_run(silent_for=600)
    seen_by_second_sweeper = ExportRun.objects.get(pk=stuck.pk)
    export_runs_sweep()
    assert _fail(seen_by_second_sweeper, "Abandoned twice", now=timezone.now()) is False
    stuck.refresh_from_db()
    assert "Abandoned twice" not in stuck.error


def test_a_queued_run_no_worker_picks_up_is_failed_as_never_started(db, settings):
    settings.EXPORT_QUEUED_STALE_AFTER = 600
    waiting, _ = export_run_request(trigger="api")
    ExportRun.objects.filter(pk=waiting.pk).update(created=timezone.now() - timedelta(seconds=601))
    result = export_runs_sweep()
    waiting.refresh_from_db()
    assert result.never_started == [waiting.pk] and result.retried == []
    assert waiting.status == "failed" and "Never started" in waiting.error


def test_every_new_request_sweeps_first(db, settings):
    settings.EXPORT_RETRY_ABANDONED = 0
    stuck = stuck_run(silent_for=600)
    run, created = export_run_request(trigger="web")
    stuck.refresh_from_db()
    assert created and run != stuck and stuck.status == "failed"


def test_the_sweeper_removes_failed_runs_folders_and_leftover_temp_files(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.EXPORT_RETRY_ABANDONED = 0

    def folder(run: ExportRun, *names: str) -> Path:
        path = tmp_path / "runs" / f"{run.pk:06d}"
        path.mkdir(parents=True)
        for name in names:
            (path / name).write_text("x")
        return path

    dead = stuck_run(silent_for=600)
    dead_folder = folder(dead, "netbox_devices_export.csv", ".netbox_merged_export.csv.0123abcd.tmp")
    done = ExportRun.objects.create(trigger="api", status="succeeded", active=None)
    done_folder = folder(done, "netbox_devices_export.csv", ".Systems CMDB.xlsx.89ab.tmp")
    running = ExportRun.objects.create(trigger="api", status="running", active=None)  # one active run at a time
    running_folder = folder(running, ".netbox_vms_export.csv.77.tmp")

    result = export_runs_sweep()

    assert result.abandoned == [dead.pk]
    assert not dead_folder.exists()
    assert (done_folder / "netbox_devices_export.csv").exists() and not list(done_folder.glob("*.tmp"))
    assert (running_folder / ".netbox_vms_export.csv.77.tmp").exists()  # a running run's files are in the making
    assert (result.removed_folders, result.removed_temp_files) == (1, 1)
    dead.refresh_from_db()
    assert "Abandoned" in dead.log  # the record and its log stay


def test_migrate_installs_the_every_minute_sweep_schedule(db):
    schedule = Schedule.objects.get(name=SWEEP_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "exports.tasks.export_runs_sweep_task",
        Schedule.MINUTES,
        1,
    )


@pytest.fixture
def redis_broker(tmp_path, monkeypatch):
    """django-q2 configured as in production (a Redis broker, not inline), on a throwaway redis-server."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", server.url)
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)  # on_commit runs at once, as in a request
def test_starting_an_export_with_the_broker_down_is_a_503_with_the_reason(client_for, redis_broker):
    client = client_for("admin")  # a superuser: transactional tests flush the seeded roles
    redis_broker.stop()

    response = client.post("/api/exports/runs/", {}, format="json")

    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == "queue_unavailable" and "task queue is unreachable" in body["detail"]
    run = ExportRun.objects.get(pk=body["id"])
    assert run.status == "failed" and run.active is None and "Not queued" in run.error
    # Nothing is left blocking: once the broker is back, the next request queues a run.
    redis_broker.start()
    again = client.post("/api/exports/runs/", {}, format="json")
    assert again.status_code == 202
    from django_q.brokers import get_broker

    assert get_broker().queue_size() == 1


@pytest.mark.django_db(transaction=True)  # on_commit runs at once, as in a request
def test_the_page_and_the_command_say_the_queue_is_down(client_for, redis_broker):
    from django.core.management import CommandError, call_command

    redis_broker.stop()
    client = client_for("admin")  # a superuser: transactional tests flush the seeded roles
    response = client.post("/exports/run/", follow=True)
    assert response.status_code == 200
    assert "task queue is unreachable" in response.content.decode()
    with pytest.raises(CommandError, match="task queue is unreachable"):
        call_command("netbox_update", "--queue")


@pytest.mark.django_db(transaction=True)  # on_commit runs at once, as in a request
def test_enqueue_failure_raises_queue_unavailable(redis_broker):
    redis_broker.stop()
    run, _ = export_run_request(trigger="api")
    with pytest.raises(QueueUnavailable):
        export_run_enqueue(run=run)


def test_a_run_whose_worker_is_alive_but_could_not_write_its_heartbeat_is_kept(db, settings):
    """A database outage stops the heartbeat's writes, not the worker: its sign of life in the cache keeps the run."""
    from django.core.cache import cache

    settings.EXPORT_STALE_AFTER = 60
    run = stuck_run(silent_for=90)  # no database heartbeat for 90 s
    cache.set(f"exports:run:{run.pk}:alive", {"worker": run.worker, "at": time.time() - 5}, 300)

    result = export_runs_sweep()

    run.refresh_from_db()
    assert run.status == "running" and result.abandoned == [] and result.retried == []
    # Another process's mark (a reused id, an older attempt) is no sign of this worker's life.
    cache.set(f"exports:run:{run.pk}:alive", {"worker": "other-host:1", "at": time.time()}, 300)
    assert export_runs_sweep().abandoned == [run.pk]


def test_the_heartbeat_thread_marks_the_run_alive_in_the_cache(transactional_db, settings):
    from exports.runs import run_alive_seen

    run = stuck_run(silent_for=3600, worker=run_worker())
    with run_heartbeat(run_id=run.pk, every=0.05):
        deadline = time.monotonic() + 10
        while run_alive_seen(run) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    seen = run_alive_seen(run)
    assert seen is not None and time.time() - seen < 10


@pytest.mark.django_db(transaction=True)  # on_commit runs at once, as in a request
def test_a_queued_run_whose_task_the_broker_lost_is_queued_again(redis_broker, settings):
    from django_q.brokers import get_broker

    from exports.runs import broker_task_names, export_run_send

    settings.EXPORT_QUEUED_LOST_AFTER = 30
    run, _ = export_run_request(trigger="api")
    export_run_send(run=run)
    assert broker_task_names() == {f"export-run-{run.pk}"}
    ExportRun.objects.filter(pk=run.pk).update(created=timezone.now() - timedelta(seconds=45))

    assert export_runs_sweep().requeued == []  # its task waits in the broker: nothing to do

    redis_broker.stop()  # Redis restarted without persistence: the queue is empty, the run still "queued"
    assert export_runs_sweep().requeued == []  # an unreadable broker proves nothing
    redis_broker.start()
    assert broker_task_names() == set()

    result = export_runs_sweep()

    assert result.requeued == [run.pk]
    assert broker_task_names() == {f"export-run-{run.pk}"} and get_broker().queue_size() == 1
    run.refresh_from_db()
    assert run.status == "queued" and "its task was no longer in the queue's broker" in run.log
    assert export_runs_sweep().requeued == []  # sent once: it is in the broker again


@pytest.mark.django_db(transaction=True)
def test_a_fresh_queued_run_is_not_judged_lost(redis_broker, settings):
    settings.EXPORT_QUEUED_LOST_AFTER = 30
    run, _ = export_run_request(trigger="api")  # its task is not sent yet (on_commit of a request, say)
    assert export_runs_sweep().requeued == []
    run.refresh_from_db()
    assert run.status == "queued"
