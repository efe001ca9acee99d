"""The exports API: request runs, follow them, download files."""

import pytest

from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_post_queues_a_run_that_the_queue_executes(netbox, client_for, django_capture_on_commit_callbacks):
    client = client_for("operator")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/exports/runs/", {"force": True}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["trigger"] == "api" and body["force"] is True
    assert body["requested_by"].startswith("operator")
    # django-q2 runs synchronously in tests: the run is finished by now.
    detail = client.get(f"/api/exports/runs/{body['id']}/").json()
    assert detail["status"] == "succeeded", detail["error"]
    assert detail["devices"] == 40 and detail["vms"] == 60
    assert {a["name"] for a in detail["artifacts"]} == {
        "netbox_devices_export.csv", "netbox_vms_export.csv", "netbox_merged_export.csv", "Systems CMDB.xlsx",
        "data_quality.csv",
    }  # fmt: skip
    assert "Succeeded" in detail["log"]


def test_second_request_while_active_is_a_409_with_the_run(client_for):
    active, _ = export_run_request(trigger="web")
    response = client_for("operator").post("/api/exports/runs/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["id"] == active.pk
    assert ExportRun.objects.count() == 1


def test_bad_input_is_a_400(client_for):
    client = client_for("operator")
    assert client.post("/api/exports/runs/", {"force": "maybe"}, format="json").status_code == 400
    response = client.get("/api/exports/runs/?status=bogus")
    assert response.status_code == 400 and "succeeded" in str(response.json())
    assert client.get("/api/exports/runs/abc/").status_code == 404


def test_list_is_paginated_and_filterable(client_for):
    for status in ("succeeded", "failed", "failed"):
        run, _ = export_run_request(trigger="api")
        ExportRun.objects.filter(pk=run.pk).update(status=status, active=None)
    client = client_for("viewer")
    body = client.get("/api/exports/runs/?limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    failed = client.get("/api/exports/runs/?status=failed").json()
    assert failed["count"] == 2 and {r["status"] for r in failed["results"]} == {"failed"}


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("operator", 202), ("member", 202), ("admin", 202)])
def test_requesting_a_run_needs_export_run(client_for, role, status):
    assert client_for(role).post("/api/exports/runs/", {}, format="json").status_code == status


def test_user_without_export_download_cannot_read(client_for):
    from django.contrib.auth.models import Group, Permission

    Group.objects.get(name="viewer").permissions.remove(Permission.objects.get(codename="export_download"))
    client = client_for("viewer")
    assert client.get("/api/exports/runs/").status_code == 403
    assert client.get("/api/exports/latest/netbox_vms_export.csv").status_code == 403


def test_downloads_stream_the_files_with_type_and_name(netbox, client_for):
    run, _ = export_run_request(trigger="api")
    export_run_execute(run=run)
    client = client_for("viewer")
    response = client.get("/api/exports/latest/Systems%20CMDB.xlsx")
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX
    assert 'filename="Systems CMDB.xlsx"' in response["Content-Disposition"]
    content = b"".join(response.streaming_content)
    artifact = run.artifacts.get(name="Systems CMDB.xlsx")
    assert len(content) == artifact.size
    csv_response = client.get(f"/api/exports/runs/{run.pk}/artifacts/netbox_devices_export.csv")
    assert csv_response.status_code == 200 and csv_response["Content-Type"].startswith("text/csv")
    assert b"".join(csv_response.streaming_content).decode("utf-8-sig").startswith("Name,Status,Tenant")


def test_unknown_files_are_404(netbox, client_for):
    client = client_for("viewer")
    assert client.get("/api/exports/latest/netbox_vms_export.csv").status_code == 404
    run, _ = export_run_request(trigger="api")
    export_run_execute(run=run)
    assert client.get("/api/exports/latest/secrets.txt").status_code == 404
    assert client.get(f"/api/exports/runs/{run.pk}/artifacts/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/api/exports/runs/999/artifacts/netbox_vms_export.csv").status_code == 404


def test_failed_run_keeps_latest_download_working(netbox, client_for):
    good, _ = export_run_request(trigger="api")
    export_run_execute(run=good)
    netbox.revoke_token()
    bad, _ = export_run_request(trigger="api", force=True)
    export_run_execute(run=bad)
    client = client_for("viewer")
    detail = client.get(f"/api/exports/runs/{bad.pk}/").json()
    assert detail["status"] == "failed" and detail["error"]
    assert client.get("/api/exports/latest/netbox_devices_export.csv").status_code == 200
