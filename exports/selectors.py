"""Reads of export runs and their files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Q, QuerySet

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
