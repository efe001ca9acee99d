"""Authorization matrix of the exports API (run by enreach/tests/test_authorization_matrix.py).

Reading and downloading need ``export.download`` (every role), requesting a run needs ``export.run`` (not
viewers). A request is answered 202 before the queue runs it; in the matrix NetBox is not configured, so nothing
leaves the machine even if the run executed.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.utils import timezone

from exports.models import ExportArtifact, ExportRun

# ROLES = ("anonymous", "viewer", "operator", "member", "admin", "read_only_token")
FILE = "netbox_vms_export.csv"


def make_objects(*, owner, other) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A finished successful run with one file on disk (under the matrix's temporary DATA_DIR)."""
    run = ExportRun.objects.create(
        trigger=ExportRun.Trigger.API, requested_by=owner, status=ExportRun.Status.SUCCEEDED, active=None
    )
    ExportRun.objects.filter(pk=run.pk).update(started=timezone.now(), finished=timezone.now())
    relative = f"runs/{run.pk}/{FILE}"
    path = settings.DATA_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    content = b"Name,Status\r\nvm-1,active\r\n"
    path.write_bytes(content)
    ExportArtifact.objects.create(
        run=run, kind=ExportArtifact.Kind.VMS, name=FILE, path=relative, size=len(content),
        sha256=hashlib.sha256(content).hexdigest(), rows=1,
    )  # fmt: skip
    return {"run": run.pk, "name": FILE}


READ = {"anonymous": 401, "viewer": 200, "operator": 200, "member": 200, "admin": 200, "read_only_token": 200}
RUN = {"anonymous": 401, "viewer": 403, "operator": 202, "member": 202, "admin": 202, "read_only_token": 403}

MANAGE = {"anonymous": 401, "viewer": 403, "operator": 403, "member": 403, "admin": 200, "read_only_token": 403}
# Contract columns only: nothing to check against NetBox (not configured in the matrix).
COLUMNS = {"vms": [{"header": "ID", "source": "contract:ID"}, {"header": "Name", "source": "contract:Name"}]}

CASES = [
    ("GET", "/api/exports/columns/", None, READ),
    ("PUT", "/api/exports/columns/", COLUMNS, MANAGE),
    ("POST", "/api/exports/columns/preview/", COLUMNS, MANAGE),
    ("GET", "/api/exports/runs/", None, READ),
    ("POST", "/api/exports/runs/", {"force": False}, RUN),
    ("GET", "/api/exports/runs/{run}/", None, READ),
    ("GET", "/api/exports/runs/{run}/changes/", None, READ),
    ("GET", "/api/exports/runs/{run}/artifacts/{name}", None, READ),
    ("GET", "/api/exports/latest/{name}", None, READ),
]
