"""Reads of export runs and their files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from enreach.health import queue_workers
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


@dataclass(frozen=True)
class QueueState:
    """Whether queued exports can start: the queue's live workers and the oldest run waiting for one."""

    clusters: int
    workers: int
    queued_runs: int
    oldest_queued_seconds: float

    @property
    def stalled(self) -> bool:
        """Runs are waiting and no queue worker is alive to take them."""
        return self.queued_runs > 0 and self.workers == 0


def export_queue_state() -> QueueState:
    """The queue's workers alive now (django-q2 cluster status in the broker) and the queued runs' age.

    Raises when the broker or the database cannot be read.
    """
    clusters, workers = queue_workers()
    queued = ExportRun.objects.filter(status=ExportRun.Status.QUEUED).aggregate(n=Count("id"), oldest=Min("created"))
    return QueueState(
        clusters=clusters, workers=workers, queued_runs=queued["n"], oldest_queued_seconds=_age(queued["oldest"])
    )


def export_queue_age() -> float:
    """Seconds the oldest queued run has waited; 0 when none waits."""
    return _age(ExportRun.objects.filter(status=ExportRun.Status.QUEUED).aggregate(oldest=Min("created"))["oldest"])


def _age(moment: datetime | None) -> float:
    return round(max(0.0, (timezone.now() - moment).total_seconds()), 1) if moment is not None else 0.0


def export_queue_health() -> dict[str, object]:
    """The health check's ``queue`` component: ``degraded`` while runs wait and no queue worker is alive."""
    state = export_queue_state()
    return {
        "status": "degraded" if state.stalled else "ok",
        "workers": state.workers,
        "clusters": state.clusters,
        "queued_runs": state.queued_runs,
        "oldest_queued_seconds": state.oldest_queued_seconds,
    }
