"""The exports pages: latest files, run button, live progress and history; one page per run."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from enreach.panels import panels_render
from exports import selectors
from exports.columns import Column, ColumnSet
from exports.errors import ExportThrottled
from exports.models import ExportChange, ExportRun
from exports.runs import QueueUnavailable
from exports.services import export_run_enqueue, export_run_request
from exports.steps import STEP_LABELS, step_bars
from integrations.netbox.factory import netbox_object_url

HISTORY_SIZE = 20
CHANGES_PER_PAGE = 100


def _require(request: HttpRequest, capability: str) -> None:
    if not request.user.has_capability(capability):  # type: ignore[union-attr]
        raise PermissionDenied(f"You need the {capability!r} capability.")


def _progress_config(active: ExportRun | None) -> dict[str, Any]:
    """What the progress bar's script needs besides the run itself: step names and the previous run's times."""
    previous = selectors.export_run_previous(run=active) if active is not None else None
    return {
        "steps": STEP_LABELS,
        "previous": (
            {"id": previous.pk, "mode": previous.mode, "duration": previous.duration, "timings": previous.timings}
            if previous is not None
            else None
        ),
    }


def _netbox_context() -> dict[str, Any]:
    url, from_key = selectors.netbox_url_effective()
    return {"netbox_url": url, "netbox_from_key": from_key, "netbox_demo": settings.NETBOX_DEMO and not from_key}


@login_required
def export_index(request: HttpRequest) -> HttpResponse:
    """Latest files, the active run and the run history."""
    _require(request, "export.download")
    last = selectors.export_run_last_success()
    active = selectors.export_run_active()
    runs = list(selectors.export_run_list()[:HISTORY_SIZE])
    counts = selectors.export_change_counts(run_ids=[run.pk for run in runs if run.compared])
    history = [(run, counts.get(run.pk, {})) for run in runs]
    context = {
        "last": last,
        "files": list(last.artifacts.all()) if last else [],
        "active": active,
        "history": history,
        "can_run": request.user.has_capability("export.run"),  # type: ignore[union-attr]
        "progress_config": _progress_config(active),
        "index_panels": panels_render("exports", request),  # the apps' panels (the data-quality report)
        **_netbox_context(),
    }
    return render(request, "exports/index.html", context)


class ChangeFilterForm(forms.Form):
    """The filters of a run's list of changes."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    kind = forms.ChoiceField(required=False, choices=[("", "Devices and VMs"), *ExportChange.Kind.choices])
    change = forms.ChoiceField(required=False, choices=[("", "Any change"), *ExportChange.Change.choices])


def _run_columns(run: ExportRun) -> list[tuple[str, list[Column]]] | None:
    """The column set a run wrote its files with, by dataset; ``None`` for the default set (the contract)."""
    used = ColumnSet.from_dict(run.columns or {})
    if used.is_default:
        return None
    return [("Devices", list(used.devices)), ("VMs", list(used.vms))]


@login_required
def export_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: its files, step timings, log and what it changed (searchable, a page at a time)."""
    _require(request, "export.download")
    run = get_object_or_404(ExportRun.objects.select_related("requested_by"), pk=pk)
    filters = ChangeFilterForm(request.GET or None)
    wanted = filters.cleaned_data if filters.is_valid() else {}
    items = selectors.export_change_list(
        run=run, kind=wanted.get("kind") or None, change=wanted.get("change") or None, q=wanted.get("q", "")
    )
    page = Paginator(items, CHANGES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    counts = selectors.export_change_counts(run_ids=[run.pk]).get(run.pk, {})
    netbox = _netbox_context()
    context = {
        "run": run,
        "changes": [_change_row(item, netbox["netbox_url"]) for item in page],
        "files": list(run.artifacts.all()),
        "bars": step_bars(run.timings),
        "total_seconds": sum(float(v) for v in run.timings.values()),
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "counts": counts,
        "progress_config": _progress_config(run if run.is_active else None),
        "run_panels": panels_render("export-run", request, run=run),  # the apps' panels (publishing's attempts)
        "run_columns": _run_columns(run),
        **netbox,
    }
    return render(request, "exports/run.html", context)


# Bumped by NetBox on every edit: on the run page it would repeat under every changed object, so it is left out.
NOISY_COLUMNS = ("Last updated",)


def _change_row(item: ExportChange, netbox_base: str) -> dict[str, Any]:
    """One changed object as the run page lists it: its columns old → new (but NetBox's "Last updated"), its page
    in NetBox and its history in the CMDB."""
    kind = "vms" if item.kind == ExportChange.Kind.VM else "devices"
    fields = dict(item.fields or {})
    shown = {column: values for column, values in fields.items() if column not in NOISY_COLUMNS}
    return {
        "item": item,
        "fields": shown,
        "only_noise": bool(fields) and not shown,
        "netbox": netbox_object_url(kind=kind, object_id=item.netbox_id, base=netbox_base),
        "history": reverse("cmdb:history", args=[kind, f"{kind}-{item.netbox_id}"]),
    }


@login_required
@require_POST
def export_run_now(request: HttpRequest) -> HttpResponse:
    """The "Run export now" button."""
    _require(request, "export.run")
    try:
        run, created = export_run_request(
            trigger=ExportRun.Trigger.WEB, user=request.user, force=request.POST.get("force") == "1"
        )
    except ExportThrottled as exc:
        # The exports page itself, saying why, as a 429 with Retry-After (not a redirect that hides the status).
        messages.error(request, str(exc))
        response = export_index(request)
        response.status_code = 429
        response["Retry-After"] = str(exc.wait)
        return response
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
