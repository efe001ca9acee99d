"""Reads of export runs and their files."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from exports.constants import MERGED_CSV
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


# sha256 of the merged CSV -> (header, rows). One entry: only the latest export is ever asked for.
_cmdb_cache: dict[str, tuple[list[str], list[dict[str, str]]]] = {}
_cmdb_lock = threading.Lock()


def cmdb_rows_latest() -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of the merged CSV of the newest successful export; ``([], [])`` when there is none.

    Kept in memory per process, keyed by the file's sha256, so the chat assistant's repeated look-ups do not
    re-read the file; a new export has a new checksum and replaces the entry. Callers must not mutate the rows.
    """
    artifact = artifact_latest(name=MERGED_CSV)
    if artifact is None:
        return [], []
    with _cmdb_lock:
        cached = _cmdb_cache.get(artifact.sha256)
        if cached is not None:
            return cached
        try:
            # utf-8-sig: the writers may prefix a BOM for Excel.
            with artifact_path(artifact).open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                header = list(reader.fieldnames or [])
        except FileNotFoundError:
            return [], []
        _cmdb_cache.clear()
        _cmdb_cache[artifact.sha256] = (header, rows)
        return header, rows
