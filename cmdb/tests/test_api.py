"""The CMDB API over a real export of the fake NetBox: rows, one row, downloads read back, saved views, the page."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from openpyxl import load_workbook
from rest_framework.test import APIClient

from cmdb import params
from exports import selectors as export_selectors
from exports.columns import DEVICE_COLUMNS, MERGED_COLUMNS, VM_COLUMNS
from exports.models import ExportRun
from exports.workbook import write_workbook


def merged_rows(run: ExportRun) -> list[dict[str, str]]:
    artifact = run.artifacts.get(name="netbox_merged_export.csv")
    with export_selectors.artifact_path(artifact).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def viewer(client_for):
    return client_for("viewer")


def test_rows_default_to_the_latest_export_first_page_all_columns(export, viewer):
    body = viewer.get("/api/cmdb/merged/rows/").json()
    rows = merged_rows(export)
    assert body["count"] == 100
    assert [c["label"] for c in body["columns"]] == list(MERGED_COLUMNS)
    assert len(body["results"]) == params.DEFAULT_LIMIT
    first = body["results"][0]
    assert first["row_id"] == f"devices-{rows[0]['ID']}" and first["name"] == rows[0]["Name"]
    assert body["export"]["run"] == export.pk and body["export"]["stale"] is False


def test_values_are_typed_numbers_null_when_blank_and_text_kept_as_text(export, viewer):
    body = viewer.get("/api/cmdb/vms/rows/?fields=name,vcpus,memory_mb,serial_number,id&limit=500").json()
    rows = {r["Name"]: r for r in merged_rows(export) if r["netbox_type"] == "vms"}
    for item in body["results"]:
        source = rows[item["name"]]
        assert item["id"] == int(source["ID"])
        assert item["vcpus"] == (None if source["VCPUs"] == "" else float(source["VCPUs"]))
        assert item["serial_number"] == source["Serial number"]


def test_datasets_have_their_contract_columns(export, viewer):
    devices = viewer.get("/api/cmdb/devices/rows/?limit=1").json()
    vms = viewer.get("/api/cmdb/vms/rows/?limit=1").json()
    assert [c["label"] for c in devices["columns"]] == list(DEVICE_COLUMNS) and devices["count"] == 40
    assert [c["label"] for c in vms["columns"]] == list(VM_COLUMNS) and vms["count"] == 60


def test_filters_ordering_fields_and_paging_combine(export, viewer):
    rows = [r for r in merged_rows(export) if "fra1" in r["Site"].casefold() and r["Tenant"]]
    rows.sort(key=lambda r: int(r["ID"]), reverse=True)
    rows.sort(key=lambda r: r["netbox_type"])
    url = "/api/cmdb/merged/rows/?site=fra1&tenant__empty=false&ordering=netbox_type,-id&fields=name,id,site"
    body = viewer.get(url + "&limit=5&offset=2").json()
    assert body["count"] == len(rows) > 7
    assert [c["key"] for c in body["columns"]] == ["name", "id", "site"]
    assert [(r["name"], r["id"]) for r in body["results"]] == [(r["Name"], int(r["ID"])) for r in rows[2:7]]
    assert set(body["results"][0]) == {"row_id", "name", "id", "site"}


def test_global_search_and_range_filters(export, viewer):
    rows = merged_rows(export)
    target = next(r for r in rows if r["netbox_type"] == "vms" and r["VCPUs"])
    body = viewer.get(f"/api/cmdb/vms/rows/?q={target['Name'].upper()}&vcpus__gte={target['VCPUs']}").json()
    assert target["Name"] in [r["name"] for r in body["results"]]
    expected = [r for r in rows if r["Created"] and r["Created"][:7] <= "2100-01"]
    assert viewer.get("/api/cmdb/merged/rows/?created__lte=2100-01").json()["count"] == len(expected)


def test_limit_is_capped(export, viewer, monkeypatch):
    assert len(viewer.get("/api/cmdb/merged/rows/?limit=100000").json()["results"]) == 100
    monkeypatch.setattr(params, "MAX_LIMIT", 7)
    assert len(viewer.get("/api/cmdb/merged/rows/?limit=100000").json()["results"]) == 7
    assert len(viewer.get("/api/cmdb/merged/rows/?limit=0").json()["results"]) == 1
    assert viewer.get("/api/cmdb/merged/rows/?offset=99999999999").json()["results"] == []


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("ordering=colour", "ordering", "Unknown column 'colour' in ordering; choose among: name, status"),
        ("ordering=name,-vcpus,bogus", "ordering", "choose among"),
        ("colour=red", "colour", "Unknown parameter 'colour'. Filter with a column (name, status"),
        ("site__like=x", "site__like", "use site or site__contains"),
        ("vcpus__gte=many", "vcpus__gte", "needs a number"),
        ("created__gte=yesterday", "created__gte", "needs an ISO date"),
        ("name__lte=m", "name__lte", "text column"),
        ("site__empty=maybe", "site__empty", "true (is empty) or false"),
        ("fields=name,colour", "fields", "Unknown column(s) colour in fields"),
        ("limit=ten", "limit", "whole number"),
        ("offset=1.5", "offset", "whole number"),
        ("run=abc", "run", "id of an export"),
        ("q=" + "x" * 201, "q", "longer than 200"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(export, viewer, query, field, message):
    response = viewer.get(f"/api/cmdb/merged/rows/?{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert message in response.json()[field][0]


@pytest.mark.parametrize("query", ["=x", "detail=x"])
def test_a_parameter_without_a_name_or_named_detail_is_a_400_whose_detail_is_text(export, viewer, query):
    """The fuzzer's find: ``?=x`` answered ``{"detail": [...]}``, where every error's ``detail`` is a string."""
    for path in ("/api/cmdb/merged/rows/", "/api/cmdb/merged/download/"):
        response = viewer.get(f"{path}?{query}")
        assert response.status_code == 400
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.startswith("Unknown parameter"), detail


def test_a_device_column_is_not_a_filter_of_the_vms(export, viewer):
    response = viewer.get("/api/cmdb/vms/rows/?rack=x")
    assert response.status_code == 400 and "rack" in response.json()


def test_run_parameter_picks_an_export_and_rejects_unknown_or_failed_ones(export, viewer):
    failed = ExportRun.objects.create(trigger="api", status=ExportRun.Status.FAILED, active=None)
    assert viewer.get(f"/api/cmdb/merged/rows/?run={export.pk}").json()["export"]["run"] == export.pk
    missing = viewer.get("/api/cmdb/merged/rows/?run=999999")
    assert missing.status_code == 404 and "no export #999999" in missing.json()["detail"]
    assert viewer.get(f"/api/cmdb/merged/rows/?run={failed.pk}").status_code == 404


def test_without_an_export_rows_are_a_404_with_the_reason(db, viewer):
    response = viewer.get("/api/cmdb/merged/rows/")
    assert response.status_code == 404 and "No successful export yet" in response.json()["detail"]


def test_one_row_has_every_column_and_its_netbox_link(export, viewer, netbox):
    vm = next(r for r in merged_rows(export) if r["netbox_type"] == "vms")
    body = viewer.get(f"/api/cmdb/vms/rows/vms-{vm['ID']}/").json()
    assert body["netbox_url"] == f"{netbox.url}/virtualization/virtual-machines/{vm['ID']}/"
    assert [c["label"] for c in body["columns"]] == list(VM_COLUMNS)
    assert body["row"]["name"] == vm["Name"] and body["row"]["row_id"] == f"vms-{vm['ID']}"
    device = next(r for r in merged_rows(export) if r["netbox_type"] == "devices")
    by_id = viewer.get(f"/api/cmdb/devices/rows/{device['ID']}/").json()
    assert by_id["netbox_url"] == f"{netbox.url}/dcim/devices/{device['ID']}/"


def test_one_row_errors(export, viewer):
    assert viewer.get("/api/cmdb/merged/rows/vms-999999/").status_code == 404
    assert viewer.get("/api/cmdb/devices/rows/vms-1/").status_code == 404  # a VM is not a device
    ambiguous = viewer.get("/api/cmdb/merged/rows/1/")
    assert ambiguous.status_code == 400 and "devices-1 or vms-1" in ambiguous.json()["id"][0]


def test_netbox_link_is_empty_without_a_netbox_url(export, viewer, settings):
    settings.NETBOX_URL = ""
    assert viewer.get("/api/cmdb/devices/rows/devices-1/").json()["netbox_url"] == ""


def test_everything_needs_export_download(export, client_for, api_client):
    Group.objects.get(name="viewer").permissions.remove(Permission.objects.get(codename="export_download"))
    client = client_for("viewer")
    for url in ("/api/cmdb/merged/rows/", "/api/cmdb/devices/rows/devices-1/", "/api/cmdb/merged/download/",
                "/api/cmdb/merged/view/"):  # fmt: skip
        assert client.get(url).status_code == 403
        assert api_client.get(url).status_code == 401
    assert client.get("/cmdb/").status_code == 403


# --- downloads -------------------------------------------------------------------------------------------------


def test_csv_download_streams_the_filtered_sorted_rows_with_the_chosen_columns(export, viewer):
    rows = [r for r in merged_rows(export) if r["Status"].casefold() == "active"]
    rows.sort(key=lambda r: int(r["ID"]), reverse=True)
    rows.sort(key=lambda r: (r["Site"] == "", r["Site"].casefold()))
    response = viewer.get("/api/cmdb/merged/download/?format=csv&status__eq=active&ordering=site,-id"
                          "&fields=site,id,name,comments")  # fmt: skip
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="cmdb-merged-export{export.pk}.csv"'
    text = b"".join(response.streaming_content).decode("utf-8")
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert records[0] == ["Site", "ID", "Name", "Comments"]
    assert records[1:] == [[r["Site"], r["ID"], r["Name"], r["Comments"]] for r in rows]
    assert any("\n" in r["Comments"] for r in rows)  # the sample's multi-line comment survives the round trip


def test_csv_download_defaults_to_every_row_and_column_of_the_dataset(export, viewer):
    text = b"".join(viewer.get("/api/cmdb/vms/download/").streaming_content).decode("utf-8")
    records = list(csv.reader(io.StringIO(text, newline="")))
    vms = [r for r in merged_rows(export) if r["netbox_type"] == "vms"]
    assert records[0] == list(VM_COLUMNS)
    assert records[1:] == [[r[c] for c in VM_COLUMNS] for r in vms]


def test_csv_download_is_excel_safe_when_the_exports_are(export, viewer, settings):
    settings.EXPORT_CSV_EXCEL_SAFE = True
    data = b"".join(viewer.get("/api/cmdb/merged/download/?fields=name").streaming_content)
    assert data.startswith(b"\xef\xbb\xbfName\r\n")
    names = [r["Name"] for r in merged_rows(export)]
    lines = data[3:].decode().split("\r\n")[1:-1]
    assert lines == [("'" + n if n.startswith(("=", "+", "-", "@")) else n) for n in names]


def test_workbook_download_keeps_the_contracts_styling_and_types(export, viewer):
    response = viewer.get("/api/cmdb/merged/download/?format=xlsx&ordering=-id&fields=name,id,serial_number,vcpus"
                          "&netbox_type__eq=vms")  # fmt: skip
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response["Content-Disposition"] == f'attachment; filename="cmdb-merged-export{export.pk}.xlsx"'
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook.worksheets[0]
    assert sheet.title == "NetBox Inventory" and sheet.freeze_panes == "B2"
    table = sheet.tables["NetBoxInventory"]
    assert table.tableStyleInfo.name == "TableStyleMedium9"
    vms = sorted((r for r in merged_rows(export) if r["netbox_type"] == "vms"), key=lambda r: -int(r["ID"]))
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0] == ("Name", "ID", "Serial number", "VCPUs")
    assert table.ref == f"A1:D{len(vms) + 1}"
    for row, vm in zip(cells[1:], vms, strict=True):
        assert row[0] == vm["Name"] and row[1] == int(vm["ID"])  # numbers typed as numbers
        assert row[2] == (vm["Serial number"] or None) and (row[2] is None or isinstance(row[2], str))
        assert row[3] == (float(vm["VCPUs"]) if vm["VCPUs"] else None)


@pytest.mark.parametrize("dataset", ["merged", "devices", "vms"])
def test_workbook_download_reads_back_as_the_grids_rows_and_columns(export, viewer, dataset, tmp_path):
    query = "ordering=site,-name&name__empty=false&q=a"
    grid = viewer.get(f"/api/cmdb/{dataset}/rows/?{query}&limit={params.MAX_LIMIT}").json()
    assert 0 < grid["count"] == len(grid["results"])
    response = viewer.get(f"/api/cmdb/{dataset}/download/?{query}&format=xlsx")
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook.worksheets[0]
    cells = list(sheet.iter_rows(values_only=True))
    assert list(cells[0]) == [column["label"] for column in grid["columns"]]
    keys = [column["key"] for column in grid["columns"]]
    assert [list(row) for row in cells[1:]] == [
        [None if item[key] in ("", None) else item[key] for key in keys] for item in grid["results"]
    ]
    assert sheet.tables["NetBoxInventory"].ref == f"A1:{sheet.cell(1, len(keys)).column_letter}{grid['count'] + 1}"
    # The widths are those the export's workbook writer fits when it reads the same rows whole.
    source = {f"{r['netbox_type']}-{r['ID']}": r for r in merged_rows(export)}
    text = [[source[item["row_id"]][label] for label in cells[0]] for item in grid["results"]]
    reference = load_workbook(write_workbook(tmp_path / "reference.xlsx", list(cells[0]), text).path).worksheets[0]
    assert list(reference.iter_rows(values_only=True)) == cells
    assert {k: d.width for k, d in sheet.column_dimensions.items()} == {
        k: d.width for k, d in reference.column_dimensions.items()
    }


def test_download_errors_are_json(export, viewer):
    bad = viewer.get("/api/cmdb/merged/download/?format=pdf")
    assert bad.status_code == 400 and bad.json() == {"format": ["Choose one of: csv, xlsx."]}
    assert viewer.get("/api/cmdb/merged/download/?ordering=nope").status_code == 400


# --- saved views ------------------------------------------------------------------------------------------------


def test_a_saved_view_is_kept_per_user_and_dataset(export, make_user, client_for):
    user = make_user("viewer")
    alice, bob = APIClient(), client_for("viewer")
    alice.force_login(user)
    default = alice.get("/api/cmdb/devices/view/").json()
    assert default["density"] == "comfortable" and default["filters"] == {}
    view = {"columns": ["site", "name", "colour"], "hidden": ["rack"], "widths": {"name": 5000, "site": 120},
            "ordering": ["site", "-id", "-nope"], "filters": {"status": {"op": "eq", "value": "Active"}},
            "q": "fra", "density": "compact", "page_size": 100}  # fmt: skip
    saved = alice.put("/api/cmdb/devices/view/", view, format="json").json()
    assert saved["columns"] == ["site", "name"] and saved["hidden"] == ["rack"]
    assert saved["widths"] == {"name": 1200, "site": 120} and saved["ordering"] == ["site", "-id"]
    assert saved["filters"] == {"status": {"op": "eq", "value": "Active", "value2": ""}}
    assert alice.get("/api/cmdb/devices/view/").json() == saved
    assert alice.get("/api/cmdb/vms/view/").json() == default
    assert bob.get("/api/cmdb/devices/view/").json() == default
    alice.put("/api/cmdb/vms/view/", {"density": "compact"}, format="json")
    user.refresh_from_db()
    assert user.preferences["cmdb"]["dataset"] == "vms"
    assert alice.delete("/api/cmdb/devices/view/").json() == default
    assert alice.get("/api/cmdb/devices/view/").json() == default
    assert alice.get("/api/cmdb/vms/view/").json()["density"] == "compact"


@pytest.mark.parametrize(
    ("view", "field"),
    [
        ({"density": "huge"}, "density"),
        ({"page_size": 7}, "page_size"),
        ({"filters": {"site": {"op": "like", "value": "x"}}}, "filters"),
        ({"columns": "name"}, "columns"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_a_malformed_view_is_a_400(export, viewer, view, field):
    response = viewer.put("/api/cmdb/merged/view/", view, format="json")
    assert response.status_code == 400 and field in response.json()


# --- the page ---------------------------------------------------------------------------------------------------


def test_the_page_carries_columns_views_and_the_export(export, viewer):
    viewer.put("/api/cmdb/vms/view/", {"density": "compact"}, format="json")
    response = viewer.get("/cmdb/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'Rows of export <a href="/exports/runs/{export.pk}/">#{export.pk}</a>' in html
    assert 'id="cmdb-stale"' not in html
    assert "<script>" not in html and "style=" not in html  # CSP: no inline script or style
    config = json.loads(html.split('id="cmdb-config" type="application/json">')[1].split("</script>")[0])
    assert config["dataset"] == "vms" and config["run"] == export.pk
    assert config["datasets"]["vms"]["view"]["density"] == "compact"
    assert [c["label"] for c in config["datasets"]["devices"]["columns"]] == list(DEVICE_COLUMNS)
    assert config["datasets"]["merged"]["count"] == 100


def test_the_page_warns_when_the_export_is_older_than_the_schedule_promises(export, viewer, settings):
    settings.EXPORT_SCHEDULE = "60"
    settings.EXPORT_STALE_AFTER = 600
    assert 'id="cmdb-stale"' not in viewer.get("/cmdb/").content.decode()
    ExportRun.objects.filter(pk=export.pk).update(finished=timezone.now() - timedelta(hours=3))
    html = viewer.get("/cmdb/").content.decode()
    assert 'id="cmdb-stale"' in html and "an export every 1 hour(s)" in html
    settings.EXPORT_SCHEDULE = "0 2 * * *"  # daily: three hours old is fine
    assert 'id="cmdb-stale"' not in viewer.get("/cmdb/").content.decode()
    body = viewer.get("/api/cmdb/merged/rows/?limit=1").json()
    assert body["export"]["schedule_seconds"] == 86400 and body["export"]["stale"] is False


def test_the_page_without_an_export_says_so(db, viewer):
    html = viewer.get("/cmdb/").content.decode()
    assert "No successful export yet" in html and "cmdb-grid" not in html


def test_the_nav_links_to_the_page(export, viewer):
    assert 'href="/cmdb/"' in viewer.get("/exports/").content.decode()


@pytest.mark.parametrize("stored", [[], {"views": []}, {"views": {"merged": "wide"}}, {"views": {"merged": {"q": 5}}}])
def test_garbage_in_the_stored_preference_reads_as_the_default_view(export, make_user, stored):
    user = make_user("viewer")
    user.preferences = {"cmdb": stored}
    user.save()
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/cmdb/merged/view/").json()["q"] == ""
    assert client.put("/api/cmdb/merged/view/", {"q": "fra"}, format="json").json()["q"] == "fra"
    assert client.get("/cmdb/").status_code == 200


def test_an_unknown_dataset_is_a_json_404_after_authentication(export, viewer, api_client):
    for url in (
        "/api/cmdb/racks/rows/",
        "/api/cmdb/racks/rows/1/",
        "/api/cmdb/racks/download/",
        "/api/cmdb/racks/view/",
    ):
        response = viewer.get(url)
        assert response.status_code == 404 and "choose one of: devices, vms, merged" in response.json()["detail"]
        assert api_client.get(url).status_code == 401


def test_a_runs_table_is_kept_in_memory_and_a_pruned_run_is_a_404(export, viewer):
    assert viewer.get("/api/cmdb/merged/rows/").status_code == 200
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    export_selectors.artifact_path(artifact).unlink()
    assert viewer.get("/api/cmdb/merged/rows/?q=fra1").json()["count"] > 0  # served from memory
    from cmdb.selectors import cmdb_tables_clear

    cmdb_tables_clear()
    response = viewer.get("/api/cmdb/merged/rows/")
    assert response.status_code == 404 and "no longer on disk" in response.json()["detail"]


def test_in_filter_is_one_of_several_whole_values(export, viewer):
    rows = merged_rows(export)
    statuses = sorted({r["Status"] for r in rows})
    picked = statuses[:2]
    body = viewer.get("/api/cmdb/merged/rows/", {"status__in": picked, "limit": 500, "fields": "name,status"}).json()
    assert body["count"] == sum(1 for r in rows if r["Status"] in picked)
    assert {item["status"] for item in body["results"]} == set(picked)


def test_facets_count_a_columns_values_under_the_other_filters(export, viewer):
    rows = merged_rows(export)
    site = next(r["Site"] for r in rows if r["Site"])
    body = viewer.get("/api/cmdb/merged/facets/", {"column": "status", "site__eq": site}).json()
    in_site = [r for r in rows if r["Site"].casefold() == site.casefold()]
    expected: dict[str, int] = {}
    for r in in_site:
        expected[r["Status"]] = expected.get(r["Status"], 0) + 1
    assert body["column"] == "status" and body["distinct"] == len(expected)
    assert {v["value"]: v["count"] for v in body["values"]} == expected
    counts = [v["count"] for v in body["values"]]
    assert counts == sorted(counts, reverse=True)
    # The column's own filter is left out; a facet value filters to exactly its count.
    value = body["values"][0]
    again = viewer.get("/api/cmdb/merged/facets/", {"column": "status", "site__eq": site, "status__in": value["value"]})
    assert again.json() == body
    narrowed = viewer.get("/api/cmdb/merged/rows/", {"site__eq": site, "status__in": value["value"]}).json()
    assert narrowed["count"] == value["count"]
    # limit keeps the most frequent values; distinct still counts them all.
    one = viewer.get("/api/cmdb/merged/facets/", {"column": "name", "limit": 1}).json()
    assert len(one["values"]) == 1 and one["distinct"] == len({r["Name"] for r in rows})


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "column"),
        ({"column": "nope"}, "column"),
        ({"column": "status", "limit": "x"}, "limit"),
        ({"column": "status", "bogus": "1"}, "bogus"),
        ({"column": "vcpus", "vcpus__gte": "lots"}, "vcpus__gte"),
    ],
)
def test_facet_errors_are_400s_naming_the_parameter(export, viewer, query, field):
    response = viewer.get("/api/cmdb/merged/facets/", query)
    assert response.status_code == 400 and field in response.json()


def test_facets_need_export_download(export, api_client, client_for):
    assert api_client.get("/api/cmdb/merged/facets/?column=status").status_code in (401, 403)
    nobody = client_for("viewer")
    Group.objects.get(name="viewer").permissions.clear()
    assert nobody.get("/api/cmdb/merged/facets/?column=status").status_code == 403
