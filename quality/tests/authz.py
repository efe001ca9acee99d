"""Authorization matrix of the data-quality API (run by enreach/tests/test_authorization_matrix.py): reading a
report needs ``export.download`` (every role)."""

from __future__ import annotations

from django.utils import timezone

from exports.models import ExportRun
from exports.tests.authz import READ
from quality.models import QualityRuleCount


def make_objects(*, owner, other) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A finished successful run with a data-quality count."""
    run = ExportRun.objects.create(
        trigger=ExportRun.Trigger.API, requested_by=owner, status=ExportRun.Status.SUCCEEDED, active=None
    )
    ExportRun.objects.filter(pk=run.pk).update(started=timezone.now(), finished=timezone.now())
    QualityRuleCount.objects.create(
        run=run, rule="device_no_serial", label="Devices without serial", severity="warning"
    )
    return {"run": run.pk}


CASES = [
    ("GET", "/api/exports/runs/{run}/quality/", None, READ),
    ("GET", "/api/exports/quality/latest/", None, READ),
]
