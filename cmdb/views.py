"""The CMDB page: a grid over the rows of the newest export (the rows come from the API, a page at a time)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import User
from cmdb import selectors, services
from cmdb.query import DATASETS


@login_required
def cmdb_index(request: HttpRequest) -> HttpResponse:
    """The grid, with each dataset's columns, the user's saved views and the export the rows come from."""
    user = cast(User, request.user)
    if not user.has_capability("export.download"):
        raise PermissionDenied("You need the 'export.download' capability.")
    try:
        source: selectors.CmdbSource | None = selectors.cmdb_source()
    except (selectors.CmdbUnavailable, selectors.CmdbPreparing) as exc:
        source, problem = None, str(exc)
    else:
        problem = ""
    config = {
        "api": "/api/cmdb/",
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
