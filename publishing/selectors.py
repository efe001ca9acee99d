"""Reads of publishing: the run a publish or backup command works on, and the run page's panel of its attempts."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from exports.models import ExportRun
from exports.selectors import export_run_last_success


def export_run_to_publish(run_id: int | None) -> tuple[ExportRun | None, str]:
    """The run a publish command works on, ``run_id`` or else the newest successful one; ``None`` with the reason
    when there is none (the publish and backup commands share this look-up)."""
    if run_id:
        run = ExportRun.objects.filter(pk=run_id).first()
        return run, "" if run is not None else f"No export run #{run_id}."
    run = export_run_last_success()
    return run, "" if run is not None else "No successful export yet: run `manage.py netbox_update` first."


def publications_panel(request: HttpRequest, *, run: ExportRun) -> dict[str, Any] | None:
    """The run page's panel of the run's publish and backup attempts (none: no panel)."""
    publications = list(run.publications.all())
    return {"publications": publications} if publications else None
