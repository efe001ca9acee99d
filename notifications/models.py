"""Notifications: channels (e-mail, webhooks), subscriptions to events, the events themselves, and their
deliveries (the outbox and its log).

A finished export run (or the stale check) records an ``Event``; each subscription it concerns gets one
``Delivery`` row, the outbox entry that queue workers claim, send, retry and finally mark delivered or failed.
One delivery per (event, subscription) is a database constraint, so a step that runs twice or two workers that race
never send twice.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class EventKind(models.TextChoices):
    """What a subscription can ask to hear about."""

    EXPORT_FAILED = "export.failed", "Export failed"
    PUBLISH_FAILED = "publish.failed", "Publishing failed"
    EXPORT_STALE = "export.stale", "No successful export for a while"
    EXPORT_CHANGES = "export.changes", "What an export changed"
    QUALITY_CHANGED = "quality.changed", "A data-quality rule's count went up"


class Channel(models.Model):
    """Where admins send notifications: a list of e-mail addresses, or a webhook (generic JSON, Slack, Teams).

    A webhook's URL and secret are stored encrypted with the global keys' Fernet keys (``accounts.keys``); only a
    masked form of the URL (``https://hooks.example.com/••••abcd``) is kept in clear, and the secret is never shown.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Format(models.TextChoices):
        GENERIC = "generic", "Generic JSON"
        SLACK = "slack", "Slack-compatible"
        TEAMS = "teams", "Microsoft Teams-compatible"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    addresses = models.TextField(blank=True, help_text="E-mail channels: the addresses, one per line or comma.")
    url_encrypted = models.TextField(blank=True, editable=False)
    url_masked = models.CharField(max_length=300, blank=True, editable=False, help_text="The URL as shown.")
    secret_encrypted = models.TextField(blank=True, editable=False)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.GENERIC)
    enabled = models.BooleanField(default=True, help_text="A disabled channel receives nothing.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def address_list(self) -> list[str]:
        """The e-mail addresses of an e-mail channel."""
        return [part.strip() for part in self.addresses.replace(",", "\n").splitlines() if part.strip()]

    @property
    def target_masked(self) -> str:
        """What may be shown of the target: the addresses, or the masked URL."""
        return ", ".join(self.address_list) if self.kind == self.Kind.EMAIL else self.url_masked


class Subscription(models.Model):
    """Someone's interest in an event: a user's own (to their e-mail; ``channel`` empty) or a channel's (admins).

    ``filter`` narrows it (every key optional): ``dataset``, ``site``, ``tenant``, ``status``, ``change``,
    ``columns`` and ``min_count`` for ``export.changes``; ``rules`` and ``min_count`` for ``quality.changed``;
    ``hours`` for ``export.stale``.
    """

    event = models.CharField(max_length=32, choices=EventKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_subscriptions",
        help_text="Whose it is: the recipient of a personal subscription, the admin who created a channel's.",
    )
    channel = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        help_text="Empty: the user's own e-mail address.",
    )
    filter = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["event", "enabled"], name="notif_subscription_event")]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel.name if self.channel_id else self.user}"  # type: ignore[union-attr]


class Event(models.Model):
    """Something that happened and that subscriptions may hear about: one per run and kind, or per stale period.

    ``key`` makes it unique (``export.failed:run:42``, ``export.stale:since-run:41:hours:26``): recording the same
    event twice (a step run again, two sweepers) finds the existing row.
    """

    kind = models.CharField(max_length=32, choices=[*EventKind.choices, ("test", "Test notification")])
    key = models.CharField(max_length=200, unique=True)
    run = models.ForeignKey(
        "exports.ExportRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="notification_events"
    )
    data = models.JSONField(default=dict, blank=True, help_text="What the messages say about it.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.key


class Delivery(models.Model):
    """One message for one subscription about one event: the outbox row, then the log entry.

    ``id`` is sent as ``X-Enreach-Delivery`` on every attempt, so receivers can de-duplicate. A worker claims a
    pending, due delivery with a conditional update (``claimed_until``); one killed mid-way leaves a claim that
    expires, and the every-minute sweep queues the delivery again. ``queued_until`` stops the sweep from queueing a
    delivery that is already on its way.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notification_deliveries",
        help_text="Whose subscription it is (who may see it besides admins).",
    )
    recipient = models.CharField(max_length=300, blank=True, help_text="Who it goes to, as may be shown.")
    test = models.BooleanField(default=False, help_text="A test notification: sent once, never retried.")
    digest = models.JSONField(
        default=dict, blank=True, help_text="What this subscription's message lists (counts, changes, findings)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    next_attempt = models.DateTimeField(help_text="When it is due (again).")
    last_attempt = models.DateTimeField(null=True, blank=True)
    delivered = models.DateTimeField(null=True, blank=True)
    queued_until = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=120, blank=True, editable=False)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "subscription"], name="notif_delivery_once_per_subscription")
        ]
        indexes = [models.Index(fields=["status", "next_attempt"], name="notif_delivery_due")]

    def __str__(self) -> str:
        return f"{self.event.kind} → {self.recipient} ({self.status})"
