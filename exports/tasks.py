"""django-q2 entry points: ids in, one service call."""

from __future__ import annotations

from exports.models import ExportRun
from exports.runs import export_runs_sweep
from exports.services import export_run_execute, export_run_request


def export_run_execute_task(run_id: int) -> str:
    """Execute a queued export run."""
    run = export_run_execute(run=ExportRun.objects.get(pk=run_id))
    return run.status


def export_scheduled_task() -> str:
    """The schedule's export: request a run (or join the active one) and execute it in this worker."""
    run, created = export_run_request(trigger=ExportRun.Trigger.SCHEDULE)
    if not created:
        return f"skipped: export #{run.pk} is already {run.status}"
    return export_run_execute(run=run).status


def export_runs_sweep_task() -> str:
    """Every minute: fail and retry abandoned runs, clean up after dead ones."""
    result = export_runs_sweep()
    return f"abandoned {result.abandoned}, never started {result.never_started}, retried {result.retried}"
