"""The CMDB page: a grid over the rows of the newest export (the rows come from the API, a page at a time)."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import User
from cmdb import selectors, services
from cmdb.query import DATASETS, QueryError


def _may_browse(request: HttpRequest) -> User:
    user = cast(User, request.user)
    if not user.has_capability("export.download"):
        raise PermissionDenied("You need the 'export.download' capability.")
    return user


@login_required
def cmdb_history(request: HttpRequest, dataset: str, row_id: str) -> HttpResponse:
    """One device or VM: its timeline across exports (added, each change old → new, removed) and every column now."""
    _may_browse(request)
    if dataset not in DATASETS or len(row_id) > 40:
        raise Http404("No such dataset or row.")
    try:
        history = selectors.cmdb_row_history(dataset=dataset, identifier=row_id)
    except QueryError:
        history = None
    if history is None:
        raise Http404("Neither the newest export nor any stored change knows this object.")
    now = [(column, history.row.get(column.key)) for column in history.columns] if history.row else []
    context = {"history": history, "dataset": dataset, "now": now, "keep_days": settings.EXPORT_CHANGES_KEEP_DAYS}
    return render(request, "cmdb/history.html", context)


@login_required
def cmdb_index(request: HttpRequest) -> HttpResponse:
    """The grid, with each dataset's columns, the user's saved views and the export the rows come from."""
    user = _may_browse(request)
    try:
        source: selectors.CmdbSource | None = selectors.cmdb_source()
    except (selectors.CmdbUnavailable, selectors.CmdbPreparing) as exc:
        source, problem = None, str(exc)
    else:
        problem = ""
    config = {
        "api": "/api/cmdb/",
        "page": request.path,
        # Each kind's page in NetBox with ID for the id ("" without a NetBox URL): the grid's names link there.
        "netbox": {kind: selectors.cmdb_netbox_link(row_id=f"{kind}-0")[:-2] for kind in ("devices", "vms")},
        "user": user.username,
        "dataset": services.cmdb_dataset_get(user=user),
        "run": source.run.pk if source else None,
        "datasets": {
            dataset: {
                "count": source.table.count(dataset),
                "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in source.table.columns(dataset)],
                "view": services.cmdb_view_get(user=user, dataset=dataset),
                "default": services.cmdb_view_default(),
            }
            for dataset in DATASETS
        }
        if source
        else {},
    }
    freshness = selectors.cmdb_freshness(source.run) if source else None
    context = {
        "source": source,
        "problem": problem,
        "freshness": freshness,
        "schedule_text": _every(freshness["schedule_seconds"]) if freshness else "",
        "config": config,
        "datasets": DATASETS,
    }
    return render(request, "cmdb/index.html", context)


def _every(seconds: int | None) -> str:
    if not seconds:
        return ""
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    return f"{max(1, seconds // 60)} minute(s)"
