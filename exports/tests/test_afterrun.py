"""The after-run registry: apps' steps run in order once a run finished, each recorded; one failing fails itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from exports import afterrun
from exports.models import ExportRun
from exports.runs import export_runs_sweep
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry() -> Iterator[list[tuple[str, int]]]:
    """The registry as the apps filled it, restored after the test; yields the calls the test's steps saw."""
    saved = dict(afterrun._registry)
    calls: list[tuple[str, int]] = []
    yield calls
    afterrun._registry.clear()
    afterrun._registry.update(saved)


def recording(name: str, calls: list[tuple[str, int]], note: str | None = None):
    def step(run: ExportRun) -> str | None:
        calls.append((name, run.pk))
        return note

    step.__qualname__ = f"step_{name}"
    return step


def test_the_apps_register_their_steps_in_order_and_the_list_prints():
    names = [step.name for step in afterrun.steps()]
    assert names == ["cmdb-table", "publishing", "notifications"]
    orders = [step.order for step in afterrun.steps()]
    assert orders == sorted(orders)
    publishing = next(step for step in afterrun.steps() if step.name == "publishing")
    assert (publishing.order, publishing.statuses) == (200, ("succeeded",))
    assert "publishing" in str(publishing) and "publishing.services.publishing_after_run" in str(publishing)


def test_register_rejects_statuses_a_finished_run_cannot_have(registry):
    with pytest.raises(ValueError, match="statuses"):
        afterrun.register("odd", recording("odd", registry), order=1, statuses=("running",))


def test_a_run_with_a_failing_step_records_it_and_still_succeeds(netbox, registry):
    def broken(run: ExportRun) -> None:
        raise RuntimeError("the receiver is down")

    afterrun.register("first", recording("first", registry, note="did its thing"), order=10)
    afterrun.register("broken", broken, order=20)
    afterrun.register("last", recording("last", registry), order=30, statuses=("succeeded",))
    afterrun.register("on-failure", recording("on-failure", registry), order=40, statuses=("failed",))

    run, _ = export_run_request(trigger="command", publish=False)
    run = export_run_execute(run=run)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert registry == [("first", run.pk), ("last", run.pk)]
    by_step = {record["step"]: record for record in run.after_run}
    assert [r["step"] for r in run.after_run if r["step"] in ("first", "broken", "last")] == ["first", "broken", "last"]
    assert "on-failure" not in by_step
    assert by_step["first"]["outcome"] == "succeeded" and by_step["first"]["note"] == "did its thing"
    assert by_step["broken"]["outcome"] == "failed"
    assert by_step["broken"]["error"] == "RuntimeError: the receiver is down"
    assert by_step["last"]["outcome"] == "succeeded"
    assert all(isinstance(r["seconds"], float) and r["seconds"] >= 0 for r in run.after_run)
    assert by_step["publishing"]["outcome"] == "skipped"  # asked not to publish
    assert by_step["cmdb-table"]["outcome"] == "succeeded"
    assert by_step["cmdb-table"]["note"].startswith("CMDB table: 100 rows written in ")
    merged = run.artifacts.get(name="netbox_merged_export.csv")
    assert (Path(settings.DATA_DIR) / merged.path).with_name("cmdb_table.arrow").stat().st_size > 0
    assert "After the run: broken failed" in run.log and "the receiver is down" in run.log


@pytest.mark.django_db(transaction=True)
def test_the_steps_start_after_the_runs_connection_is_closed(netbox, registry):
    # What the database driver keeps of the run's bulk writes goes with that connection (about 15 MB at 250,000
    # objects on SQLite, 40 MB at 500,000) before a step forks a child; the steps' queries open another.
    seen = []
    afterrun.register("first", lambda run: seen.append(connection.connection), order=1)
    run, _ = export_run_request(trigger="command", publish=False)
    writing = connection.connection
    assert writing is not None

    run = export_run_execute(run=run)

    assert run.status == "succeeded", run.error
    assert len(seen) == 1 and seen[0] is not writing
    assert ExportRun.objects.get(pk=run.pk).after_run[0]["step"] == "first"


def test_a_failed_run_announces_itself_to_the_steps_for_failures(netbox, registry):
    netbox.revoke_token()  # the run fails
    afterrun.register("on-failure", recording("on-failure", registry, note="told"), order=40, statuses=("failed",))
    afterrun.register("on-success", recording("on-success", registry), order=50, statuses=("succeeded",))

    run, _ = export_run_request(trigger="command")
    run = export_run_execute(run=run)

    run.refresh_from_db()
    assert run.status == "failed"
    assert registry == [("on-failure", run.pk)]
    # Only the steps for failed runs: this test's and the notifications app's.
    assert [r["step"] for r in run.after_run] == ["on-failure", "notifications"]
    assert run.after_run[0]["outcome"] == "succeeded" and run.after_run[0]["note"] == "told"


def test_the_sweeper_announces_the_runs_it_fails(settings, registry):
    settings.EXPORT_STALE_AFTER = 60
    settings.EXPORT_RETRY_ABANDONED = 0
    settings.EXPORT_QUEUED_STALE_AFTER = 600
    afterrun.register("on-failure", recording("on-failure", registry), order=40, statuses=("failed",))
    abandoned = ExportRun.objects.create(trigger=ExportRun.Trigger.API)
    long_ago = timezone.now() - timedelta(seconds=120)
    ExportRun.objects.filter(pk=abandoned.pk).update(status="running", started=long_ago, heartbeat=long_ago)

    export_runs_sweep()
    # Only one run may be active at a time: the never-started one comes once the abandoned one is failed.
    never = ExportRun.objects.create(trigger=ExportRun.Trigger.API)
    ExportRun.objects.filter(pk=never.pk).update(created=timezone.now() - timedelta(seconds=700))
    export_runs_sweep()

    assert registry == [("on-failure", abandoned.pk), ("on-failure", never.pk)]
    for run in (abandoned, never):
        run.refresh_from_db()
        assert run.status == "failed" and [r["step"] for r in run.after_run] == ["on-failure", "notifications"]
        assert "After the run: on-failure succeeded" in run.log


def test_a_step_may_say_it_had_nothing_to_do(netbox, registry):
    def nothing(run: ExportRun) -> None:
        raise afterrun.Skip("nothing to warm")

    afterrun.register("idle", nothing, order=5)
    run, _ = export_run_request(trigger="command", publish=False)
    run = export_run_execute(run=run)
    record = next(r for r in run.after_run if r["step"] == "idle")
    assert (record["outcome"], record["note"], record["error"]) == ("skipped", "nothing to warm", "")


def test_the_run_page_and_the_admin_show_the_steps_outcomes(netbox, registry, client_for):
    def broken(run: ExportRun) -> None:
        raise RuntimeError("webhook answered 500")

    afterrun.register("broken", broken, order=20)
    run, _ = export_run_request(trigger="command", publish=False)
    run = export_run_execute(run=run)

    page = client_for("viewer").get(f"/exports/runs/{run.pk}/").content.decode()
    assert 'id="after-run"' in page and "broken" in page and "webhook answered 500" in page
    admin = client_for("admin").get(f"/admin/exports/exportrun/{run.pk}/change/").content.decode()
    assert "After the run" in admin and "webhook answered 500" in admin and "failed" in admin
