"""The data-quality API, findings page and panel, over a real export of the fake NetBox."""

from __future__ import annotations

import pytest

from accounts.models import GlobalKey
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(netbox) -> ExportRun:
    """An export with known findings: two devices without serial at their sites, one expired warranty."""
    devices = netbox.devices
    netbox.update_device(devices[6]["id"], serial="")
    netbox.update_device(devices[7]["id"], serial="")
    netbox.update_device(
        devices[8]["id"], custom_fields={**devices[8]["custom_fields"], "HW_warranty_expiration": "2001-01-31"}
    )
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert run.status == "succeeded", run.error
    return run


def test_latest_report_has_counts_per_rule_and_a_page_of_findings(report, client_for, netbox):
    body = client_for("viewer").get("/api/exports/quality/latest/").json()
    assert body["run"] == report.pk
    counts = {rule["rule"]: rule for rule in body["rules"]}
    assert counts == {r: counts[r] for r in report.quality_counts.values_list("rule", flat=True)}
    assert counts["device_no_serial"]["count"] == report.quality_counts.get(rule="device_no_serial").count >= 2
    assert counts["device_no_serial"]["previous"] is None and counts["device_no_serial"]["trend"] == [
        counts["device_no_serial"]["count"]
    ]
    assert body["total"] == sum(rule["count"] for rule in body["rules"])
    assert len(body["findings"]) == min(100, body["total"]) and body["limit"] == 100
    assert body["file"] == f"/api/exports/runs/{report.pk}/artifacts/data_quality.csv"


def test_findings_filter_by_rule_severity_site_and_kind_and_link_to_netbox(report, client_for, netbox, settings):
    client = client_for("viewer")
    device = netbox.devices[8]
    site = device["site"]["name"]
    body = client.get(
        f"/api/exports/runs/{report.pk}/quality/",
        {"rule": "warranty_expired", "severity": "error", "site": site.upper(), "kind": "device"},
    ).json()
    ids = [finding["id"] for finding in body["findings"]]
    assert str(device["id"]) in ids and body["total"] == len(ids)
    found = next(f for f in body["findings"] if f["id"] == str(device["id"]))
    assert found["value"] == "2001-01-31" and found["site"] == site
    assert found["url"] == f"{settings.NETBOX_URL}/dcim/devices/{device['id']}/"
    vms = client.get("/api/exports/quality/latest/", {"kind": "vm", "limit": 5}).json()
    assert vms["findings"] and all(f["kind"] == "vm" for f in vms["findings"]) and len(vms["findings"]) <= 5
    assert all(f["url"].endswith(f"/virtualization/virtual-machines/{f['id']}/") for f in vms["findings"])


def test_links_use_the_netbox_url_of_the_global_key(report, client_for):
    GlobalKey.objects.update_or_create(name="netbox", defaults={"url": "https://netbox.example.com/api/"})
    body = client_for("viewer").get("/api/exports/quality/latest/", {"rule": "device_no_serial"}).json()
    assert body["findings"][0]["url"].startswith("https://netbox.example.com/dcim/devices/")


@pytest.mark.parametrize(
    "query",
    [{"severity": "fatal"}, {"kind": "server"}, {"limit": "0"}, {"limit": "1001"}, {"offset": "-1"},
     {"offset": "abc"}, {"limit": "9" * 30}, {"rule": "x" * 65}],
)  # fmt: skip
def test_bad_filters_are_a_json_400(report, client_for, query):
    client = client_for("viewer")
    for url in (
        "/api/exports/quality/latest/",
        f"/api/exports/runs/{report.pk}/quality/",
        "/api/exports/runs/999999/quality/",
    ):
        response = client.get(url, query)
        assert response.status_code == 400 and response["Content-Type"] == "application/json"
        assert set(response.json()) <= {"severity", "kind", "limit", "offset", "rule", "site"}


def test_unknown_runs_and_runs_without_a_report_are_a_json_404(report, client_for, settings, netbox):
    client = client_for("viewer")
    assert client.get("/api/exports/runs/999999/quality/").status_code == 404
    settings.EXPORT_QUALITY = False
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND, force=True)
    export_run_execute(run=run)
    response = client.get(f"/api/exports/runs/{run.pk}/quality/")
    assert response.status_code == 404 and "no data-quality report" in response.json()["detail"]
    # The latest report stays the last run that made one.
    assert client.get("/api/exports/quality/latest/").json()["run"] == report.pk


def test_no_report_yet_is_a_404(client_for):
    response = client_for("viewer").get("/api/exports/quality/latest/")
    assert response.status_code == 404 and response.json()["detail"].startswith("No data-quality report yet")


def test_the_api_needs_authentication(api_client):
    assert api_client.get("/api/exports/quality/latest/").status_code == 401


def test_paging_through_findings(report, client_for):
    client = client_for("viewer")
    everything = client.get("/api/exports/quality/latest/", {"limit": 1000}).json()
    first = client.get("/api/exports/quality/latest/", {"limit": 3}).json()
    second = client.get("/api/exports/quality/latest/", {"limit": 3, "offset": 3}).json()
    assert first["findings"] + second["findings"] == everything["findings"][:6]
    beyond = client.get("/api/exports/quality/latest/", {"offset": 10_000}).json()
    assert beyond["findings"] == [] and beyond["total"] == everything["total"]


# --- the page and the panel ----------------------------------------------------------------------------------------


def test_exports_page_shows_the_panel_with_counts_and_links(report, client_for):
    page = client_for("viewer").get("/exports/").content.decode()
    assert 'id="quality-panel"' in page and "/static/css/quality.css" in page
    count = report.quality_counts.get(rule="device_no_serial").count
    assert 'data-rule="device_no_serial"' in page and f'<td class="num">{count}</td>' in page
    assert "/exports/quality/?rule=device_no_serial" in page
    assert "style=" not in page.split('id="quality-panel"')[1].split("</section>")[0]


def test_panel_without_a_report_says_so(client_for):
    page = client_for("viewer").get("/exports/").content.decode()
    assert "No data-quality report yet" in page


def test_findings_page_filters_and_links_to_netbox(report, client_for, netbox, settings):
    device = netbox.devices[8]
    client = client_for("viewer")
    response = client.get("/exports/quality/", {"rule": "warranty_expired", "kind": "device"})
    page = response.content.decode()
    assert response.status_code == 200
    assert f'href="{settings.NETBOX_URL}/dcim/devices/{device["id"]}/"' in page
    assert "2001-01-31" in page and "Warranty expired" in page
    assert '<option value="warranty_expired" selected>' in page
    empty = client.get("/exports/quality/", {"rule": "warranty_expired", "kind": "vm"}).content.decode()
    assert "No findings match these filters." in empty


@pytest.mark.parametrize(
    "query", [{"page": "abc"}, {"page": "99999999999"}, {"severity": "<script>"}, {"kind": "x"}, {"run": "abc"}]
)
def test_findings_page_survives_junk(report, client_for, query):
    response = client_for("viewer").get("/exports/quality/", query)
    assert response.status_code in (200, 404)
    assert "<script>" not in response.content.decode().split("<main")[-1]


def test_findings_page_of_an_older_run_and_unknown_runs(report, client_for):
    client = client_for("viewer")
    assert client.get("/exports/quality/", {"run": report.pk}).status_code == 200
    assert client.get("/exports/quality/", {"run": 999999}).status_code == 404


def test_findings_page_needs_sign_in(client):
    response = client.get("/exports/quality/")
    assert response.status_code == 302 and "login" in response["Location"]


def _findings_table(html: str) -> list[str]:
    """The severity badges of the findings table, in order."""
    import re

    return re.findall(r'<span class="badge sev-(\w+)">', html)


def test_findings_list_errors_first_and_sort_by_any_column(report, client_for):
    client = client_for("viewer")
    page = client.get("/exports/quality/").content.decode()
    severities = _findings_table(page)
    ranks = {"error": 0, "warning": 1, "info": 2}
    assert severities and [ranks[s] for s in severities] == sorted(ranks[s] for s in severities)
    assert severities[0] == "error"
    assert '<th aria-sort="ascending" data-column="severity"' in page
    by_name = client.get("/exports/quality/", {"ordering": "name"}).content.decode()
    assert '<th aria-sort="ascending" data-column="name"' in by_name
    assert 'href="?ordering=-name"' in by_name  # a second click sorts descending
    descending = client.get("/exports/quality/", {"ordering": "-name"}).content.decode()
    assert '<th aria-sort="descending" data-column="name"' in descending
    junk = client.get("/exports/quality/", {"ordering": "drop table"})
    assert junk.status_code == 200 and '<th aria-sort="ascending" data-column="severity"' in junk.content.decode()


def test_findings_csv_honours_the_filters_and_the_order(report, client_for, netbox):
    import csv
    import io

    client = client_for("viewer")
    everything = list(csv.DictReader(io.StringIO(_body(client.get("/exports/quality/findings.csv")))))
    assert len(everything) == client.get("/api/exports/quality/latest/").json()["total"]
    response = client.get("/exports/quality/findings.csv", {"rule": "device_no_serial", "ordering": "-name"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert rows and {row["rule"] for row in rows} == {"device_no_serial"}
    page = client.get("/exports/quality/", {"rule": "device_no_serial"}).content.decode()
    assert f"{len(rows)} finding" in page and len(rows) < len(everything)
    names = [row["name"] for row in rows]
    assert names == sorted(names, key=lambda n: (n == "", n.casefold()), reverse=True)
    assert 'href="findings.csv?rule=device_no_serial"' in page
    assert client_for("viewer").get("/exports/quality/findings.csv", {"run": 999999}).status_code == 404


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()
