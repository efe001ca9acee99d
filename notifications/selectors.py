"""Reads for notifications: who is subscribed (and may see what), what a run changed in a form filters can be
matched against quickly, the failures, quality increases and staleness an event reports, and the API's lists.

Everything the export core owns is read here and only here (runs, changes, publications, quality counts), so a
move of those models touches one module.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts.models import User
from accounts.roles import Role, capability_codename
from exports.constants import DEVICES_CSV, VMS_CSV
from exports.models import ExportChange, ExportRun
from notifications.models import Channel, Delivery, EventKind, Subscription
from publishing.models import ExportPublication
from quality.models import QualityRuleCount
from quality.report import QUALITY_CSV

# The capability a user needs to receive each event (channels, set up by admins, receive everything).
EVENT_CAPABILITY: dict[str, str] = {
    EventKind.EXPORT_FAILED: "export.download",
    EventKind.PUBLISH_FAILED: "export.run",
    EventKind.EXPORT_STALE: "export.download",
    EventKind.EXPORT_CHANGES: "export.download",
    EventKind.QUALITY_CHANGED: "export.download",
}
DATASET_KINDS = {"devices": ExportChange.Kind.DEVICE, "vms": ExportChange.Kind.VM}
KIND_DATASETS = {kind: dataset for dataset, kind in DATASET_KINDS.items()}
ATTRIBUTE_COLUMNS = {"site": "Site", "tenant": "Tenant", "status": "Status"}
DIGEST_ITEMS = 50


def is_admin(user: Any) -> bool:
    """Admins manage channels and see every subscription and delivery."""
    return bool(user and user.is_authenticated and user.is_active and getattr(user, "role", None) == Role.ADMIN)


# --- Who hears about what ---------------------------------------------------------------------------------------


def subscriptions_for(*, event: str) -> list[Subscription]:
    """The enabled subscriptions to ``event`` that may receive it: channels' (enabled channels), and users' whose
    role holds the event's capability (active users only)."""
    subscriptions = list(
        Subscription.objects.filter(event=event, enabled=True)
        .filter(Q(channel__isnull=True) | Q(channel__enabled=True))
        .select_related("user", "channel")
        # Only what recording a delivery reads: a thousand full user rows cost a good part of a second.
        .only("id", "event", "filter", "user_id", "channel_id", "user__username", "channel__name")
        .order_by("id")
    )
    allowed = users_allowed(event=event)
    return [s for s in subscriptions if s.channel_id is not None or s.user_id in allowed]


def users_allowed(*, event: str) -> set[int]:
    """Ids of the active users subscribed to ``event`` whose role (or own permissions) holds its capability."""
    codename = capability_codename(EVENT_CAPABILITY[event])
    users = User.objects.filter(is_active=True, notification_subscriptions__event=event).filter(
        Q(is_superuser=True)
        | Q(groups__permissions__codename=codename, groups__permissions__content_type__app_label="accounts")
        | Q(user_permissions__codename=codename, user_permissions__content_type__app_label="accounts")
    )
    return set(users.values_list("pk", flat=True).distinct())


def user_may_receive(*, user: User, event: str) -> bool:
    return user.is_active and user.has_capability(EVENT_CAPABILITY[event])


# --- Runs --------------------------------------------------------------------------------------------------------


def run_previous_success(*, run: ExportRun) -> ExportRun | None:
    """The successful run before ``run``: the one its files were compared with."""
    earlier = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED).exclude(pk=run.pk)
    if run.finished is not None:
        earlier = earlier.filter(finished__lte=run.finished)
    return earlier.order_by("-finished", "-id").first()


def run_last_success() -> ExportRun | None:
    return ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED).order_by("-finished", "-id").first()


def run_first() -> ExportRun | None:
    return ExportRun.objects.order_by("created", "id").first()


def run_failure(*, run: ExportRun) -> dict[str, Any]:
    """What an ``export.failed`` message says: the reason, whether the run was abandoned or never started, and
    whether a retry is coming (the sweeper queues an abandoned run again while it has retries left)."""
    abandoned = run.error.startswith("Abandoned")
    retry = ExportRun.objects.filter(retry_of=run).order_by("id").first()
    retry_coming = retry is not None or (abandoned and run.attempt <= settings.EXPORT_RETRY_ABANDONED)
    return {
        "error": run.error,
        "abandoned": abandoned,
        "never_started": run.error.startswith("Never started"),
        "attempt": run.attempt,
        "retry_coming": retry_coming,
        "retry_run": retry.pk if retry is not None else None,
    }


def run_publications_failed(*, run: ExportRun) -> list[dict[str, str]]:
    """The targets whose latest publication of ``run`` failed, with the reason."""
    latest: dict[str, ExportPublication] = {}
    for publication in ExportPublication.objects.filter(run=run).order_by("started", "id"):
        latest[publication.target] = publication
    return [
        {"target": p.target, "label": p.get_target_display(), "detail": p.detail}
        for p in latest.values()
        if p.status == ExportPublication.Status.FAILED
    ]


def run_change_counts(*, run: ExportRun) -> dict[str, int]:
    counts = {change: 0 for change in ExportChange.Change.values}
    for change in ExportChange.objects.filter(run=run).values_list("change", flat=True).iterator(chunk_size=5000):
        counts[change] += 1
    return counts


# --- Changes, matched against filters ------------------------------------------------------------------------------


@dataclass
class ChangeIndex:
    """A run's changes as position sets per kind, change, changed column and (when asked) site, tenant and status:
    a filter is an intersection of a few sets, so 1,000 subscriptions over 10,000 changes take milliseconds."""

    run: ExportRun
    ids: list[int]
    kinds: list[str]
    changes: list[str]
    by_kind: dict[str, set[int]]
    by_change: dict[str, set[int]]
    by_column: dict[str, set[int]]
    _attributes: dict[str, dict[str, set[int]]] | None = None
    _cache: dict[str, frozenset[int]] = field(default_factory=dict)
    _digests: dict[str, tuple[int, dict[str, int], list[int]]] = field(default_factory=dict)

    def attributes(self) -> dict[str, dict[str, set[int]]]:
        if self._attributes is None:
            self._attributes = _change_attributes(self)
        return self._attributes

    def digest(self, flt: dict[str, Any]) -> tuple[int, dict[str, int], list[int]]:
        """How many changes the filter keeps, their counts per change kind, and the ids of the first
        ``DIGEST_ITEMS`` (in the run page's order). Computed once per distinct filter: many subscriptions share
        one."""
        key = _match_key(flt)
        cached = self._digests.get(key)
        if cached is None:
            matched = self.match(flt)
            first = heapq.nsmallest(DIGEST_ITEMS, matched)
            cached = (len(matched), self.counts(matched), [self.ids[position] for position in first])
            self._digests[key] = cached
        return cached

    def match(self, flt: dict[str, Any]) -> frozenset[int]:
        """Positions of the changes the filter keeps (every given key must hold)."""
        key = _match_key(flt)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        sets: list[set[int]] = []
        if flt.get("dataset"):
            sets.append(self.by_kind.get(DATASET_KINDS.get(flt["dataset"], ""), set()))
        if flt.get("change"):
            sets.append(set().union(*(self.by_change.get(c, set()) for c in flt["change"])))
        if flt.get("columns"):
            sets.append(set().union(*(self.by_column.get(c, set()) for c in flt["columns"])))
        for name in ATTRIBUTE_COLUMNS:
            if flt.get(name):
                sets.append(self.attributes()[name].get(str(flt[name]).casefold(), set()))
        if sets:
            sets.sort(key=len)
            result = frozenset(sets[0].intersection(*sets[1:]))
        else:
            result = frozenset(range(len(self.ids)))
        self._cache[key] = result
        return result

    def counts(self, positions: Iterable[int]) -> dict[str, int]:
        totals = {change: 0 for change in ExportChange.Change.values}
        for position in positions:
            totals[self.changes[position]] += 1
        return totals


def _match_key(flt: dict[str, Any]) -> str:
    keys = ("dataset", "site", "tenant", "status", "change", "columns")
    return repr(sorted((k, str(flt[k]).casefold() if k in ATTRIBUTE_COLUMNS else flt[k]) for k in keys if flt.get(k)))


def change_index(*, run: ExportRun) -> ChangeIndex:
    """The run's changes, indexed (one query; the CSVs are read only if a filter asks for site, tenant or status)."""
    rows = ExportChange.objects.filter(run=run).order_by("kind", "change", "name", "netbox_id")
    ids: list[int] = []
    kinds: list[str] = []
    changes: list[str] = []
    by_kind: dict[str, set[int]] = {}
    by_change: dict[str, set[int]] = {}
    by_column: dict[str, set[int]] = {}
    for position, (pk, kind, change, columns) in enumerate(
        rows.values_list("pk", "kind", "change", "columns").iterator(chunk_size=5000)
    ):
        ids.append(pk)
        kinds.append(kind)
        changes.append(change)
        by_kind.setdefault(kind, set()).add(position)
        by_change.setdefault(change, set()).add(position)
        for column in columns.split(", ") if columns else ():
            by_column.setdefault(column, set()).add(position)
    return ChangeIndex(run, ids, kinds, changes, by_kind, by_change, by_column)


def _change_attributes(index: ChangeIndex) -> dict[str, dict[str, set[int]]]:
    """Site, tenant and status of each changed object: from this run's CSVs (added, changed), the previous run's
    (removed), and for a changed column its old value too (a device moved away from a site concerns that site)."""
    attributes: dict[str, dict[str, set[int]]] = {name: {} for name in ATTRIBUTE_COLUMNS}
    wanted_new: dict[tuple[str, int], list[int]] = {}
    wanted_old: dict[tuple[str, int], list[int]] = {}
    positions = {pk: position for position, pk in enumerate(index.ids)}
    rows = ExportChange.objects.filter(run=index.run)
    for pk, kind, change, netbox_id in rows.values_list("pk", "kind", "change", "netbox_id").iterator(chunk_size=5000):
        position = positions.get(pk)
        if position is not None:
            target = wanted_old if change == ExportChange.Change.REMOVED else wanted_new
            target.setdefault((kind, netbox_id), []).append(position)
    # The old value of a changed Site, Tenant or Status (only those rows' columns are decoded).
    touched = Q()
    for column in ATTRIBUTE_COLUMNS.values():
        touched |= Q(columns__contains=column)
    for pk, fields in rows.filter(touched).values_list("pk", "fields").iterator(chunk_size=5000):
        position = positions.get(pk)
        for name, column in ATTRIBUTE_COLUMNS.items():
            old_new = (fields or {}).get(column)
            if old_new and position is not None:
                attributes[name].setdefault(str(old_new[0]).casefold(), set()).add(position)
    for run, wanted in ((index.run, wanted_new), (run_previous_success(run=index.run), wanted_old)):
        if run is None or not wanted:
            continue
        for kind, name in ((ExportChange.Kind.DEVICE, DEVICES_CSV), (ExportChange.Kind.VM, VMS_CSV)):
            for netbox_id, values in _csv_attributes(run, name, {i for k, i in wanted if k == kind}).items():
                for position in wanted[(kind, netbox_id)]:
                    for attribute, value in values.items():
                        attributes[attribute].setdefault(value.casefold(), set()).add(position)
    return attributes


def _csv_attributes(run: ExportRun, name: str, ids: set[int]) -> dict[int, dict[str, str]]:
    """``netbox id -> {site, tenant, status}`` for these ids, from one of the run's CSVs (empty when it is gone)."""
    artifact = run.artifacts.filter(name=name).first()
    if artifact is None or not ids:
        return {}
    found: dict[int, dict[str, str]] = {}
    try:
        with (Path(settings.DATA_DIR) / artifact.path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if "ID" not in header:
                return {}
            at = header.index("ID")
            columns = {attr: header.index(col) for attr, col in ATTRIBUTE_COLUMNS.items() if col in header}
            for row in reader:
                if len(row) > at and row[at].isdigit() and int(row[at]) in ids:
                    found[int(row[at])] = {attr: row[i] for attr, i in columns.items() if i < len(row)}
    except FileNotFoundError:
        return {}
    return found


def change_items(*, ids: list[int]) -> list[ExportChange]:
    """These changes, in the order given."""
    by_id = ExportChange.objects.in_bulk(ids)
    return [by_id[pk] for pk in ids if pk in by_id]


# --- Data quality -------------------------------------------------------------------------------------------------


def quality_previous_run(*, run: ExportRun) -> ExportRun | None:
    """The successful run before ``run`` that recorded a data-quality report."""
    earlier = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED, quality_counts__isnull=False).exclude(
        pk=run.pk
    )
    if run.finished is not None:
        earlier = earlier.filter(finished__lte=run.finished)
    return earlier.distinct().order_by("-finished", "-id").first()


def quality_increases(*, run: ExportRun) -> tuple[ExportRun | None, list[dict[str, Any]]]:
    """The rules whose count went up since the previous report (rules both reports ran), and that report."""
    previous = quality_previous_run(run=run)
    if previous is None:
        return None, []
    before = dict(QualityRuleCount.objects.filter(run=previous, error="").values_list("rule", "count"))
    increases = [
        {"rule": c.rule, "label": c.label, "severity": c.severity, "previous": before[c.rule], "count": c.count}
        for c in QualityRuleCount.objects.filter(run=run, error="").order_by("id")
        if c.rule in before and c.count > before[c.rule]
    ]
    return previous, increases


def quality_findings_new(*, run: ExportRun, previous: ExportRun | None) -> dict[str, list[dict[str, str]]]:
    """``rule -> findings`` of ``run`` that ``previous`` did not have (same rule, kind and id)."""
    old = {(row["rule"], row["kind"], row["id"]) for row in _findings(previous)} if previous is not None else set()
    new: dict[str, list[dict[str, str]]] = {}
    for row in _findings(run):
        if (row["rule"], row["kind"], row["id"]) not in old:
            new.setdefault(row["rule"], []).append(row)
    return new


def _findings(run: ExportRun) -> list[dict[str, str]]:
    artifact = run.artifacts.filter(name=QUALITY_CSV).first()
    if artifact is None:
        return []
    try:
        with (Path(settings.DATA_DIR) / artifact.path).open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []


# --- Staleness ----------------------------------------------------------------------------------------------------


def stale_hours_subscribed() -> dict[float, list[Subscription]]:
    """Enabled ``export.stale`` subscriptions that may receive it, by their threshold in hours."""
    by_hours: dict[float, list[Subscription]] = {}
    for subscription in subscriptions_for(event=EventKind.EXPORT_STALE):
        hours = float(subscription.filter.get("hours") or settings.NOTIFY_STALE_HOURS)
        by_hours.setdefault(hours, []).append(subscription)
    return by_hours


def stale_since() -> tuple[ExportRun | None, datetime | None]:
    """The last successful run and when the CMDB's age counts from (its end, or the first run when none
    succeeded yet); ``(None, None)`` before any export."""
    last = run_last_success()
    if last is not None:
        return last, last.finished
    first = run_first()
    return None, (first.created if first is not None else None)


# --- API lists ----------------------------------------------------------------------------------------------------


def channel_list() -> QuerySet[Channel]:
    return Channel.objects.order_by("name")


def subscription_list(*, user: User) -> QuerySet[Subscription]:
    """Admins see every subscription; anybody else their own."""
    subscriptions = Subscription.objects.select_related("channel", "user").order_by("-created", "-id")
    return subscriptions if is_admin(user) else subscriptions.filter(user=user, channel__isnull=True)


def delivery_list(*, user: User, status: str = "", event: str = "") -> QuerySet[Delivery]:
    """Admins see every delivery; anybody else those of their own subscriptions."""
    deliveries = Delivery.objects.select_related("event").order_by("-created", "-id")
    if not is_admin(user):
        deliveries = deliveries.filter(user=user, channel__isnull=True)
    if status:
        deliveries = deliveries.filter(status=status)
    if event:
        deliveries = deliveries.filter(event__kind=event)
    return deliveries
