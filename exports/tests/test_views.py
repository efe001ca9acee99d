import pytest
from django.urls import reverse

from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


def test_page_lists_latest_files_and_history(netbox, client_for):
    run, _ = export_run_request(trigger="web")
    export_run_execute(run=run)
    response = client_for("viewer").get("/exports/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Systems CMDB.xlsx" in page and "/api/exports/latest/Systems%20CMDB.xlsx" in page
    assert f"<td>{run.pk}</td>" in page
    assert "Run export now" not in page


def test_run_button_for_users_with_export_run(netbox, client_for, django_capture_on_commit_callbacks):
    client = client_for("operator")
    assert "Run export now" in client.get("/exports/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/exports/run/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("exports:index")
    run = ExportRun.objects.get()
    assert run.trigger == "web" and run.status == "succeeded"
    assert f"Export #{run.pk} queued." in response.content.decode()


def test_viewer_cannot_run(client_for):
    assert client_for("viewer").post("/exports/run/").status_code == 403
    assert not ExportRun.objects.exists()


def test_page_shows_live_status_of_active_run(client_for):
    run, _ = export_run_request(trigger="api")
    page = client_for("viewer").get("/exports/").content.decode()
    assert f'data-run="{run.pk}"' in page


def test_demo_mode_is_announced(client_for, settings):
    settings.NETBOX_DEMO = True
    settings.NETBOX_URL = "http://127.0.0.1:8765"
    assert "Demo mode" in client_for("viewer").get("/exports/").content.decode()


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/exports/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
