"""Notifications, written: channels and subscriptions, events and their outbox, and delivering it.

Doors: the export core's after-run registry calls ``run_finished`` (fast: it records the run's events, one
delivery row per subscription that wants it, and queues them); the every-minute django-q2 schedule calls
``notifications_sweep`` (the stale check, and queueing again what is due: retries, and deliveries whose worker was
killed); queue workers call ``delivery_send``; the API, the admin and the profile page call the channel and
subscription services and ``channel_test_send``.

Exactly one delivery per (event, subscription): the events' ``key`` and the deliveries' (event, subscription) are
unique in the database, and a worker sends only a delivery it claimed with a conditional UPDATE (pending, due, not
claimed or its claim expired), so two workers, a task queued twice or a step run twice never send twice. A killed
worker's claim expires after ``NOTIFY_CLAIM_SECONDS`` and the sweep queues the delivery again; its id, sent as
``X-Enreach-Delivery``, is the same on every attempt.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts import keys
from accounts.models import User
from enreach.metrics import counter_add
from exports.columns import DEVICE_COLUMNS, VM_COLUMNS
from exports.models import ExportChange, ExportRun
from notifications import selectors
from notifications.errors import NotificationError
from notifications.messages import message_build, run_brief
from notifications.models import Channel, Delivery, Event, EventKind, Subscription
from notifications.transports import EmailTransport, Transport, TransportError, WebhookTransport
from quality.rules import BUILTIN_RULE_IDS

logger = logging.getLogger(__name__)

SWEEP_SCHEDULE_NAME = "Notifications sweep"
CHANGE_KINDS = tuple(ExportChange.Change.values)
KNOWN_COLUMNS = frozenset((*DEVICE_COLUMNS, *VM_COLUMNS))
_RULE_ID = re.compile(r"^[a-z0-9_]{1,64}$")
# Which filter keys each event takes.
FILTER_KEYS: dict[str, tuple[str, ...]] = {
    EventKind.EXPORT_FAILED: (),
    EventKind.PUBLISH_FAILED: (),
    EventKind.EXPORT_STALE: ("hours",),
    EventKind.EXPORT_CHANGES: ("dataset", "site", "tenant", "status", "change", "columns", "min_count"),
    EventKind.QUALITY_CHANGED: ("rules", "min_count"),
}


# --- Channels ------------------------------------------------------------------------------------------------------


def url_mask(url: str) -> str:
    """``https://hooks.example.com/••••abcd``: scheme and host, the last four characters for a long URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/••••" + (url[-4:] if len(url) >= 32 else "")


def url_check(url: str) -> str:
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a junk port)
    except ValueError:
        raise NotificationError("Enter a valid http(s) URL.", field="target") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise NotificationError("Enter a valid http(s) URL (at most 2,000 characters).", field="target")
    return url


def addresses_clean(addresses: str | Iterable[str]) -> str:
    """The addresses, checked, one per line; a ``NotificationError`` naming the first bad one."""
    items = addresses.replace(",", "\n").splitlines() if isinstance(addresses, str) else list(addresses)
    clean = [str(item).strip() for item in items if str(item).strip()]
    if not clean:
        raise NotificationError("Give at least one e-mail address.", field="target")
    if len(clean) > 100:
        raise NotificationError("At most 100 addresses per channel.", field="target")
    for address in clean:
        try:
            validate_email(address)
        except DjangoValidationError:
            raise NotificationError(f"{address[:100]!r} is not an e-mail address.", field="target") from None
    return "\n".join(clean)


def _encrypt(value: str, field: str) -> str:
    try:
        return keys.encrypt(value)
    except keys.KeyUnavailable as exc:
        raise NotificationError(str(exc), field=field) from None


def channel_save(
    *,
    channel: Channel | None = None,
    name: str | None = None,
    kind: str | None = None,
    target: str | list[str] | None = None,
    secret: str | None = None,
    format: str | None = None,
    enabled: bool | None = None,
    by: User | None = None,
) -> Channel:
    """Create (``channel=None``) or change a channel. ``None`` keeps a value; a webhook's URL and secret are
    stored encrypted, and a new webhook needs both."""
    creating = channel is None
    channel = channel or Channel(created_by=by)
    if name is not None:
        name = name.strip()
        if not name or len(name) > 100:
            raise NotificationError("A name of 1 to 100 characters is required.", field="name")
        if Channel.objects.filter(name=name).exclude(pk=channel.pk).exists():
            raise NotificationError(f"A channel named {name!r} exists already.", field="name")
        channel.name = name
    elif creating:
        raise NotificationError("A name is required.", field="name")
    if kind is not None:
        if not creating and kind != channel.kind:
            raise NotificationError("A channel's kind cannot change; create another channel.", field="kind")
        if kind not in Channel.Kind.values:
            raise NotificationError(f"Choose one of: {', '.join(Channel.Kind.values)}.", field="kind")
        channel.kind = kind
    elif creating:
        raise NotificationError("A kind is required (email or webhook).", field="kind")
    if format is not None:
        if format not in Channel.Format.values:
            raise NotificationError(f"Choose one of: {', '.join(Channel.Format.values)}.", field="format")
        channel.format = format
    if enabled is not None:
        channel.enabled = enabled
    if channel.kind == Channel.Kind.EMAIL:
        if target is not None:
            channel.addresses = addresses_clean(target)
        elif creating:
            raise NotificationError("Give the e-mail addresses.", field="target")
        if secret:
            raise NotificationError("E-mail channels have no secret.", field="secret")
    else:
        if target is not None:
            if not isinstance(target, str):
                raise NotificationError("A webhook's target is its URL.", field="target")
            url = url_check(target)
            channel.url_encrypted = _encrypt(url, "target")
            channel.url_masked = url_mask(url)
        elif creating:
            raise NotificationError("Give the webhook's URL.", field="target")
        if secret is not None:
            if len(secret) < 8 or len(secret) > 500:
                raise NotificationError("The secret must have 8 to 500 characters.", field="secret")
            channel.secret_encrypted = _encrypt(secret, "secret")
        elif creating:
            raise NotificationError("Give the secret the body is signed with (8 characters or more).", field="secret")
    channel.save()
    logger.info("notification channel %s %s", channel.pk, "created" if creating else "changed")
    return channel


def channel_delete(*, channel: Channel) -> None:
    """Delete a channel and its subscriptions; its deliveries stay in the log."""
    channel.delete()


def channel_transport(channel: Channel) -> Transport:
    """The transport of a channel, with its URL and secret decrypted for this one use."""
    if channel.kind == Channel.Kind.EMAIL:
        return EmailTransport(channel.address_list)
    try:
        url, secret = keys.decrypt(channel.url_encrypted), keys.decrypt(channel.secret_encrypted)
    except keys.KeyUnavailable:
        raise TransportError(
            "The channel's URL or secret cannot be decrypted (ENREACH_ENCRYPTION_KEY changed?).", permanent=True
        ) from None
    return WebhookTransport(url, secret=secret, format=channel.format)


def channels_rotate(*, old_keys: list[str]) -> int:
    """Re-encrypt the channels' URLs and secrets with the current key (``manage.py keys_rotate`` calls it)."""
    count = 0
    for channel in Channel.objects.select_for_update().exclude(url_encrypted="").order_by("pk"):
        Channel.objects.filter(pk=channel.pk).update(
            url_encrypted=keys.rotate(channel.url_encrypted, old_keys=old_keys),
            secret_encrypted=keys.rotate(channel.secret_encrypted, old_keys=old_keys)
            if channel.secret_encrypted
            else "",
        )
        count += 1
    return count


# --- Subscriptions -------------------------------------------------------------------------------------------------


def subscription_filter_clean(*, event: str, flt: Any) -> dict[str, Any]:
    """The filter, checked against what ``event`` takes; a ``NotificationError`` naming the bad key otherwise."""
    if flt in (None, ""):
        return {}
    if not isinstance(flt, dict):
        raise NotificationError("The filter is an object.", field="filter")
    allowed = FILTER_KEYS[event]
    unknown = sorted(set(flt) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "no filter"
        raise NotificationError(f"{event} takes {takes}; not {', '.join(map(str, unknown))[:200]}.", field="filter")
    clean: dict[str, Any] = {}
    for key, value in flt.items():
        where = f"filter.{key}"
        if value in (None, "", []):
            continue
        if key == "dataset":
            if value not in selectors.DATASET_KINDS:
                raise NotificationError("dataset is devices or vms.", field=where)
            clean[key] = value
        elif key in ("site", "tenant", "status"):
            if not isinstance(value, str) or len(value) > 200:
                raise NotificationError(f"{key} is a text of at most 200 characters.", field=where)
            clean[key] = value.strip()
        elif key == "change":
            if not isinstance(value, list) or not value or any(v not in CHANGE_KINDS for v in value):
                raise NotificationError(f"change is a list of: {', '.join(CHANGE_KINDS)}.", field=where)
            clean[key] = sorted(set(value), key=CHANGE_KINDS.index)
        elif key == "columns":
            if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
                raise NotificationError("columns is a list of CMDB column names.", field=where)
            unknown_columns = [v for v in value if v not in KNOWN_COLUMNS]
            if unknown_columns:
                raise NotificationError(f"Unknown columns: {', '.join(unknown_columns)[:200]}.", field=where)
            clean[key] = list(dict.fromkeys(value))
        elif key == "rules":
            if not isinstance(value, list) or any(not isinstance(v, str) or not _RULE_ID.match(v) for v in value):
                raise NotificationError("rules is a list of data-quality rule ids.", field=where)
            unknown_rules = [v for v in value if v not in BUILTIN_RULE_IDS and not v.startswith("allowed_")]
            if unknown_rules:
                raise NotificationError(
                    f"Unknown rules: {', '.join(unknown_rules)[:200]} (see /exports/quality/).", field=where
                )
            clean[key] = list(dict.fromkeys(value))
        elif key == "min_count":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
                raise NotificationError("min_count is a whole number from 1 to 1,000,000.", field=where)
            clean[key] = value
        elif key == "hours":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 1 <= value <= 24 * 365:
                raise NotificationError("hours is a number from 1 to 8760.", field=where)
            clean[key] = value
    return clean


def subscription_save(
    *,
    by: User,
    subscription: Subscription | None = None,
    event: str | None = None,
    channel: Channel | object | None = ...,
    flt: Any = None,
    enabled: bool | None = None,
) -> Subscription:
    """Create or change a subscription. Anyone subscribes themselves (``channel=None``: their own e-mail, to events
    their role may see); only admins subscribe a channel or change somebody else's."""
    creating = subscription is None
    admin = selectors.is_admin(by)
    if subscription is None:
        subscription = Subscription(user=by)
        if channel is ...:
            channel = None
    elif subscription.user_id != by.pk and not admin:
        raise NotificationError("This subscription is not yours.", field="id")
    if event is not None:
        if event not in EventKind.values:
            raise NotificationError(f"Choose one of: {', '.join(EventKind.values)}.", field="event")
        subscription.event = event
    elif creating:
        raise NotificationError("An event is required.", field="event")
    if channel is not ...:
        if channel is not None and not admin:
            raise NotificationError(
                "Only admins subscribe channels; leave channel empty for your e-mail.", field="channel"
            )
        subscription.channel = channel  # type: ignore[assignment]
    if subscription.channel_id is None:
        owner = subscription.user if not creating else by
        if not selectors.user_may_receive(user=owner, event=subscription.event):  # type: ignore[arg-type]
            capability = selectors.EVENT_CAPABILITY[subscription.event]
            raise NotificationError(f"{subscription.event} needs the {capability!r} capability.", field="event")
        if not owner.email:  # type: ignore[union-attr]
            raise NotificationError("Set an e-mail address on your profile first.", field="channel")
    if flt is not None or creating or event is not None:
        source = flt if flt is not None else subscription.filter
        subscription.filter = subscription_filter_clean(event=subscription.event, flt=source)
    if enabled is not None:
        subscription.enabled = enabled
    subscription.save()
    return subscription


def subscription_delete(*, subscription: Subscription, by: User) -> None:
    """Delete a subscription (one's own; admins any); its deliveries stay in the log."""
    if subscription.user_id != by.pk and not selectors.is_admin(by):
        raise NotificationError("This subscription is not yours.", field="id")
    subscription.delete()


# --- Events and the outbox -----------------------------------------------------------------------------------------


def _recipient(subscription: Subscription) -> str:
    if subscription.channel_id is not None:
        return f"channel {subscription.channel.name}"  # type: ignore[union-attr]
    return f"user {subscription.user.username}"


def _uuids(count: int) -> Iterator[uuid.UUID]:
    """``count`` random (version 4) UUIDs from one read of the system's randomness, not one read each."""
    pool = secrets.token_bytes(16 * count)
    for start in range(0, 16 * count, 16):
        yield uuid.UUID(bytes=pool[start : start + 16], version=4)


DigestOf = Callable[[Subscription], "dict[str, Any] | None"]


def event_record(
    *,
    kind: str,
    key: str,
    run: ExportRun | None,
    data: dict[str, Any],
    subscriptions: list[Subscription],
    digest_of: DigestOf | None = None,
) -> list[uuid.UUID]:
    """Record an event (once per ``key``) and one pending delivery per subscription that wants it (``digest_of``
    returns ``None`` for one whose filter does not match); queue the new deliveries once committed."""
    now = timezone.now()
    with transaction.atomic():
        event, _ = Event.objects.get_or_create(key=key, defaults={"kind": kind, "run": run, "data": data})
        done = set(Delivery.objects.filter(event=event).values_list("subscription_id", flat=True))
        rows = []
        fresh = _uuids(len(subscriptions))
        for subscription in subscriptions:
            if subscription.pk in done:
                continue
            digest = digest_of(subscription) if digest_of is not None else {}
            if digest is None:
                continue
            rows.append(
                Delivery(
                    id=next(fresh),
                    event=event,
                    subscription=subscription,
                    channel_id=subscription.channel_id,
                    user_id=subscription.user_id,
                    recipient=_recipient(subscription)[:300],
                    digest=digest,
                    next_attempt=now,
                )
            )
        # A racing recorder's rows win; ours for the same subscriptions are dropped, theirs are queued by them.
        Delivery.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
        ids = [row.pk for row in rows]
        deliveries_enqueue(ids=ids)
    return ids


def deliveries_enqueue(*, ids: list[uuid.UUID]) -> None:
    """Hand deliveries to the queue workers once the surrounding transaction commits."""
    if ids:
        transaction.on_commit(lambda: _send_to_queue(ids))


def _send_to_queue(ids: list[uuid.UUID]) -> int:
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    until = timezone.now() + timedelta(seconds=settings.NOTIFY_REQUEUE_AFTER)
    for start in range(0, len(ids), 500):
        Delivery.objects.filter(pk__in=ids[start : start + 500]).update(queued_until=until)
    batch = max(1, settings.NOTIFY_TASK_BATCH)
    try:
        broker = get_broker()
        # Tasks of NOTIFY_TASK_BATCH deliveries, queued in one transaction: queueing costs a few milliseconds per
        # task, and each delivery is still claimed, sent and recorded on its own.
        with transaction.atomic():
            for start in range(0, len(ids), batch):
                chunk = [str(delivery_id) for delivery_id in ids[start : start + batch]]
                async_task(
                    "notifications.tasks.deliveries_send_task",
                    chunk,
                    save=False,
                    group="notifications",
                    task_name=f"notify-{chunk[0]}-{len(chunk)}",
                    broker=broker,
                )
    except Exception as exc:  # the broker is down: the sweep queues them again once it is back
        logger.warning("notifications: %s deliveries not queued (%s); the sweep will try again", len(ids), exc)
        for start in range(0, len(ids), 500):
            Delivery.objects.filter(pk__in=ids[start : start + 500]).update(queued_until=None)
        return 0
    return len(ids)


def run_finished(*, run: ExportRun) -> str | None:
    """The after-run step: record what this finished run means to subscribers and queue their deliveries.

    A failed run (also abandoned or never started) is ``export.failed``; a successful one may be
    ``publish.failed`` (a target's publication failed), ``export.changes`` (it changed objects: one digest per
    subscription whose filter matches, with at least ``min_count`` changes) and ``quality.changed`` (a rule's count
    went up). Fast: nothing is sent here. Returns a note for the run's log.
    """
    queued: dict[str, int] = {}
    if run.status == ExportRun.Status.FAILED:
        queued[EventKind.EXPORT_FAILED] = _export_failed(run)
    elif run.status == ExportRun.Status.SUCCEEDED:
        queued[EventKind.PUBLISH_FAILED] = _publish_failed(run)
        queued[EventKind.EXPORT_CHANGES] = _export_changes(run)
        queued[EventKind.QUALITY_CHANGED] = _quality_changed(run)
    parts = [f"{count} {event}" for event, count in queued.items() if count]
    return f"Notifications queued: {', '.join(parts)}." if parts else None


def _export_failed(run: ExportRun) -> int:
    subscriptions = selectors.subscriptions_for(event=EventKind.EXPORT_FAILED)
    if not subscriptions:
        return 0
    data = {"run": run_brief(run), **selectors.run_failure(run=run)}
    return len(
        event_record(
            kind=EventKind.EXPORT_FAILED,
            key=f"export.failed:run:{run.pk}",
            run=run,
            data=data,
            subscriptions=subscriptions,
        )
    )


def _publish_failed(run: ExportRun) -> int:
    subscriptions = selectors.subscriptions_for(event=EventKind.PUBLISH_FAILED)
    if not subscriptions:
        return 0
    failed = selectors.run_publications_failed(run=run)
    if not failed:
        return 0
    data = {"run": run_brief(run), "publications": failed}
    return len(
        event_record(
            kind=EventKind.PUBLISH_FAILED,
            key=f"publish.failed:run:{run.pk}",
            run=run,
            data=data,
            subscriptions=subscriptions,
        )
    )


def _export_changes(run: ExportRun) -> int:
    if not run.compared or not (run.added or run.changed or run.removed):
        return 0
    subscriptions = selectors.subscriptions_for(event=EventKind.EXPORT_CHANGES)
    if not subscriptions:
        return 0
    index = selectors.change_index(run=run)
    if not index.ids:
        return 0
    totals = index.counts(range(len(index.ids)))

    def digest_of(subscription: Subscription) -> dict[str, Any] | None:
        matched, counts, first = index.digest(subscription.filter)
        if matched < int(subscription.filter.get("min_count") or 1):
            return None
        return {"matched": matched, "counts": counts, "change_ids": first}

    data = {"run": run_brief(run), "counts": totals}
    return len(
        event_record(
            kind=EventKind.EXPORT_CHANGES,
            key=f"export.changes:run:{run.pk}",
            run=run,
            data=data,
            subscriptions=subscriptions,
            digest_of=digest_of,
        )
    )


def _quality_changed(run: ExportRun) -> int:
    subscriptions = selectors.subscriptions_for(event=EventKind.QUALITY_CHANGED)
    if not subscriptions:
        return 0
    previous, increases = selectors.quality_increases(run=run)
    if not increases:
        return 0
    new_findings = selectors.quality_findings_new(run=run, previous=previous)

    def digest_of(subscription: Subscription) -> dict[str, Any] | None:
        wanted = set(subscription.filter.get("rules") or ())
        rules = [rule for rule in increases if not wanted or rule["rule"] in wanted]
        findings = [row for rule in rules for row in new_findings.get(rule["rule"], [])]
        if not rules or len(findings) < int(subscription.filter.get("min_count") or 1):
            return None
        return {"rules": rules, "new_findings": len(findings), "findings": findings[: selectors.DIGEST_ITEMS]}

    data = {"run": run_brief(run), "previous_run": previous.pk if previous else None, "rules": increases}
    return len(
        event_record(
            kind=EventKind.QUALITY_CHANGED,
            key=f"quality.changed:run:{run.pk}",
            run=run,
            data=data,
            subscriptions=subscriptions,
            digest_of=digest_of,
        )
    )


def stale_check(*, now: datetime | None = None) -> int:
    """``export.stale``: once per stale period and threshold, to the subscriptions whose threshold (``hours``, else
    ``NOTIFY_STALE_HOURS``) the CMDB's age passed. A period ends with the next successful export."""
    now = now or timezone.now()
    by_hours = selectors.stale_hours_subscribed()
    if not by_hours:
        return 0
    last, since = selectors.stale_since()
    if since is None:
        return 0
    queued = 0
    age_hours = (now - since).total_seconds() / 3600
    for hours, subscriptions in sorted(by_hours.items()):
        if age_hours < hours:
            continue
        data = {
            "hours": hours,
            "since": since.isoformat(),
            "age_hours": round(age_hours, 1),
            "last_success": run_brief(last) if last is not None else None,
        }
        key = f"export.stale:since-run:{last.pk if last else 0}:hours:{hours:g}"
        queued += len(
            event_record(kind=EventKind.EXPORT_STALE, key=key, run=last, data=data, subscriptions=subscriptions)
        )
    return queued


# --- Delivering ----------------------------------------------------------------------------------------------------


def _claimant() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claim(delivery_id: str | uuid.UUID, *, now: datetime) -> str | None:
    """Take a pending, due delivery nobody holds (or whose holder's claim expired); the claim token, or ``None``."""
    token = _claimant()
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING, next_attempt__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(
            claimed_by=token,
            claimed_until=now + timedelta(seconds=settings.NOTIFY_CLAIM_SECONDS),
            queued_until=None,
            attempts=F("attempts") + 1,
            last_attempt=now,
        )
    )
    return token if claimed else None


def _transport_of(delivery: Delivery) -> Transport:
    if delivery.channel_id is not None:
        channel = delivery.channel
        if channel is None or (not channel.enabled and not delivery.test):
            raise TransportError("The channel is disabled.", permanent=True)
        return channel_transport(channel)
    user = delivery.user
    if user is None:
        raise TransportError("The subscription's user is gone.", permanent=True)
    if not delivery.test and not selectors.user_may_receive(user=user, event=delivery.event.kind):
        raise TransportError(f"{user.username}'s role may no longer see {delivery.event.kind}.", permanent=True)
    if not user.email:
        raise TransportError(f"{user.username} has no e-mail address on their profile.", permanent=True)
    return EmailTransport([user.email])


def _attempt(delivery: Delivery) -> tuple[int | None, TransportError | None]:
    try:
        transport = _transport_of(delivery)
        message = message_build(delivery)
        if transport.is_noop(message):
            raise TransportError("Nobody to send to.", permanent=True)
        return transport.notify(message), None
    except TransportError as exc:
        return exc.response_code, exc
    except Exception as exc:  # a bug or the database: logged, and tried again later
        logger.exception("notification %s: could not be sent", delivery.pk)
        return None, TransportError(f"Internal error ({type(exc).__name__}).")


def retry_delay(*, attempts: int, retry_after: float | None) -> float:
    """Seconds until the next attempt: the receiver's ``Retry-After`` when it sent one, else exponential backoff
    from ``NOTIFY_RETRY_BACKOFF``; at most ``NOTIFY_RETRY_MAX_DELAY``."""
    backoff = settings.NOTIFY_RETRY_BACKOFF * 2 ** max(0, attempts - 1)
    delay = retry_after if retry_after is not None else backoff
    return float(min(max(delay, 0.0), settings.NOTIFY_RETRY_MAX_DELAY))


def deliveries_send(*, delivery_ids: Iterable[str | uuid.UUID]) -> dict[str, int]:
    """Send each of these deliveries (those another worker holds or sent are skipped); outcomes counted."""
    outcomes: dict[str, int] = {}
    for delivery_id in delivery_ids:
        outcome = delivery_send(delivery_id=delivery_id).split(" ")[0]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def delivery_send(*, delivery_id: str | uuid.UUID) -> str:
    """Claim a delivery, send it, and record the outcome: delivered, failed (permanently, after
    ``NOTIFY_MAX_ATTEMPTS``, or a test), or pending again with its next attempt. Returns the outcome."""
    now = timezone.now()
    token = _claim(delivery_id, now=now)
    if token is None:
        return "not claimed"
    delivery = Delivery.objects.select_related("event", "event__run", "channel", "user", "subscription").get(
        pk=delivery_id
    )
    code, error = _attempt(delivery)
    return _settle(delivery, token=token, code=code, error=error)


def _settle(delivery: Delivery, *, token: str, code: int | None, error: TransportError | None) -> str:
    now = timezone.now()
    mine = Delivery.objects.filter(pk=delivery.pk, claimed_by=token)
    release = {"claimed_until": None, "claimed_by": "", "response_code": code}
    if error is None:
        mine.update(status=Delivery.Status.DELIVERED, delivered=now, error="", **release)
        outcome = "delivered"
    elif error.permanent or delivery.test or delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
        mine.update(status=Delivery.Status.FAILED, error=error.message[:2000], **release)
        outcome = "failed"
    else:
        delay = retry_delay(attempts=delivery.attempts, retry_after=error.retry_after)
        mine.update(next_attempt=now + timedelta(seconds=delay), error=error.message[:2000], **release)
        outcome = f"retry in {delay:g} s"
    log = logger.info if error is None else logger.warning
    log(
        "notification %s (%s to %s, attempt %s): %s%s",
        delivery.pk,
        delivery.event.kind,
        delivery.recipient,
        delivery.attempts,
        outcome,
        f": {error.message}" if error is not None else "",
    )
    counter_add(
        "enreach_notification_attempts_total",
        {"event": delivery.event.kind, "outcome": "delivered" if error is None else outcome.split(" ")[0]},
    )
    return outcome


def deliveries_due_enqueue(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Queue again the pending deliveries that are due and that no worker holds or is about to take: retries whose
    time came, and deliveries of a killed worker (claim expired) or a lost task (queued too long ago)."""
    now = now or timezone.now()
    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(Q(queued_until__isnull=True) | Q(queued_until__lt=now))
        .order_by("next_attempt")
        .values_list("pk", flat=True)[:limit]
    )
    return _send_to_queue(due) if due else 0


@dataclass
class SweepResult:
    stale: int
    requeued: int


def notifications_sweep(*, now: datetime | None = None) -> SweepResult:
    """Every minute: the stale check, then queue what is due again."""
    now = now or timezone.now()
    return SweepResult(stale=stale_check(now=now), requeued=deliveries_due_enqueue(now=now))


def notifications_schedule_sync() -> None:
    """Create (or repair) the every-minute schedule of ``notifications_sweep``. Safe to call repeatedly."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={
            "func": "notifications.tasks.notifications_sweep_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


# --- Test notifications --------------------------------------------------------------------------------------------


def channel_test_send(*, channel: Channel, by: User | None = None) -> Delivery:
    """Send a test notification to a channel now, once (never retried), and record it in the delivery log."""
    event = Event.objects.create(
        kind="test",
        key=f"test:{uuid.uuid4()}",
        data={"by": by.username if by is not None else "", "channel": channel.name},
    )
    delivery = Delivery.objects.create(
        event=event,
        channel=channel,
        user=by,
        recipient=f"channel {channel.name}"[:300],
        test=True,
        next_attempt=timezone.now(),
    )
    token = _claim(delivery.pk, now=timezone.now())
    assert token is not None  # nobody else knows this row yet
    delivery.refresh_from_db()
    delivery.channel = channel
    code, error = _attempt(delivery)
    _settle(delivery, token=token, code=code, error=error)
    delivery.refresh_from_db()
    return delivery
