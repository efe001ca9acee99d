"""The notifications API: channels (admins), subscriptions (one's own; admins all), the delivery log."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsAdminRole
from notifications import selectors, services
from notifications.api.serializers import (
    ChannelSerializer,
    ChannelUpdateSerializer,
    DeliverySerializer,
    SubscriptionSerializer,
    SubscriptionUpdateSerializer,
)
from notifications.errors import NotificationError
from notifications.models import Channel, Delivery, EventKind, Subscription


def _invalid(exc: NotificationError) -> ValidationError:
    field = (exc.field or "non_field_errors").split(".")
    if len(field) == 2:
        return ValidationError({field[0]: {field[1]: [exc.message]}})
    return ValidationError({field[0]: [exc.message]})


class IsAdminForChannels(IsAdminRole):
    message = "Only admins manage notification channels."


@extend_schema(tags=["notifications"])
class ChannelViewSet(viewsets.ModelViewSet):
    """Notification channels (admins): e-mail addresses or a webhook; ``POST …/{id}/test/`` sends a test."""

    permission_classes = [IsAdminForChannels]
    serializer_class = ChannelSerializer
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Channel]:
        return selectors.channel_list()

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action in ("update", "partial_update"):
            return ChannelUpdateSerializer
        return ChannelSerializer

    def perform_create(self, serializer: ChannelSerializer) -> None:  # type: ignore[override]
        try:
            serializer.instance = services.channel_save(by=self.request.user, **serializer.service_arguments())  # type: ignore[arg-type]
        except NotificationError as exc:
            raise _invalid(exc) from None

    def perform_update(self, serializer: ChannelSerializer) -> None:  # type: ignore[override]
        try:
            serializer.instance = services.channel_save(channel=serializer.instance, **serializer.service_arguments())
        except NotificationError as exc:
            raise _invalid(exc) from None

    def perform_destroy(self, instance: Channel) -> None:
        services.channel_delete(channel=instance)

    @extend_schema(request=None, responses={200: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test notification now, once (never retried); the answer is its delivery-log entry."""
        delivery = services.channel_test_send(channel=self.get_object(), by=request.user)  # type: ignore[arg-type]
        return Response(DeliverySerializer(delivery).data)


@extend_schema(tags=["notifications"])
class SubscriptionViewSet(viewsets.ModelViewSet):
    """Subscriptions: everyone sees and changes their own (``channel`` null: their e-mail); admins all, and may
    subscribe channels."""

    permission_classes = [IsAuthenticated]
    serializer_class = SubscriptionSerializer
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Subscription]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator asks without a request
            return Subscription.objects.none()
        subscriptions = selectors.subscription_list(user=self.request.user)  # type: ignore[arg-type]
        event = self.request.query_params.get("event")
        if self.action == "list" and event:
            if event not in EventKind.values:
                raise ValidationError({"event": [f"Choose one of: {', '.join(EventKind.values)}."]})
            subscriptions = subscriptions.filter(event=event)
        return subscriptions

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action in ("update", "partial_update"):
            return SubscriptionUpdateSerializer
        return SubscriptionSerializer

    @extend_schema(parameters=[OpenApiParameter("event", str, enum=EventKind.values)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def _save(self, serializer: SubscriptionSerializer, subscription: Subscription | None) -> None:
        data = dict(serializer.validated_data)
        options: dict[str, Any] = {}
        if "channel_id" in data:  # validated into the Channel (or None)
            options["channel"] = data.pop("channel_id")
        try:
            serializer.instance = services.subscription_save(
                by=self.request.user,  # type: ignore[arg-type]
                subscription=subscription,
                event=data.get("event"),
                flt=data.get("filter"),
                enabled=data.get("enabled"),
                **options,
            )
        except NotificationError as exc:
            raise _invalid(exc) from None

    def perform_create(self, serializer: SubscriptionSerializer) -> None:  # type: ignore[override]
        self._save(serializer, None)

    def perform_update(self, serializer: SubscriptionSerializer) -> None:  # type: ignore[override]
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: Subscription) -> None:
        try:
            services.subscription_delete(subscription=instance, by=self.request.user)  # type: ignore[arg-type]
        except NotificationError as exc:
            raise _invalid(exc) from None


@extend_schema(tags=["notifications"])
class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The delivery log: every message, its status, attempts, response code and error. Admins see all; anybody
    else those of their own subscriptions."""

    permission_classes = [IsAuthenticated]
    serializer_class = DeliverySerializer
    # Any segment: a signed-out caller gets 401 whatever the id; a malformed one is then a 404.
    lookup_value_regex = r"[^/.]+"

    def get_queryset(self) -> QuerySet[Delivery]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator asks without a request
            return Delivery.objects.none()
        params = self.request.query_params
        status_filter, event = params.get("status", ""), params.get("event", "")
        if self.action == "list":
            if status_filter and status_filter not in Delivery.Status.values:
                raise ValidationError({"status": [f"Choose one of: {', '.join(Delivery.Status.values)}."]})
            if event and event not in [*EventKind.values, "test"]:
                raise ValidationError({"event": [f"Choose one of: {', '.join([*EventKind.values, 'test'])}."]})
        else:
            status_filter = event = ""
        return selectors.delivery_list(user=self.request.user, status=status_filter, event=event)  # type: ignore[arg-type]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Delivery.Status.values),
            OpenApiParameter("event", str, enum=[*EventKind.values, "test"]),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
