"""Which events a run makes, and who hears them: filters on changes, quality increases, failed publications,
staleness once per period, and roles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request
from notifications import services
from notifications.models import Delivery, Event
from publishing.models import ExportPublication
from quality.models import QualityRuleCount


def export():
    run, _ = export_run_request(trigger="command")
    return export_run_execute(run=run)


def test_a_netbox_change_reaches_the_subscription_whose_filter_matches_and_no_other(
    db, netbox, smtp, receiver, webhook_channel, make_user, subscribe, django_capture_on_commit_callbacks
):
    first = export()
    assert first.status == "succeeded"
    device = netbox.devices[0]
    site = device["site"]["name"]
    other_site = next(d["site"]["name"] for d in netbox.devices if d["site"]["name"] != site)
    netbox.update_device(device["id"], status={"value": "offline", "label": "Offline"})

    viewer = make_user("viewer", email="viewer@example.test")
    operator = make_user("operator", email="operator@example.test")
    admin = make_user("admin", email="admin@example.test")
    matching = subscribe(viewer, "export.changes", site=site.lower(), change=["changed"], columns=["Status"])
    subscribe(operator, "export.changes", site=other_site)  # another site: nothing for it
    subscribe(admin, "export.changes", columns=["Tenant"], dataset="devices")  # another column
    subscribe(admin, "export.changes", channel=webhook_channel(), dataset="devices", min_count=1)
    subscribe(admin, "export.changes", dataset="vms")  # only VMs

    second = export()
    assert second.status == "succeeded" and second.changed == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.run_finished(run=second) == "Notifications queued: 2 export.changes."

    [mail] = smtp.wait_for(1)
    assert mail["To"] == "viewer@example.test"
    assert mail["Subject"] == f"Export #{second.pk}: 1 change"
    text = mail.get_body(("plain",)).get_content()
    assert f"changed device {device['name']}" in text and "Status: Active -> Offline" in text
    assert f"{netbox.url}/dcim/devices/{device['id']}/" in text
    [call] = receiver.wait_for(1)
    body = call.json
    assert body["counts"] == {"added": 0, "changed": 1, "removed": 0} and body["matched"] == 1
    [change] = body["changes"]
    assert change.pop("fields")["Status"] == ["Active", "Offline"]
    assert change == {
        "kind": "device",
        "change": "changed",
        "netbox_id": device["id"],
        "name": device["name"],
        "url": f"{netbox.url}/dcim/devices/{device['id']}/",
    }
    assert Delivery.objects.get(subscription=matching).status == "delivered"
    assert Delivery.objects.count() == 2


def test_min_count_and_a_digest_of_at_most_50_changes(
    db, netbox, smtp, make_user, subscribe, django_capture_on_commit_callbacks
):
    export()
    for item in netbox.devices[:30] + netbox.vms[:30]:
        (netbox.update_device if item in netbox.devices else netbox.update_vm)(item["id"], description="moved")
    few = make_user("viewer", email="few@example.test")
    many = make_user("viewer", email="many@example.test")
    subscribe(few, "export.changes", min_count=61)  # more than there are: nothing
    subscribe(many, "export.changes", min_count=60)
    run = export()
    with django_capture_on_commit_callbacks(execute=True):
        services.run_finished(run=run)
    [mail] = smtp.wait_for(1)
    assert mail["To"] == "many@example.test" and mail["Subject"] == f"Export #{run.pk}: 60 changes"
    delivery = Delivery.objects.get()
    assert delivery.digest["matched"] == 60 and len(delivery.digest["change_ids"]) == 50
    text = mail.get_body(("plain",)).get_content()
    assert text.count("Description: ") == 50 and "60 in all" in text


def test_a_viewer_whose_role_lost_the_capability_hears_nothing(
    db, smtp, make_user, subscribe, django_capture_on_commit_callbacks
):
    viewer = make_user("viewer", email="viewer@example.test")
    subscribe(viewer, "export.failed")
    Group.objects.get(name="viewer").permissions.remove(Permission.objects.get(codename="export_download"))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.run_finished(run=ExportRun.objects.create(trigger="api", status="failed", active=None)) is None
    assert not Delivery.objects.exists() and smtp.messages == []


def test_publish_failed_needs_export_run_and_lists_the_failed_targets(
    db, smtp, make_user, subscribe, django_capture_on_commit_callbacks
):
    operator = make_user("operator", email="operator@example.test")
    viewer = make_user("viewer", email="viewer@example.test")
    subscribe(operator, "publish.failed")
    with pytest.raises(services.NotificationError, match=r"export\.run"):
        subscribe(viewer, "publish.failed")
    run = ExportRun.objects.create(trigger="api", status="succeeded", active=None, finished=timezone.now())
    ExportPublication.objects.create(run=run, target="confluence", status="failed", detail="Page 123 not found")
    ExportPublication.objects.create(run=run, target="backup", status="succeeded", detail="ok")
    with django_capture_on_commit_callbacks(execute=True):
        services.run_finished(run=run)
    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == f"Publishing export #{run.pk} failed (Confluence)"
    assert "Confluence: Page 123 not found" in mail.get_body(("plain",)).get_content()


def test_quality_changed_lists_the_rules_that_went_up_and_their_new_findings(
    db, netbox, smtp, make_user, subscribe, django_capture_on_commit_callbacks
):
    export()
    device = netbox.devices[0]
    netbox.update_device(device["id"], serial="")
    everything = make_user("viewer", email="all@example.test")
    serials = make_user("viewer", email="serials@example.test")
    racks = make_user("viewer", email="racks@example.test")
    subscribe(everything, "quality.changed")
    subscribe(serials, "quality.changed", rules=["device_no_serial"])
    subscribe(racks, "quality.changed", rules=["device_no_rack"])
    run = export()
    before = QualityRuleCount.objects.exclude(run=run).get(rule="device_no_serial").count
    assert QualityRuleCount.objects.get(run=run, rule="device_no_serial").count == before + 1
    with django_capture_on_commit_callbacks(execute=True):
        services.run_finished(run=run)
    mails = smtp.wait_for(2)
    assert sorted(m["To"] for m in mails) == ["all@example.test", "serials@example.test"]
    text = mails[0].get_body(("plain",)).get_content()
    assert f"{before} → {before + 1}" in text and f"device_no_serial: device {device['name']}" in text


def test_the_stale_check_fires_once_per_stale_period_not_every_minute(
    db, smtp, make_user, subscribe, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_STALE_HOURS = 26
    viewer = make_user("viewer", email="viewer@example.test")
    subscribe(viewer, "export.stale")
    subscribe(make_user("viewer", email="week@example.test"), "export.stale", hours=168)
    now = timezone.now()
    ExportRun.objects.create(trigger="api", status="succeeded", active=None, finished=now - timedelta(hours=25))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.stale_check(now=now) == 0  # 25 hours: not stale yet
        for minute in range(1, 6):  # stale, then checked every minute
            services.stale_check(now=now + timedelta(hours=1, minutes=minute))
    assert len(smtp.wait_for(1)) == 1
    assert smtp.messages[0]["Subject"].startswith("No successful export for 26")

    later = now + timedelta(hours=2)
    ExportRun.objects.create(trigger="api", status="succeeded", active=None, finished=later)  # the period ends
    with django_capture_on_commit_callbacks(execute=True):
        assert services.stale_check(now=later + timedelta(minutes=1)) == 0
        assert services.stale_check(now=later + timedelta(hours=27)) == 1  # a new stale period
        assert services.stale_check(now=later + timedelta(hours=27, minutes=1)) == 0
    assert len(smtp.wait_for(2)) == 2
    assert Event.objects.filter(kind="export.stale").count() == 2
    assert not Delivery.objects.filter(recipient__contains="viewer2").exists()  # 168 hours never passed


def test_the_sweep_schedule_is_installed_by_migrate(db):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name=services.SWEEP_SCHEDULE_NAME)
    assert schedule.func == "notifications.tasks.notifications_sweep_task"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_the_export_core_announces_runs_to_the_app_through_the_after_run_registry(
    db, netbox, smtp, receiver, webhook_channel, make_user, subscribe, through_the_registry
):
    from exports import afterrun

    step = next(step for step in afterrun.steps() if step.name == "notifications")
    assert (step.order, step.statuses) == (300, ("succeeded", "failed"))
    admin = make_user("admin", email="admin@example.test")
    subscribe(admin, "export.failed", channel=webhook_channel())
    netbox.revoke_token()  # the run fails
    run = export()
    assert run.status == "failed"
    record = next(r for r in run.after_run if r["step"] == "notifications")
    assert record["outcome"] == "succeeded" and record["note"] == "Notifications queued: 1 export.failed."
    [event] = Event.objects.filter(run=run)
    assert event.kind == "export.failed"
    assert Delivery.objects.filter(event=event).count() == 1
    # The run was announced once: announcing it again (a retried after-run) adds nothing.
    assert services.run_finished(run=run) is None
    assert Delivery.objects.count() == 1
