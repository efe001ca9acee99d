"""The home page: a dashboard of the latest export, what changed, NetBox's status and quick actions.

A read-only page: ``dashboard_get`` gathers everything from the database (NetBox itself is asked by the page's
script through the cached status API, so a slow NetBox never delays the page).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

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


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The landing page for signed-in users."""
    user: Any = request.user
    can_download = user.has_capability("export.download")
    context = {
        "board": dashboard_get() if can_download else None,
        "can_download": can_download,
        "can_run": user.has_capability("export.run"),
    }
    return render(request, "home.html", context)
