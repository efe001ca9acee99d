"""Reads of export runs and their files."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from exports.models import ExportArtifact, ExportRun


def export_run_list(*, status: str | None = None) -> QuerySet[ExportRun]:
    """Runs newest first, with who requested them and their files."""
    runs = ExportRun.objects.select_related("requested_by").prefetch_related("artifacts")
    if status:
        runs = runs.filter(status=status)
    return runs.order_by("-created", "-id")


def export_run_active() -> ExportRun | None:
    """The queued or running export, if any."""
    return ExportRun.objects.filter(active=True).first()


def export_run_last_success() -> ExportRun | None:
    """The newest successful run: its files are the "latest" files."""
    return (
        ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED, artifacts__isnull=False)
        .distinct()
        .order_by("-finished", "-id")
        .first()
    )


def artifact_latest(*, name: str) -> ExportArtifact | None:
    """The file called ``name`` of the newest successful run."""
    run = export_run_last_success()
    return run.artifacts.filter(name=name).first() if run else None


def artifact_get(*, run_id: int, name: str) -> ExportArtifact | None:
    """The file called ``name`` written by run ``run_id``."""
    return ExportArtifact.objects.filter(run_id=run_id, name=name).select_related("run").first()


def artifact_path(artifact: ExportArtifact) -> Path:
    """Where an artifact lives on disk."""
    return Path(settings.DATA_DIR) / artifact.path
