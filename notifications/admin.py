"""Notifications in the admin: channels (URL and secret write-only, shown masked; "Send a test notification"),
subscriptions, and the delivery log (read-only), Healthchecks-style."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import keys
from notifications import services
from notifications.errors import NotificationError
from notifications.models import Channel, Delivery, Event, Subscription


class ChannelForm(forms.ModelForm):
    """A channel: addresses for e-mail; a write-only URL and secret for webhooks (never rendered back)."""

    url = forms.CharField(
        label="Webhook URL",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted and shown masked; leave empty to keep the current one.",
    )
    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The key of X-Enreach-Signature (HMAC-SHA256 of the body). Stored encrypted, never shown; "
        "leave empty to keep the current one.",
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "addresses", "format", "enabled"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        creating = self.instance.pk is None
        try:
            if not creating and kind != self.instance.kind:
                raise NotificationError("A channel's kind cannot change; create another channel.", field="kind")
            if kind == Channel.Kind.EMAIL:
                services.addresses_clean(data.get("addresses") or "")
            elif kind == Channel.Kind.WEBHOOK:
                if data.get("url"):
                    services.url_check(data["url"])
                elif creating:
                    raise NotificationError("Give the webhook's URL.", field="url")
                secret = data.get("secret") or ""
                if secret and not 8 <= len(secret) <= 500:
                    raise NotificationError("The secret must have 8 to 500 characters.", field="secret")
                if creating and not secret:
                    raise NotificationError(
                        "Give the secret the body is signed with (8 characters or more).", field="secret"
                    )
                keys.configured_keys()
        except keys.KeyUnavailable as exc:
            raise forms.ValidationError(str(exc)) from None
        except NotificationError as exc:
            field = {"target": "addresses" if kind == Channel.Kind.EMAIL else "url"}.get(exc.field or "", exc.field)
            self.add_error(field if field in self.fields else None, exc.message)
        return data


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "target_shown", "format", "enabled", "subscription_count", "updated"]
    list_filter = ["kind", "format", "enabled"]
    search_fields = ["name", "addresses"]
    readonly_fields = ["target_shown", "created", "updated", "created_by"]
    actions = ["send_test"]

    @admin.display(description="Target")
    def target_shown(self, channel: Channel) -> str:
        return channel.target_masked

    @admin.display(description="Subscriptions")
    def subscription_count(self, channel: Channel) -> int:
        return channel.subscriptions.count()

    def save_model(self, request: HttpRequest, obj: Channel, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        kind = data.get("kind")
        target = data.get("addresses") if kind == Channel.Kind.EMAIL else (data.get("url") or None)
        saved = services.channel_save(
            channel=Channel.objects.get(pk=obj.pk) if change else None,
            name=data.get("name"),
            kind=kind,
            target=target,
            secret=data.get("secret") or None,
            format=data.get("format"),
            enabled=data.get("enabled"),
            by=request.user if not change else None,  # type: ignore[arg-type]
        )
        obj.pk = saved.pk

    @admin.action(description="Send a test notification")
    def send_test(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            delivery = services.channel_test_send(channel=channel, by=request.user)  # type: ignore[arg-type]
            if delivery.status == Delivery.Status.DELIVERED:
                code = f" (HTTP {delivery.response_code})" if delivery.response_code else ""
                self.message_user(request, f"{channel.name}: test notification delivered{code}.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"{channel.name}: test notification failed: {delivery.error}", messages.ERROR
                )


class SubscriptionForm(forms.ModelForm):
    """A subscription, its filter checked against what its event takes."""

    class Meta:
        model = Subscription
        fields = ["event", "user", "channel", "filter", "enabled"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("event"):
            try:
                data["filter"] = services.subscription_filter_clean(event=data["event"], flt=data.get("filter"))
            except NotificationError as exc:
                self.add_error("filter", exc.message)
        return data


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = ["id", "event", "recipient", "filter", "enabled", "created"]
    list_filter = ["event", "enabled", "channel"]
    search_fields = ["user__username", "user__email", "channel__name"]
    list_select_related = ["user", "channel"]
    raw_id_fields = ["user"]
    readonly_fields = ["created", "updated"]

    @admin.display(description="To")
    def recipient(self, subscription: Subscription) -> str:
        if subscription.channel_id is not None:
            return f"channel {subscription.channel.name}"  # type: ignore[union-attr]
        return f"{subscription.user.username} <{subscription.user.email or 'no e-mail'}>"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created", "event_kind", "run", "recipient", "status", "attempts", "response_code", "short_error"]
    list_filter = ["status", "event__kind", "test"]
    search_fields = ["id", "recipient", "error"]
    list_select_related = ["event"]
    date_hierarchy = "created"
    readonly_fields = [
        "id",
        "event",
        "subscription",
        "channel",
        "user",
        "recipient",
        "test",
        "status",
        "attempts",
        "response_code",
        "error",
        "created",
        "next_attempt",
        "last_attempt",
        "delivered",
        "digest",
    ]
    exclude = ["queued_until", "claimed_until", "claimed_by"]

    @admin.display(description="Event", ordering="event__kind")
    def event_kind(self, delivery: Delivery) -> str:
        return delivery.event.kind

    @admin.display(description="Run")
    def run(self, delivery: Delivery) -> str:
        return f"#{delivery.event.run_id}" if delivery.event.run_id else "—"

    @admin.display(description="Error")
    def short_error(self, delivery: Delivery) -> str:
        return delivery.error[:120]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created", "kind", "key", "run"]
    list_filter = ["kind"]
    search_fields = ["key"]
    readonly_fields = ["kind", "key", "run", "data", "created"]
