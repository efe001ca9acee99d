"""Authorization matrix of the publishing API (run by enreach/tests/test_authorization_matrix.py): publishing a run
again needs ``export.run`` (not viewers, not read-only tokens)."""

from __future__ import annotations

from django.utils import timezone

from exports.models import ExportRun
from exports.tests.authz import RUN


def make_objects(*, owner, other) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A finished successful run."""
    run = ExportRun.objects.create(
        trigger=ExportRun.Trigger.API, requested_by=owner, status=ExportRun.Status.SUCCEEDED, active=None
    )
    ExportRun.objects.filter(pk=run.pk).update(started=timezone.now(), finished=timezone.now())
    return {"run": run.pk}


CASES = [
    # Nothing is configured in the matrix: both targets are recorded as skipped, answered 202.
    ("POST", "/api/exports/runs/{run}/publish/", {"targets": ["confluence", "backup"]}, RUN),
]
