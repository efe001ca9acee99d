"""Reads of export runs and their files."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from exports.constants import MERGED_CSV
from exports.models import ExportArtifact, ExportChange, ExportRun


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


def export_run_to_publish(run_id: int | None) -> tuple[ExportRun | None, str]:
    """The run a publish command works on, ``run_id`` or else the newest successful one; ``None`` with the reason
    when there is none (the publish and backup commands share this look-up)."""
    if run_id:
        run = ExportRun.objects.filter(pk=run_id).first()
        return run, "" if run is not None else f"No export run #{run_id}."
    run = export_run_last_success()
    return run, "" if run is not None else "No successful export yet: run `manage.py netbox_update` first."


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


def export_change_list(
    *, run: ExportRun, kind: str | None = None, change: str | None = None, q: str = ""
) -> QuerySet[ExportChange]:
    """What a run added, changed and removed; ``q`` matches a name or a changed column's name."""
    items = ExportChange.objects.filter(run=run)
    if kind:
        items = items.filter(kind=kind)
    if change:
        items = items.filter(change=change)
    if q:
        items = items.filter(Q(name__icontains=q) | Q(columns__icontains=q))
    return items.order_by("kind", "change", "name", "netbox_id")


def export_object_changes(*, kind: str, netbox_id: int) -> QuerySet[ExportChange]:
    """Every stored change of one device or VM (``kind`` device or vm), oldest run first, with its run."""
    return (
        ExportChange.objects.filter(kind=kind, netbox_id=netbox_id, run__status=ExportRun.Status.SUCCEEDED)
        .select_related("run")
        .order_by("run__finished", "run_id")
    )


def export_change_counts(*, run_ids: Iterable[int]) -> dict[int, dict[str, dict[str, int]]]:
    """``run id -> kind -> change -> number of objects`` for these runs (one query)."""
    counts: dict[int, dict[str, dict[str, int]]] = {}
    rows = (
        ExportChange.objects.filter(run_id__in=list(run_ids))
        .values_list("run_id", "kind", "change")
        .annotate(n=Count("id"))
        .order_by()
    )
    for run_id, kind, change, n in rows:
        counts.setdefault(run_id, {}).setdefault(kind, {})[change] = n
    return counts


def export_run_previous(*, run: ExportRun) -> ExportRun | None:
    """The last successful run before ``run``, of the same mode when there is one: its timings make the estimate."""
    earlier = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED).exclude(pk=run.pk).order_by("-finished")
    if run.mode:
        same = earlier.filter(mode=run.mode).first()
        if same is not None:
            return same
    return earlier.first()


def netbox_url_effective() -> tuple[str, bool]:
    """The NetBox URL exports use now, and whether the global key ``netbox`` set it (else ``NETBOX_URL``)."""
    from accounts.keys import secret_url_get

    url = secret_url_get("netbox", "")
    return (url, True) if url else (settings.NETBOX_URL, False)
