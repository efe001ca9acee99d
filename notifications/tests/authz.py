"""Authorization matrix of the notifications API (run by enreach/tests/test_authorization_matrix.py).

Channels are the admins' (read-only tokens read them); subscriptions and deliveries: everyone sees and changes
their own, admins all. The objects belong to ``other``, a member who is none of the requesting users, so their
subscription and delivery are a 404 for everybody but admins; read-only tokens refuse every unsafe method.
"""

from __future__ import annotations

from django.utils import timezone

from notifications.models import Delivery, Event
from notifications.services import channel_save, subscription_save

# ROLES = ("anonymous", "viewer", "operator", "member", "admin", "read_only_token")


def make_objects(*, owner, other) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """An e-mail channel; ``other``'s own subscription to export.failed and a delivery of it."""
    channel = channel_save(name="Ops", kind="email", target="ops@example.test", by=owner)
    other.email = "other@example.test"
    other.save(update_fields=["email"])
    subscription = subscription_save(by=other, event="export.failed")
    event = Event.objects.create(kind="export.failed", key="export.failed:run:0")
    delivery = Delivery.objects.create(
        event=event, subscription=subscription, user=other, recipient="user other", next_attempt=timezone.now()
    )
    return {"channel": channel.pk, "subscription": subscription.pk, "delivery": str(delivery.pk)}


def _status(*, anonymous: int = 401, others: int, admin: int, read_only_token: int) -> dict[str, int]:
    return {
        "anonymous": anonymous,
        "viewer": others,
        "operator": others,
        "member": others,
        "admin": admin,
        "read_only_token": read_only_token,
    }


ADMINS_READ = _status(others=403, admin=200, read_only_token=200)
ADMINS_WRITE = _status(others=403, admin=200, read_only_token=403)
OWN_READ = _status(others=404, admin=200, read_only_token=200)
OWN_WRITE = _status(others=404, admin=200, read_only_token=403)
EVERYONE_READS = _status(others=200, admin=200, read_only_token=200)

CASES = [
    ("GET", "/api/notifications/channels/", None, ADMINS_READ),
    (
        "POST",
        "/api/notifications/channels/",
        {"name": "Team", "kind": "email", "target": "team@example.test"},
        _status(others=403, admin=201, read_only_token=403),
    ),
    ("GET", "/api/notifications/channels/{channel}/", None, ADMINS_READ),
    ("PATCH", "/api/notifications/channels/{channel}/", {"name": "Renamed"}, ADMINS_WRITE),
    (
        "PUT",
        "/api/notifications/channels/{channel}/",
        {"name": "Put", "kind": "email", "target": "put@example.test"},
        ADMINS_WRITE,
    ),
    ("DELETE", "/api/notifications/channels/{channel}/", None, _status(others=403, admin=204, read_only_token=403)),
    ("POST", "/api/notifications/channels/{channel}/test/", None, ADMINS_WRITE),
    ("GET", "/api/notifications/subscriptions/", None, EVERYONE_READS),
    (
        "POST",
        "/api/notifications/subscriptions/",
        {"event": "export.failed", "channel": "{channel}"},
        _status(others=400, admin=201, read_only_token=403),
    ),
    ("GET", "/api/notifications/subscriptions/{subscription}/", None, OWN_READ),
    ("PATCH", "/api/notifications/subscriptions/{subscription}/", {"enabled": False}, OWN_WRITE),
    ("PUT", "/api/notifications/subscriptions/{subscription}/", {"event": "export.stale"}, OWN_WRITE),
    (
        "DELETE",
        "/api/notifications/subscriptions/{subscription}/",
        None,
        _status(others=404, admin=204, read_only_token=403),
    ),
    ("GET", "/api/notifications/deliveries/", None, EVERYONE_READS),
    ("GET", "/api/notifications/deliveries/{delivery}/", None, OWN_READ),
]
