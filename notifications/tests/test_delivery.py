"""From a finished export to a message: once per event and subscription, through the real SMTP server and a
webhook receiver that checks the signature; retries, Retry-After, permanent failures, a killed worker's claim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from exports.services import export_run_execute, export_run_request
from notifications import services
from notifications.models import Delivery
from notifications.tests.conftest import SECRET


def attempts(outcome: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"event": "export.failed", "outcome": outcome}
    return REGISTRY.get_sample_value("enreach_notification_attempts_total", labels) or 0


def export(netbox=None):
    run, _ = export_run_request(trigger="command")
    return export_run_execute(run=run)


@pytest.mark.parametrize("outage", ["token rejected", "netbox down"])
def test_a_failed_export_notifies_export_failed_subscribers_once(
    db, netbox, smtp, receiver, webhook_channel, make_user, subscribe, django_capture_on_commit_callbacks, outage
):
    admin = make_user("admin", email="admin@example.test")
    viewer = make_user("viewer", email="viewer@example.test")
    subscribe(viewer, "export.failed")
    subscribe(admin, "export.failed", channel=webhook_channel())
    subscribe(viewer, "export.changes")  # another event: hears nothing of a failure
    if outage == "token rejected":
        netbox.revoke_token()
    else:
        netbox.stop()

    run = export()
    assert run.status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        note = services.run_finished(run=run)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_finished(run=run)  # the step run again (a retried after-run): nothing new

    assert note == "Notifications queued: 2 export.failed."
    [mail] = smtp.wait_for(1)
    assert mail["To"] == "viewer@example.test"
    assert mail["Subject"] == f"Export #{run.pk} failed"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert run.error in text and f"https://cmdb.example.test/exports/runs/{run.pk}/" in text
    assert f'href="https://cmdb.example.test/exports/runs/{run.pk}/"' in html
    [call] = receiver.wait_for(1)
    assert call.signature_ok and call.timestamp_ok
    body = call.json
    assert body["event"] == "export.failed" and body["run"]["id"] == run.pk and body["id"] == call.delivery
    assert body["failure"]["error"] == run.error and body["failure"]["retry_coming"] is False
    assert Delivery.objects.count() == 2
    assert set(Delivery.objects.values_list("status", "attempts")) == {("delivered", 1)}
    assert len(smtp.messages) == 1 and len(receiver.received) == 1


def test_the_receiver_answering_500_twice_then_200_gets_one_delivery_id_three_times(
    db, settings, receiver, webhook_channel, make_user, subscribe, django_capture_on_commit_callbacks
):
    from exports.models import ExportRun

    admin = make_user("admin")
    subscribe(admin, "export.failed", channel=webhook_channel())
    run = ExportRun.objects.create(trigger="api", status="failed", error="NetBox said no", active=None)
    receiver.answer(500, times=2)
    retries_before, delivered_before = attempts("retry"), attempts("delivered")
    with django_capture_on_commit_callbacks(execute=True):
        services.run_finished(run=run)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, 500)
    assert delivery.next_attempt > timezone.now() + timedelta(seconds=50)  # backoff: NOTIFY_RETRY_BACKOFF
    assert "HTTP 500" in delivery.error

    assert services.deliveries_due_enqueue() == 0  # not due yet
    settings.NOTIFY_RETRY_BACKOFF = 0
    for _ in range(2):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            assert services.deliveries_due_enqueue() == 1

    calls = receiver.wait_for(3)
    assert [call.status for call in calls] == [500, 500, 200]
    assert attempts("retry") == retries_before + 2 and attempts("delivered") == delivered_before + 1
    assert {call.delivery for call in calls} == {str(delivery.pk)}
    assert all(call.signature_ok for call in calls)
    assert len({call.body for call in calls}) == 1  # the same body every time
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.error) == ("delivered", 3, 200, "")


def test_retry_after_is_honoured_and_a_404_is_not_retried(
    db, receiver, webhook_channel, make_user, subscribe, django_capture_on_commit_callbacks
):
    from exports.models import ExportRun

    admin = make_user("admin")
    subscribe(admin, "export.failed", channel=webhook_channel())
    receiver.answer(503, retry_after="120")
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        services.run_finished(run=ExportRun.objects.create(trigger="api", status="failed", active=None))
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.response_code == 503
    assert before + timedelta(seconds=119) <= delivery.next_attempt <= timezone.now() + timedelta(seconds=121)

    receiver.answer(404)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        services.deliveries_due_enqueue()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 2, 404)
    assert services.deliveries_due_enqueue() == 0


def test_smtp_down_then_up_delivers(db, settings, make_user, subscribe, django_capture_on_commit_callbacks):
    from devtools.smtp import SmtpServer, free_port
    from exports.models import ExportRun
    from notifications.tests.conftest import mail_to

    port = free_port()
    mail_to(settings, "127.0.0.1", port)  # nothing listens there yet
    viewer = make_user("viewer", email="viewer@example.test")
    subscribe(viewer, "export.failed")
    with django_capture_on_commit_callbacks(execute=True):
        services.run_finished(run=ExportRun.objects.create(trigger="api", status="failed", error="x", active=None))
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and "Could not reach the mail server" in delivery.error

    with SmtpServer(port=port) as smtp:
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            services.notifications_sweep()
        [mail] = smtp.wait_for(1)
    assert mail["X-Enreach-Delivery"] == str(delivery.pk)
    assert {part.get_content_type() for part in mail.walk()} >= {"text/plain", "text/html"}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_a_killed_workers_claim_expires_and_the_sweep_sends_the_delivery(
    db, receiver, webhook_channel, make_user, subscribe, django_capture_on_commit_callbacks
):
    from exports.models import ExportRun

    admin = make_user("admin")
    subscribe(admin, "export.failed", channel=webhook_channel())
    run = ExportRun.objects.create(trigger="api", status="failed", active=None)
    services.run_finished(run=run)  # the queueing never happens: the worker "died" before or while sending
    delivery = Delivery.objects.get()
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        claimed_by="dead-host:4242:abcd", claimed_until=now + timedelta(seconds=60), attempts=1
    )
    assert services.deliveries_due_enqueue() == 0  # still held by its (dead) worker
    assert services.delivery_send(delivery_id=delivery.pk) == "not claimed"
    Delivery.objects.filter(pk=delivery.pk).update(claimed_until=now - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deliveries_due_enqueue() == 1
    [call] = receiver.wait_for(1)
    assert call.delivery == str(delivery.pk) and call.signature_ok
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_by) == ("delivered", 2, "")


def test_slack_and_teams_formats_are_signed_too(db, receiver, webhook_channel, make_user):
    admin = make_user("admin")
    for format in ("slack", "teams"):
        channel = webhook_channel(name=f"chat-{format}", format=format)
        delivery = services.channel_test_send(channel=channel, by=admin)
        assert delivery.status == "delivered" and delivery.test
    slack, teams = receiver.wait_for(2)
    assert slack.signature_ok and teams.signature_ok
    assert slack.json["text"].startswith("*Enreach tools: test notification*")
    card = teams.json["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["body"][0]["text"] == "Enreach tools: test notification"


def test_a_test_notification_is_tried_once(db, receiver, webhook_channel, make_user):
    receiver.answer(500, times=5)
    delivery = services.channel_test_send(channel=webhook_channel(), by=make_user("admin"))
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 500)
    assert len(receiver.received) == 1
    assert services.deliveries_due_enqueue() == 0


def test_the_signature_is_the_hmac_of_the_body_with_the_channel_secret(db, receiver, webhook_channel, make_user):
    import hashlib
    import hmac

    services.channel_test_send(channel=webhook_channel(), by=make_user("admin"))
    [call] = receiver.wait_for(1)
    expected = "sha256=" + hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    assert call.headers["x-enreach-signature"] == expected
    assert call.headers["content-type"] == "application/json"
