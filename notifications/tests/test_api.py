"""The notifications API: shapes as issue 27 gives them, admins-only channels, one's own subscriptions, secrets
never answered or logged."""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from notifications import services
from notifications.models import Channel, Delivery, Subscription
from notifications.tests.conftest import SECRET


def signed_in(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_channels_are_for_admins_only(db, client_for):
    for role in ("viewer", "operator", "member"):
        client = client_for(role)
        assert client.get("/api/notifications/channels/").status_code == 403
        assert client.post("/api/notifications/channels/", {}, format="json").status_code == 403
    assert APIClient().get("/api/notifications/channels/").status_code == 401


def test_a_webhook_channel_keeps_its_url_and_secret_encrypted_and_never_answers_or_logs_them(
    db, make_user, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    secret_url = receiver.url + "/T0KEN-in-the-path-9f8e7d6c"
    admin = signed_in(make_user("admin", email="admin@example.test"))
    created = admin.post(
        "/api/notifications/channels/",
        {"name": "Ops", "kind": "webhook", "target": secret_url, "secret": SECRET, "format": "slack"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["target"] == f"http://127.0.0.1:{receiver.port}/••••" + secret_url[-4:]
    assert body["has_secret"] is True and "secret" not in body
    assert set(body) >= {"id", "name", "kind", "target", "format"}
    channel = Channel.objects.get()
    assert SECRET not in channel.secret_encrypted and "T0KEN" not in channel.url_encrypted + channel.url_masked

    receiver.answer(500, body={"error": f"echoing {secret_url} and {SECRET}"})
    tested = admin.post(f"/api/notifications/channels/{channel.pk}/test/")
    assert tested.status_code == 200
    assert tested.json()["status"] == "failed" and tested.json()["response_code"] == 500
    receiver.stop()  # now nothing listens: the error must not quote the URL either
    tested_again = admin.post(f"/api/notifications/channels/{channel.pk}/test/").json()
    assert tested_again["status"] == "failed" and "connection refused" in tested_again["error"]

    answers = [
        created.content,
        tested.content,
        admin.get("/api/notifications/channels/").content,
        admin.get(f"/api/notifications/channels/{channel.pk}/").content,
        admin.get("/api/notifications/deliveries/").content,
        admin.patch(f"/api/notifications/channels/{channel.pk}/", {"name": "Ops 2"}, format="json").content,
    ]
    stored = " ".join(Delivery.objects.values_list("error", flat=True))
    for text in [*(a.decode() for a in answers), caplog.text, stored]:
        assert SECRET not in text and "T0KEN-in-the-path" not in text
    assert "echoing [REDACTED]" in stored


def test_channel_input_is_checked(db, make_user):
    admin = signed_in(make_user("admin"))
    cases = [
        ({"name": "a", "kind": "webhook", "target": "ftp://example.com/x", "secret": SECRET}, "target"),
        ({"name": "a", "kind": "webhook", "target": "https://example.com/x"}, "secret"),
        ({"name": "a", "kind": "webhook", "target": "https://example.com/x", "secret": "short"}, "secret"),
        ({"name": "a", "kind": "email", "target": "not-an-address"}, "target"),
        ({"name": "a", "kind": "pigeon", "target": "x"}, "kind"),
    ]
    for payload, field in cases:
        answer = admin.post("/api/notifications/channels/", payload, format="json")
        assert answer.status_code == 400 and field in answer.json(), (payload, answer.content)
    ok = admin.post(
        "/api/notifications/channels/", {"name": "Team", "kind": "email", "target": "a@x.test, b@x.test"}, format="json"
    )
    assert ok.status_code == 201 and ok.json()["target"] == "a@x.test, b@x.test"
    again = admin.post(
        "/api/notifications/channels/", {"name": "Team", "kind": "email", "target": "c@x.test"}, format="json"
    )
    assert again.status_code == 400 and "name" in again.json()


FILTER = {"dataset": "devices", "site": "AMS1", "change": ["changed"], "columns": ["Status"], "min_count": 2}


def test_subscriptions_have_the_issue_shape_and_check_their_filter(db, make_user):
    viewer = make_user("viewer", email="viewer@example.test")
    client = signed_in(viewer)
    created = client.post(
        "/api/notifications/subscriptions/",
        {
            "event": "export.changes",
            "channel": None,
            "filter": {
                "dataset": "devices",
                "site": "AMS1",
                "change": ["changed"],
                "columns": ["Status"],
                "min_count": 2,
            },
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["event"] == "export.changes" and body["channel"] is None
    assert body["filter"] == {
        "dataset": "devices",
        "site": "AMS1",
        "change": ["changed"],
        "columns": ["Status"],
        "min_count": 2,
    }
    bad = [
        ({"event": "export.changes", "filter": {"columns": ["Colour"]}}, "filter"),
        ({"event": "export.changes", "filter": {"rules": ["device_no_serial"]}}, "filter"),
        ({"event": "export.failed", "filter": {"site": "AMS1"}}, "filter"),
        ({"event": "quality.changed", "filter": {"rules": ["no_such_rule"]}}, "filter"),
        ({"event": "export.everything"}, "event"),
        ({"event": "export.failed", "channel": 999}, "channel"),
    ]
    for payload, field in bad:
        answer = client.post("/api/notifications/subscriptions/", payload, format="json")
        assert answer.status_code == 400 and field in answer.json(), (payload, answer.content)
    changed = client.patch(
        f"/api/notifications/subscriptions/{body['id']}/", {"filter": {"min_count": 5}}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["filter"] == {"min_count": 5}
    assert client.delete(f"/api/notifications/subscriptions/{body['id']}/").status_code == 204
    assert not Subscription.objects.exists()


def test_a_user_without_an_email_or_the_capability_cannot_subscribe_themselves(db, make_user):
    client = signed_in(make_user("viewer"))
    answer = client.post("/api/notifications/subscriptions/", {"event": "export.failed"}, format="json")
    assert answer.status_code == 400 and "e-mail" in str(answer.json())
    client = signed_in(make_user("viewer", email="v@example.test"))
    answer = client.post("/api/notifications/subscriptions/", {"event": "publish.failed"}, format="json")
    assert answer.status_code == 400 and "export.run" in str(answer.json())


def test_a_viewer_cannot_read_or_change_another_users_subscriptions(db, make_user, webhook_channel):
    alice = make_user("viewer", email="alice@example.test")
    bob = make_user("viewer", email="bob@example.test")
    admin = make_user("admin", email="admin@example.test")
    mine = services.subscription_save(by=alice, event="export.failed")
    channel_sub = services.subscription_save(by=admin, event="export.failed", channel=webhook_channel())
    Delivery.objects.create(
        event=services.Event.objects.create(kind="export.failed", key="k1"),
        subscription=mine,
        user=alice,
        recipient="user alice",
        next_attempt=mine.created,
    )
    bob_client = signed_in(bob)
    listing = bob_client.get("/api/notifications/subscriptions/").json()
    assert listing["count"] == 0
    for subscription in (mine, channel_sub):
        url = f"/api/notifications/subscriptions/{subscription.pk}/"
        assert bob_client.get(url).status_code == 404
        assert bob_client.patch(url, {"filter": {}}, format="json").status_code == 404
        assert bob_client.put(url, {"event": "export.stale"}, format="json").status_code == 404
        assert bob_client.delete(url).status_code == 404
    assert bob_client.get("/api/notifications/deliveries/").json()["count"] == 0
    answer = bob_client.post(
        "/api/notifications/subscriptions/",
        {"event": "export.failed", "channel": channel_sub.channel_id},
        format="json",
    )
    assert answer.status_code == 400 and "channel" in answer.json()
    assert Subscription.objects.filter(user=bob).count() == 0

    alice_client = signed_in(alice)
    assert [s["id"] for s in alice_client.get("/api/notifications/subscriptions/").json()["results"]] == [mine.pk]
    [delivery] = alice_client.get("/api/notifications/deliveries/").json()["results"]
    assert set(delivery) >= {"id", "event", "subscription", "run", "status", "attempts", "response_code", "error"}
    admin_client = signed_in(admin)
    assert admin_client.get("/api/notifications/subscriptions/").json()["count"] == 2
    assert admin_client.get("/api/notifications/deliveries/").json()["count"] == 1


@pytest.mark.parametrize("query", ["status=lost", "event=export.everything", "limit=x"])
def test_delivery_filters_are_checked(db, make_user, query):
    assert signed_in(make_user("viewer")).get(f"/api/notifications/deliveries/?{query}").status_code == 400


def test_an_unknown_delivery_is_a_404(db, make_user):
    client = signed_in(make_user("admin"))
    assert client.get("/api/notifications/deliveries/00000000-0000-0000-0000-000000000000/").status_code == 404
