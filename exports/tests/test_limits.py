"""Starting exports is limited per user and for everyone together: the API answers 429 with Retry-After, the page
says why (as a 429 too), the admin's button says so; joining the active run, the schedule and the command are never
refused."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from exports.errors import ExportThrottled
from exports.limits import export_start_check, rate_parse
from exports.models import ExportRun
from exports.services import export_run_request

pytestmark = pytest.mark.django_db


def finished_runs(user, count: int, *, minutes_ago: float = 1.0, trigger: str = "api") -> list[ExportRun]:
    """Runs the user started and that are over, ``minutes_ago`` minutes ago."""
    runs = []
    for _ in range(count):
        run = ExportRun.objects.create(
            trigger=trigger, requested_by=user, status="succeeded", active=None, started=timezone.now()
        )
        ExportRun.objects.filter(pk=run.pk).update(created=timezone.now() - timedelta(minutes=minutes_ago))
        runs.append(run)
    return runs


@pytest.mark.parametrize(
    ("text", "count", "seconds", "window"),
    [("10/hour", 10, 3600, "hour"), ("3/10minutes", 3, 600, "10 minutes"), ("1/day", 1, 86400, "day")],
)
def test_rates_read_like_drf_throttle_rates(text, count, seconds, window):
    rate = rate_parse(text)
    assert (rate.count, rate.seconds, rate.window) == (count, seconds, window)


def test_an_empty_rate_is_no_limit_and_a_bad_one_is_reported_by_check(settings):
    assert rate_parse("") is None
    with pytest.raises(ImproperlyConfigured):
        rate_parse("ten per hour")
    settings.EXPORT_START_LIMIT_USER = "ten per hour"
    assert "exports.E003" in [message.id for message in run_checks()]


def test_the_api_answers_429_with_retry_after_once_a_user_started_too_many(settings, client_for, make_user):
    settings.EXPORT_START_LIMIT_USER = "3/hour"
    settings.EXPORT_START_LIMIT_GLOBAL = ""
    client = client_for("operator")
    first = client.post("/api/exports/runs/", {}, format="json")
    assert first.status_code == 202
    operator = ExportRun.objects.get(pk=first.json()["id"]).requested_by
    ExportRun.objects.filter(pk=first.json()["id"]).update(status="succeeded", active=None, started=timezone.now())
    finished_runs(operator, 2, minutes_ago=20)

    refused = client.post("/api/exports/runs/", {}, format="json")

    assert refused.status_code == 429
    # The oldest of the three counted starts leaves the hour in about 40 minutes.
    assert 39 * 60 <= int(refused["Retry-After"]) <= 40 * 60
    assert refused.json()["detail"] == (
        "Not started: you started 3 exports in the last hour, the most allowed (EXPORT_START_LIMIT_USER=3/hour). "
        f"Try again in {math.ceil(int(refused['Retry-After']) / 60)} minutes."
    )
    assert ExportRun.objects.count() == 3  # nothing was created
    # Another user is not limited by this one's starts.
    assert client_for("operator").post("/api/exports/runs/", {}, format="json").status_code == 202


def test_everyone_together_is_limited_too(settings, client_for, make_user):
    settings.EXPORT_START_LIMIT_USER = ""
    settings.EXPORT_START_LIMIT_GLOBAL = "4/hour"
    for index in range(4):
        finished_runs(make_user("operator"), 1, minutes_ago=10 + index)
    refused = client_for("operator").post("/api/exports/runs/", {}, format="json")
    assert refused.status_code == 429 and "for everyone together" in refused.json()["detail"]
    assert 46 * 60 <= int(refused["Retry-After"]) <= 47 * 60


def test_starts_older_than_the_window_and_retries_do_not_count(settings, make_user):
    settings.EXPORT_START_LIMIT_USER = "2/hour"
    settings.EXPORT_START_LIMIT_GLOBAL = ""
    user = make_user("operator")
    old = finished_runs(user, 5, minutes_ago=61)
    retry = finished_runs(user, 1, minutes_ago=5)[0]
    ExportRun.objects.filter(pk=retry.pk).update(retry_of=old[0], attempt=2)
    export_start_check(user=user)  # no error: one start counted at most
    finished_runs(user, 2, minutes_ago=5)
    with pytest.raises(ExportThrottled) as refused:
        export_start_check(user=user)
    assert refused.value.scope == "user" and 54 * 60 <= refused.value.wait <= 55 * 60


def test_joining_the_active_run_is_not_a_start_and_the_schedule_is_never_refused(settings, make_user):
    settings.EXPORT_START_LIMIT_USER = "1/hour"
    settings.EXPORT_START_LIMIT_GLOBAL = "1/hour"
    user = make_user("operator")
    active, created = export_run_request(trigger="api", user=user)
    assert created
    again, created = export_run_request(trigger="api", user=user)  # over the limit, but joins: a 409, not a 429
    assert again.pk == active.pk and not created
    ExportRun.objects.filter(pk=active.pk).update(status="succeeded", active=None, started=timezone.now())
    with pytest.raises(ExportThrottled):
        export_run_request(trigger="web", user=user)
    scheduled, created = export_run_request(trigger="schedule")
    assert created and scheduled.trigger == "schedule"
    ExportRun.objects.filter(pk=scheduled.pk).update(status="succeeded", active=None, started=timezone.now())
    _, created = export_run_request(trigger="command")
    assert created


def test_the_page_says_why_as_a_429(settings, client, make_user):
    settings.EXPORT_START_LIMIT_USER = "2/hour"
    settings.EXPORT_START_LIMIT_GLOBAL = ""
    user = make_user("operator")
    finished_runs(user, 2, minutes_ago=30)
    client.force_login(user)

    response = client.post("/exports/run/")

    assert response.status_code == 429 and 29 * 60 <= int(response["Retry-After"]) <= 30 * 60
    page = response.content.decode()
    assert "you started 2 exports in the last hour" in page and "Try again in 30 minutes" in page
    assert ExportRun.objects.count() == 2


def test_the_admin_button_says_why(settings, client, make_user):
    settings.EXPORT_START_LIMIT_USER = "1/hour"
    settings.EXPORT_START_LIMIT_GLOBAL = ""
    admin = make_user("admin")
    finished_runs(admin, 1, minutes_ago=1, trigger="admin")
    client.force_login(admin)
    response = client.post("/admin/exports/exportrun/run-now/", follow=True)
    assert response.status_code == 200
    assert "Not started: you started 1 exports in the last hour" in response.content.decode()
    assert ExportRun.objects.count() == 1


def test_a_run_the_queue_refused_or_nobody_picked_up_is_not_a_start(settings, make_user):
    settings.EXPORT_START_LIMIT_USER = "1/hour"
    settings.EXPORT_START_LIMIT_GLOBAL = ""
    user = make_user("operator")
    ExportRun.objects.create(trigger="api", requested_by=user, status="failed", active=None, error="Not queued: …")
    ExportRun.objects.create(trigger="api", requested_by=user, status="failed", active=None, error="Never started: …")
    export_start_check(user=user)  # neither counts
    finished_runs(user, 1)
    with pytest.raises(ExportThrottled):
        export_start_check(user=user)
