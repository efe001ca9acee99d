"""The CMDB's writes: a run's table file (built once when the run finishes), and the page's saved views.

Saved views are per user and dataset, on the server, in the profile's preferences (key ``cmdb``). A view is what the
grid shows: column order, hidden columns, widths, sort, per-column filters, the search, the density and the page
size. It is checked against the dataset's contract columns and bounded before it is stored; unknown columns are
dropped (an export may lose a column), wrong types are an error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.db import transaction

from accounts.models import User
from accounts.services import profile_update
from cmdb.models import CmdbNamedView
from cmdb.query import DATASETS, column_key
from cmdb.selectors import cmdb_named_view_can_edit
from cmdb.tablefiles import table_open, table_path
from exports.column_sets import column_set_current
from exports.columns import DEVICE_COLUMNS, MERGED_COLUMNS, VM_COLUMNS
from exports.constants import MERGED_CSV
from exports.models import ExportArtifact, ExportRun
from exports.selectors import artifact_path

PREFERENCE_KEY = "cmdb"


def cmdb_table_build(*, run: ExportRun) -> str | None:
    """Write the table file of a finished run beside its files (``cmdb.tablefiles``), unless a current one is there.

    The after-run step of the cmdb app; a note for the run's log, or ``None`` when the run has no merged CSV.
    Built in a forked child, so the worker's memory does not grow with the table.
    """
    artifact = run.artifacts.filter(name=MERGED_CSV).first()
    if artifact is None:
        return None
    previous = _previous_table(run)
    started = time.perf_counter()
    table, built = table_open(
        artifact_path(artifact), artifact.sha256, column_set=run.columns or None, previous=previous
    )
    elapsed = time.perf_counter() - started
    if not built:
        return f"CMDB table: already written ({table.size:,} rows)."
    source = f", from run {previous.parent.name}'s table where it could" if previous is not None else ""
    return f"CMDB table: {table.size:,} rows written in {elapsed:.1f} s{source}."


def _previous_table(run: ExportRun) -> Path | None:
    """The table file of the newest other successful run that has one (the previous run's, after an export): what
    the build takes the distinct values' query data from (``cmdb.columnar.csv_write``)."""
    earlier = (
        ExportArtifact.objects.filter(name=MERGED_CSV, run__status=ExportRun.Status.SUCCEEDED)
        .exclude(run=run)
        .order_by("-run__finished", "-run__id")
    )
    for artifact in earlier[:3]:
        path = table_path(artifact_path(artifact))
        if path.is_file():
            return path
    return None


DENSITIES = ("comfortable", "compact")
PAGE_SIZES = (25, 50, 100, 200)
FILTER_OPS = ("contains", "eq", "empty", "notempty", "gte", "lte", "between", "in")
MAX_IN_VALUES = 200
MAX_TEXT = 200
MIN_WIDTH, MAX_WIDTH = 40, 1200
_CONTRACT = {"devices": DEVICE_COLUMNS, "vms": VM_COLUMNS, "merged": MERGED_COLUMNS}


class CmdbViewInvalid(ValueError):
    """A saved view is malformed; ``field`` names the part."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def cmdb_view_default() -> dict[str, Any]:
    """The view of a user who saved none: every column in contract order, no sort, filter or search."""
    return {
        "columns": [],
        "hidden": [],
        "widths": {},
        "ordering": [],
        "filters": {},
        "q": "",
        "density": "comfortable",
        "page_size": 50,
    }


def dataset_keys(dataset: str) -> list[str]:
    """The column keys of a dataset under the current column set (those of the contract's columns too: a view saved
    before a column was renamed or hidden stays valid)."""
    column_set = column_set_current()
    labels = {
        "devices": column_set.device_columns,
        "vms": column_set.vm_columns,
        "merged": column_set.merged_columns,
    }[dataset]
    return list(dict.fromkeys(column_key(label) for label in (*labels, *_CONTRACT[dataset])))


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise CmdbViewInvalid("Must be text.", field=field)
    return value[:MAX_TEXT]


def _key_list(value: Any, field: str, keys: set[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CmdbViewInvalid("Must be a list of column keys.", field=field)
    return [item for item in dict.fromkeys(value) if item in keys]


def cmdb_view_clean(*, dataset: str, view: Any) -> dict[str, Any]:
    """A stored-ready view: defaults for missing parts, unknown columns dropped, values bounded."""
    if dataset not in DATASETS:
        raise CmdbViewInvalid(f"Choose one of: {', '.join(DATASETS)}.", field="dataset")
    if not isinstance(view, dict):
        raise CmdbViewInvalid("A view is an object.", field="view")
    unknown = sorted(set(view) - set(cmdb_view_default()))
    if unknown:
        raise CmdbViewInvalid(
            f"Unknown part(s) {', '.join(unknown)}; a view has {', '.join(cmdb_view_default())}.", field=unknown[0]
        )
    keys = set(dataset_keys(dataset))
    clean = cmdb_view_default()
    if "columns" in view:
        clean["columns"] = _key_list(view["columns"], "columns", keys)
    if "hidden" in view:
        clean["hidden"] = _key_list(view["hidden"], "hidden", keys)
    if "widths" in view:
        widths = view["widths"]
        if not isinstance(widths, dict):
            raise CmdbViewInvalid("Must be an object of column key -> pixels.", field="widths")
        for key, width in widths.items():
            if key in keys:
                if not isinstance(width, int | float) or isinstance(width, bool):
                    raise CmdbViewInvalid("A width is a number of pixels.", field="widths")
                clean["widths"][key] = int(max(MIN_WIDTH, min(MAX_WIDTH, width)))
    if "ordering" in view:
        ordering = view["ordering"]
        if not isinstance(ordering, list) or not all(isinstance(item, str) for item in ordering):
            raise CmdbViewInvalid("Must be a list of column keys, - first for descending.", field="ordering")
        clean["ordering"] = [item for item in dict.fromkeys(ordering) if item.lstrip("-") in keys][:10]
    if "filters" in view:
        filters = view["filters"]
        if not isinstance(filters, dict):
            raise CmdbViewInvalid("Must be an object of column key -> {op, value, value2}.", field="filters")
        for key, condition in filters.items():
            if key not in keys:
                continue
            if not isinstance(condition, dict) or condition.get("op") not in FILTER_OPS:
                raise CmdbViewInvalid(f"A filter has an op among {', '.join(FILTER_OPS)}.", field="filters")
            clean["filters"][key] = {
                "op": condition["op"],
                "value": _text(condition.get("value", ""), "filters"),
                "value2": _text(condition.get("value2", ""), "filters"),
            }
            if condition["op"] == "in":
                values = condition.get("values", [])
                if not isinstance(values, list) or len(values) > MAX_IN_VALUES:
                    raise CmdbViewInvalid(
                        f"A pick-from-values filter has a list of at most {MAX_IN_VALUES} values.", field="filters"
                    )
                clean["filters"][key]["values"] = list(dict.fromkeys(_text(item, "filters") for item in values))
    if "q" in view:
        clean["q"] = _text(view["q"], "q")
    if "density" in view:
        if view["density"] not in DENSITIES:
            raise CmdbViewInvalid(f"Choose one of: {', '.join(DENSITIES)}.", field="density")
        clean["density"] = view["density"]
    if "page_size" in view:
        if view["page_size"] not in PAGE_SIZES:
            raise CmdbViewInvalid(f"Choose one of: {', '.join(map(str, PAGE_SIZES))}.", field="page_size")
        clean["page_size"] = view["page_size"]
    return clean


def _stored(user: User) -> dict[str, Any]:
    """The user's ``cmdb`` preference as ``{"dataset": ..., "views": {dataset: view}}``, whatever was stored."""
    stored = (user.preferences or {}).get(PREFERENCE_KEY)
    if not isinstance(stored, dict):
        return {}
    views = stored.get("views")
    return {**stored, "views": views if isinstance(views, dict) else {}}


def cmdb_view_get(*, user: User, dataset: str) -> dict[str, Any]:
    """The user's saved view of a dataset, or the default one."""
    saved = _stored(user).get("views", {}).get(dataset)
    if not isinstance(saved, dict):
        return cmdb_view_default()
    try:
        return cmdb_view_clean(dataset=dataset, view=saved)
    except CmdbViewInvalid:
        return cmdb_view_default()


def cmdb_dataset_get(*, user: User) -> str:
    """The dataset the user looked at last (the CMDB page opens on it)."""
    dataset = _stored(user).get("dataset")
    return dataset if dataset in DATASETS else "merged"


def cmdb_view_save(*, user: User, dataset: str, view: Any) -> dict[str, Any]:
    """Store the user's view of a dataset (and remember the dataset as the one they look at); the stored view."""
    clean = cmdb_view_clean(dataset=dataset, view=view)
    stored = _stored(user)
    views = {**stored.get("views", {}), dataset: clean}
    profile_update(user=user, preferences={PREFERENCE_KEY: {**stored, "views": views, "dataset": dataset}})
    return clean


def cmdb_view_reset(*, user: User, dataset: str) -> dict[str, Any]:
    """Forget the user's view of a dataset; the default view."""
    if dataset not in DATASETS:
        raise CmdbViewInvalid(f"Choose one of: {', '.join(DATASETS)}.", field="dataset")
    stored = _stored(user)
    views = {key: value for key, value in stored.get("views", {}).items() if key != dataset}
    profile_update(user=user, preferences={PREFERENCE_KEY: {**stored, "views": views, "dataset": dataset}})
    return cmdb_view_default()


# --- named views -------------------------------------------------------------------------------------------------

MAX_NAME = 100


class CmdbNamedViewDenied(PermissionError):
    """Only a named view's owner or an admin may change or delete it."""


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CmdbViewInvalid("A view needs a name.", field="name")
    name = " ".join(value.split())
    if len(name) > MAX_NAME:
        raise CmdbViewInvalid(f"At most {MAX_NAME} characters.", field="name")
    return name


def _unique(*, owner: User, dataset: str, name: str, exclude: int | None = None) -> None:
    taken = CmdbNamedView.objects.filter(owner=owner, dataset=dataset, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise CmdbViewInvalid(f"You already have a view named {name!r} for the {dataset}.", field="name")


@transaction.atomic
def cmdb_named_view_create(*, owner: User, name: str, dataset: str, view: Any, shared: bool = False) -> CmdbNamedView:
    """Save ``view`` of ``dataset`` under ``name`` (unique per owner and dataset), personal or shared."""
    clean = cmdb_view_clean(dataset=dataset, view=view)
    name = _name(name)
    _unique(owner=owner, dataset=dataset, name=name)
    return CmdbNamedView.objects.create(owner=owner, name=name, dataset=dataset, shared=bool(shared), state=clean)


@transaction.atomic
def cmdb_named_view_update(
    *, user: User, named: CmdbNamedView, name: str | None = None, shared: bool | None = None, view: Any = None
) -> CmdbNamedView:
    """Rename, share or unshare a named view, or replace what it shows; only its owner or an admin may."""
    if not cmdb_named_view_can_edit(user=user, view=named):
        raise CmdbNamedViewDenied("Only the owner of this view or an admin may change it.")
    if name is not None:
        named.name = _name(name)
        _unique(owner=named.owner, dataset=named.dataset, name=named.name, exclude=named.pk)
    if shared is not None:
        named.shared = bool(shared)
    if view is not None:
        named.state = cmdb_view_clean(dataset=named.dataset, view=view)
    named.save()
    return named


def cmdb_named_view_delete(*, user: User, named: CmdbNamedView) -> None:
    """Delete a named view; only its owner or an admin may."""
    if not cmdb_named_view_can_edit(user=user, view=named):
        raise CmdbNamedViewDenied("Only the owner of this view or an admin may delete it.")
    named.delete()
