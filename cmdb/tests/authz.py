"""Authorization matrix of the CMDB API (run by enreach/tests/test_authorization_matrix.py).

Reading rows, one row, facets, an object's history and downloads need ``export.download`` (every role); the saved
view is one's own (any role may read and save it; a read-only token may only read it). Named views: anyone may
create one (not with a read-only token); a shared one is everyone's to read, a personal one only its owner's and an
admin's; only the owner or an admin changes or deletes one.
"""

from __future__ import annotations

import csv
import hashlib
import io

from django.conf import settings
from django.utils import timezone

from exports.columns import MERGED_COLUMNS
from exports.models import ExportArtifact, ExportRun

# ROLES = ("anonymous", "viewer", "operator", "member", "admin", "read_only_token")
FILE = "netbox_merged_export.csv"


def make_objects(*, owner, other) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A finished successful run whose merged CSV holds one device and one VM."""
    run = ExportRun.objects.create(
        trigger=ExportRun.Trigger.API, requested_by=owner, status=ExportRun.Status.SUCCEEDED, active=None
    )
    ExportRun.objects.filter(pk=run.pk).update(started=timezone.now(), finished=timezone.now())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MERGED_COLUMNS, restval="")
    writer.writeheader()
    writer.writerow({"Name": "sw-1", "ID": "7", "netbox_type": "devices"})
    writer.writerow({"Name": "vm-1", "ID": "9", "netbox_type": "vms"})
    content = buffer.getvalue().encode()
    relative = f"runs/{run.pk}/{FILE}"
    path = settings.DATA_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    ExportArtifact.objects.create(
        run=run, kind=ExportArtifact.Kind.MERGED, name=FILE, path=relative, size=len(content),
        sha256=hashlib.sha256(content).hexdigest(), rows=2,
    )  # fmt: skip
    from cmdb.models import CmdbNamedView

    shared = CmdbNamedView.objects.create(owner=other, name="Shared", dataset="merged", shared=True, state={})
    private = CmdbNamedView.objects.create(owner=other, name="Private", dataset="merged", shared=False, state={})
    return {"run": run.pk, "shared": shared.pk, "private": private.pk}


READ = {"anonymous": 401, "viewer": 200, "operator": 200, "member": 200, "admin": 200, "read_only_token": 200}
WRITE = {**READ, "read_only_token": 403}
CREATE = {**WRITE, "viewer": 201, "operator": 201, "member": 201, "admin": 201}
# Another member's views: only an admin (the admin's read-only token reads) gets past "not yours".
OTHERS_SHARED_CHANGE = {"anonymous": 401, "viewer": 403, "operator": 403, "member": 403, "admin": 200,
                        "read_only_token": 403}  # fmt: skip
OTHERS_SHARED_DELETE = {**OTHERS_SHARED_CHANGE, "admin": 204}
OTHERS_PRIVATE_READ = {"anonymous": 401, "viewer": 404, "operator": 404, "member": 404, "admin": 200,
                       "read_only_token": 200}  # fmt: skip
VIEW = {"name": "Mine", "dataset": "devices", "view": {"q": "sw"}}

CASES = [
    ("GET", "/api/cmdb/merged/rows/?run={run}", None, READ),
    ("GET", "/api/cmdb/devices/rows/devices-7/?run={run}", None, READ),
    ("GET", "/api/cmdb/vms/download/?format=csv&run={run}", None, READ),
    ("GET", "/api/cmdb/merged/view/", None, READ),
    ("PUT", "/api/cmdb/merged/view/", {"density": "compact"}, WRITE),
    ("DELETE", "/api/cmdb/merged/view/", None, WRITE),
    ("GET", "/api/cmdb/merged/facets/?column=name&run={run}", None, READ),
    ("GET", "/api/cmdb/devices/rows/devices-7/history/", None, READ),
    ("GET", "/api/cmdb/views/", None, READ),
    ("POST", "/api/cmdb/views/", VIEW, CREATE),
    ("GET", "/api/cmdb/views/{shared}/", None, READ),
    ("GET", "/api/cmdb/views/{private}/", None, OTHERS_PRIVATE_READ),
    ("PATCH", "/api/cmdb/views/{shared}/", {"name": "Renamed"}, OTHERS_SHARED_CHANGE),
    ("DELETE", "/api/cmdb/views/{shared}/", None, OTHERS_SHARED_DELETE),
]
