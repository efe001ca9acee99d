"""The exports page: latest files, run button, live status and history."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from exports import selectors
from exports.models import ExportRun
from exports.runs import QueueUnavailable
from exports.services import export_run_enqueue, export_run_request

HISTORY_SIZE = 20


def _require(request: HttpRequest, capability: str) -> None:
    if not request.user.has_capability(capability):  # type: ignore[union-attr]
        raise PermissionDenied(f"You need the {capability!r} capability.")


@login_required
def export_index(request: HttpRequest) -> HttpResponse:
    """Latest files, the active run and the run history."""
    _require(request, "export.download")
    last = selectors.export_run_last_success()
    context = {
        "last": last,
        "files": list(last.artifacts.all()) if last else [],
        "active": selectors.export_run_active(),
        "runs": selectors.export_run_list()[:HISTORY_SIZE],
        "can_run": request.user.has_capability("export.run"),  # type: ignore[union-attr]
        "netbox_url": settings.NETBOX_URL,
        "netbox_demo": settings.NETBOX_DEMO,
    }
    return render(request, "exports/index.html", context)


@login_required
@require_POST
def export_run_now(request: HttpRequest) -> HttpResponse:
    """The "Run export now" button."""
    _require(request, "export.run")
    run, created = export_run_request(
        trigger=ExportRun.Trigger.WEB, user=request.user, force=request.POST.get("force") == "1"
    )
    if created:
        try:
            export_run_enqueue(run=run)
        except QueueUnavailable as exc:
            messages.error(request, f"Export #{run.pk} failed: {exc}")
            return redirect("exports:index")
        messages.success(request, f"Export #{run.pk} queued.")
    else:
        messages.info(request, f"Export #{run.pk} is already {run.status}.")
    return redirect("exports:index")
