"""The notifications API's shapes (``/api/notifications/…``), as issue 27 gives them, with a few more fields."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from enreach.api import MAX_INT
from exports.models import ExportChange
from notifications.models import Channel, Delivery, EventKind, Subscription
from notifications.selectors import DATASET_KINDS


class ChannelSerializer(serializers.ModelSerializer):
    """A channel. ``target``: the addresses (comma separated) or the webhook URL, shown masked; ``secret`` is
    write-only (webhooks sign their body with it)."""

    kind = serializers.ChoiceField(choices=Channel.Kind.choices)
    target = serializers.CharField(
        source="target_masked",
        max_length=5000,
        help_text="E-mail: addresses (comma or newline separated). Webhook: the URL (shown masked).",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        max_length=500,
        trim_whitespace=False,
        help_text="Webhooks: the HMAC-SHA256 key of X-Enreach-Signature. Write-only; required for a new webhook.",
    )
    format = serializers.ChoiceField(choices=Channel.Format.choices, default=Channel.Format.GENERIC)
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "target", "secret", "format", "enabled", "has_secret", "created", "updated"]
        read_only_fields = ["id", "has_secret", "created", "updated"]
        extra_kwargs: dict[str, dict[str, Any]] = {"name": {"validators": []}}

    def get_has_secret(self, channel: Channel) -> bool:
        return bool(channel.secret_encrypted)

    def service_arguments(self) -> dict[str, Any]:
        """The validated input as ``channel_save``'s arguments."""
        data = dict(self.validated_data)
        if "target_masked" in data:
            data["target"] = data.pop("target_masked")
        return data


class ChannelUpdateSerializer(ChannelSerializer):
    """A change of a channel: every field optional; an absent target or secret keeps the stored one."""

    class Meta(ChannelSerializer.Meta):
        extra_kwargs: dict[str, dict[str, Any]] = {"name": {"validators": [], "required": False}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("kind", "target", "format"):
            self.fields[name].required = False
        self.fields["format"].default = serializers.empty


class SubscriptionFilterSerializer(serializers.Serializer):
    """Every key optional. ``export.changes``: dataset, site, tenant, status, change, columns, min_count.
    ``quality.changed``: rules, min_count. ``export.stale``: hours."""

    dataset = serializers.ChoiceField(choices=list(DATASET_KINDS), required=False)
    site = serializers.CharField(required=False, max_length=200, help_text="Site name (case-insensitive).")
    tenant = serializers.CharField(required=False, max_length=200, help_text="Tenant name (case-insensitive).")
    status = serializers.CharField(required=False, max_length=200, help_text="Status, e.g. Active (case-insensitive).")
    change = serializers.ListField(
        child=serializers.ChoiceField(choices=ExportChange.Change.choices), required=False, allow_empty=False
    )
    columns = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        help_text="Only changes of these CMDB columns, e.g. Status, Tenant.",
    )
    min_count = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    rules = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, help_text="quality.changed: only these rule ids."
    )
    hours = serializers.FloatField(
        required=False, min_value=1, max_value=8760, help_text="export.stale: hours without a successful export."
    )


class SubscriptionSerializer(serializers.ModelSerializer):
    """A subscription: ``channel`` null means the signed-in user's own e-mail."""

    event = serializers.ChoiceField(choices=EventKind.choices)
    channel = serializers.IntegerField(
        allow_null=True,
        required=False,
        default=None,
        min_value=1,
        max_value=MAX_INT,
        source="channel_id",
        help_text="A channel's id (admins), or null: the signed-in user's own e-mail.",
    )
    filter = SubscriptionFilterSerializer(required=False, default=dict)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Subscription
        fields = ["id", "event", "channel", "filter", "enabled", "user", "username", "created", "updated"]
        read_only_fields = ["id", "user", "username", "created", "updated"]

    def validate_channel(self, value: int | None) -> Channel | None:
        if value is None:
            return None
        channel = Channel.objects.filter(pk=value).first()
        if channel is None:
            raise serializers.ValidationError(f"No channel {value}.")
        return channel


class SubscriptionUpdateSerializer(SubscriptionSerializer):
    """A change of a subscription: every field optional."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("event", "channel", "filter"):
            self.fields[name].required = False
            self.fields[name].default = serializers.empty


class DeliverySerializer(serializers.ModelSerializer):
    """One message for one subscription about one event, and how sending it went. ``id`` is the
    ``X-Enreach-Delivery`` header of every attempt."""

    event = serializers.CharField(source="event.kind", read_only=True)
    run = serializers.IntegerField(source="event.run_id", read_only=True, allow_null=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "subscription",
            "channel",
            "run",
            "status",
            "attempts",
            "response_code",
            "error",
            "recipient",
            "test",
            "created",
            "last_attempt",
            "next_attempt",
            "delivered",
        ]
        read_only_fields = fields
