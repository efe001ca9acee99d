"""The exports' panels of the home page (the site shell, ``enreach.views.home``, composes them): the alerts (the last
run failed, NetBox not configured), the latest export with its files and counts, NetBox's status, and the quick
actions to run an export and open the exports.

Read-only: ``dashboard_get`` gathers everything from the database (NetBox itself is asked by the page's script
through the cached status API, so a slow NetBox never delays the page). Registered in ``ExportsConfig.ready``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from exports import selectors
from exports.models import ExportArtifact, ExportRun
from integrations.netbox.factory import netbox_url


@dataclass(frozen=True, slots=True)
class CountChange:
    """A count of the latest successful export beside the one before it."""

    label: str
    value: int | None
    previous: int | None

    @property
    def delta(self) -> int | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


@dataclass(slots=True)
class Dashboard:
    """What the home page shows."""

    latest: ExportRun | None = None
    active: ExportRun | None = None
    last_success: ExportRun | None = None
    files: list[ExportArtifact] = field(default_factory=list)
    counts: list[CountChange] = field(default_factory=list)
    failed: ExportRun | None = None
    netbox_url: str = ""
    netbox_demo: bool = False


def dashboard_get() -> Dashboard:
    """The latest run, the active one, the latest files, the count changes, and the failure to show (if any).

    ``failed`` is the newest finished run when it failed: a success after a failure clears the alert.
    """
    board = Dashboard(netbox_url=netbox_url(), netbox_demo=settings.NETBOX_DEMO)
    board.latest = ExportRun.objects.select_related("requested_by").order_by("-created", "-id").first()
    board.active = selectors.export_run_active()
    finished = (
        ExportRun.objects.filter(status__in=[ExportRun.Status.SUCCEEDED, ExportRun.Status.FAILED])
        .order_by("-created", "-id")
        .first()
    )
    if finished is not None and finished.status == ExportRun.Status.FAILED:
        board.failed = finished
    last = selectors.export_run_last_success()
    board.last_success = last
    if last is not None:
        board.files = list(last.artifacts.all())
        before = (
            ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED, created__lt=last.created)
            .exclude(pk=last.pk)
            .order_by("-created", "-id")
            .first()
        )
        board.counts = [
            CountChange("Devices", last.devices, before.devices if before else None),
            CountChange("Virtual machines", last.vms, before.vms if before else None),
        ]
    return board


def _board(request: HttpRequest) -> Dashboard | None:
    """The dashboard, once per request (three panels show it), for users who may download exports."""
    user: Any = request.user
    if not user.has_capability("export.download"):
        return None
    if not hasattr(request, "_exports_board"):
        request._exports_board = dashboard_get()  # type: ignore[attr-defined]
    return request._exports_board  # type: ignore[attr-defined, no-any-return]


def alerts_panel(request: HttpRequest) -> dict[str, Any] | None:
    """Red alerts above the panels: the newest finished run failed; NetBox is not configured (or, from the page's
    script, does not answer)."""
    board = _board(request)
    return None if board is None else {"board": board}


def latest_export_panel(request: HttpRequest) -> dict[str, Any] | None:
    """The latest export (when, counts and how they changed, files) and NetBox's URL and status."""
    board = _board(request)
    return None if board is None else {"board": board}


def run_actions_panel(request: HttpRequest) -> dict[str, Any] | None:
    """Quick actions: run an export now (disabled while one is active), open the exports."""
    user: Any = request.user
    can_run, can_download = user.has_capability("export.run"), user.has_capability("export.download")
    if not (can_run or can_download):
        return None
    board = _board(request)
    active = board.active if board is not None else selectors.export_run_active()
    return {"can_run": can_run, "can_download": can_download, "active": active}
