"""The profile page's notifications section and the admin: subscribe and unsubscribe oneself; channels with a
write-only URL and secret, shown masked, and "Send a test notification"."""

from __future__ import annotations

import pytest
from django.test import Client

from notifications.models import Channel, Delivery, Subscription
from notifications.tests.conftest import SECRET

pytestmark = pytest.mark.django_db
WEBHOOK = {"kind": "webhook", "addresses": "", "url": "", "secret": "", "format": "generic"}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_profile_page_subscribes_and_unsubscribes_oneself(make_user):
    viewer = make_user("viewer", email="viewer@example.test")
    client = signed_in(viewer)
    page = client.get("/accounts/profile/").content.decode()
    assert 'id="notifications"' in page and "No subscriptions yet." in page
    assert 'value="publish.failed"' not in page  # a viewer may not hear about publishing (export.run)

    answer = client.post(
        "/notifications/subscriptions/",
        {"event": "export.changes", "site": "AMS1", "change": ["added", "removed"], "columns": "Status, Tenant"},
    )
    assert answer.status_code == 302 and answer["Location"] == "/accounts/profile/#notifications"
    subscription = Subscription.objects.get(user=viewer)
    assert subscription.channel is None
    assert subscription.filter == {"site": "AMS1", "change": ["added", "removed"], "columns": ["Status", "Tenant"]}
    page = client.get("/accounts/profile/").content.decode()
    assert "site: AMS1" in page and "columns: Status, Tenant" in page

    bad = client.post("/notifications/subscriptions/", {"event": "export.changes", "columns": "Colour"}, follow=True)
    assert "Not subscribed: Unknown columns: Colour." in bad.content.decode()

    other = make_user("viewer", email="other@example.test")
    theirs = Subscription.objects.create(user=other, event="export.failed")
    client.post(f"/notifications/subscriptions/{theirs.pk}/delete/")
    assert Subscription.objects.filter(pk=theirs.pk).exists()  # not one's own: untouched
    client.post(f"/notifications/subscriptions/{subscription.pk}/delete/")
    assert not Subscription.objects.filter(pk=subscription.pk).exists()


def test_the_profile_page_needs_an_email_to_subscribe(make_user):
    client = signed_in(make_user("viewer"))
    answer = client.post("/notifications/subscriptions/", {"event": "export.failed"}, follow=True)
    assert "Set an e-mail address on your profile first." in answer.content.decode()
    assert not Subscription.objects.exists()


def test_the_admin_masks_the_url_keeps_the_secret_and_sends_a_test(make_user, receiver):
    client = signed_in(make_user("admin", email="admin@example.test"))
    url = receiver.url + "/T0KEN-in-the-path-9f8e7d6c"
    added = client.post(
        "/admin/notifications/channel/add/",
        {
            "name": "Ops",
            "kind": "webhook",
            "addresses": "",
            "url": url,
            "secret": SECRET,
            "format": "generic",
            "enabled": "on",
        },
    )
    assert added.status_code == 302, added.content.decode()[:3000]
    channel = Channel.objects.get()
    listing = client.get("/admin/notifications/channel/").content.decode()
    change = client.get(f"/admin/notifications/channel/{channel.pk}/change/").content.decode()
    for page in (listing, change):
        assert channel.url_masked in page and "T0KEN" not in page and SECRET not in page
    # Saving without a URL or a secret keeps them.
    kept = client.post(
        f"/admin/notifications/channel/{channel.pk}/change/",
        {
            "name": "Ops team",
            "kind": "webhook",
            "addresses": "",
            "url": "",
            "secret": "",
            "format": "slack",
            "enabled": "on",
        },
    )
    assert kept.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Ops team" and channel.format == "slack" and channel.secret_encrypted

    done = client.post(
        "/admin/notifications/channel/", {"action": "send_test", "_selected_action": [channel.pk]}, follow=True
    )
    assert "Ops team: test notification delivered (HTTP 200)." in done.content.decode()
    [call] = receiver.wait_for(1)
    assert call.signature_ok and call.path.endswith("/T0KEN-in-the-path-9f8e7d6c")
    delivery = Delivery.objects.get()
    log = client.get("/admin/notifications/delivery/").content.decode()
    assert "delivered" in log and client.get(f"/admin/notifications/delivery/{delivery.pk}/change/").status_code == 200


def test_the_admin_checks_a_new_webhook(make_user):
    client = signed_in(make_user("admin"))
    answer = client.post(
        "/admin/notifications/channel/add/",
        {
            "name": "x",
            "kind": "webhook",
            "addresses": "",
            "url": "https://example.com/h",
            "secret": "",
            "format": "generic",
        },
    )
    assert answer.status_code == 200 and "Give the secret" in answer.content.decode()
    assert not Channel.objects.exists()


def test_the_admin_checks_a_subscriptions_filter(make_user):
    admin = make_user("admin", email="admin@example.test")
    client = signed_in(admin)
    form = {"event": "export.failed", "user": admin.pk, "channel": "", "filter": '{"site": "AMS1"}', "enabled": "on"}
    answer = client.post("/admin/notifications/subscription/add/", form)
    assert answer.status_code == 200 and "export.failed takes no filter" in answer.content.decode()
    answer = client.post("/admin/notifications/subscription/add/", {**form, "event": "export.changes"})
    assert answer.status_code == 302
    assert Subscription.objects.get().filter == {"site": "AMS1"}
