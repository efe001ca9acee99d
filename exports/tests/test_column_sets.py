"""Column sets end to end: set over the API (checked against the test NetBox's custom fields), written by exports
(CSVs, typed workbook cells), followed by snapshots, changes and the run's record; the default set changes nothing."""

from __future__ import annotations

import csv
import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from accounts.models import AuditEntry
from exports import selectors
from exports.columns import DEVICE_COLUMNS, VM_COLUMNS, ColumnSet, default_columns
from exports.models import ExportChange, ExportRun
from exports.services import export_run_execute, export_run_request

pytestmark = pytest.mark.django_db

DEVICES_CSV, VMS_CSV, MERGED_CSV, WORKBOOK = (
    "netbox_devices_export.csv",
    "netbox_vms_export.csv",
    "netbox_merged_export.csv",
    "Systems CMDB.xlsx",
)


def run_export(**kwargs: Any) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, **kwargs)
    assert created
    return export_run_execute(run=run)


def files_of(run: ExportRun) -> dict[str, Path]:
    return {artifact.name: selectors.artifact_path(artifact) for artifact in run.artifacts.all()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def contract(dataset: str, **renamed: str) -> list[dict[str, Any]]:
    return [column.as_dict() for column in default_columns(dataset)]


def custom_device_set() -> list[dict[str, Any]]:
    """The contract with Serial number renamed and Comments hidden, three custom fields (text, integer, date) and a
    path."""
    columns = contract("devices")
    for column in columns:
        if column["source"] == "contract:Serial number":
            column["header"] = "Serial"
        if column["source"] == "contract:Comments":
            column["visible"] = False
    return [
        *columns,
        {"header": "Backup policy", "source": "cf:backup_policy"},
        {"header": "Cost center", "source": "cf:cost_center"},
        {"header": "Bought", "source": "cf:HW_buy_date"},
    ]


PATH_COLUMN = {"header": "Type slug", "source": "field:device_type.slug", "type": "text"}


def test_default_set_gives_byte_identical_files(netbox, client_for):
    before = run_export()
    assert before.status == ExportRun.Status.SUCCEEDED and before.columns == {}
    hashes = {artifact.name: artifact.sha256 for artifact in before.artifacts.all()}
    admin = client_for("admin")
    # Another set writes other files...
    changed = admin.put("/api/exports/columns/", {"devices": custom_device_set()}, format="json")
    assert changed.status_code == 200, changed.json()
    other = run_export(force=True)
    assert {a.name: a.sha256 for a in other.artifacts.all()}[DEVICES_CSV] != hashes[DEVICES_CSV]
    # ...and the default set, given back explicitly, today's files byte for byte (and the same files digest).
    default = ColumnSet().as_dict()
    assert admin.put("/api/exports/columns/", default, format="json").status_code == 200
    again = run_export(force=True)
    assert {artifact.name: artifact.sha256 for artifact in again.artifacts.all()} == hashes
    assert again.files_digest == before.files_digest and again.columns == {}
    assert list(read_csv(files_of(again)[DEVICES_CSV])[0]) == list(DEVICE_COLUMNS)
    assert list(read_csv(files_of(again)[VMS_CSV])[0]) == list(VM_COLUMNS)


def test_custom_columns_reach_every_file_typed_and_follow_changes(netbox, client_for):
    first = run_export()
    assert first.mode == ExportRun.Mode.FULL
    admin = client_for("admin")
    vm_columns = [
        *contract("vms"),
        {"header": "Cost center", "source": "cf:cost_center"},
        {"header": "Backup policy", "source": "cf:backup_policy"},
    ]
    response = admin.put("/api/exports/columns/", {"devices": custom_device_set(), "vms": vm_columns}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    # The custom fields' types come from NetBox.
    types = {column["header"]: column["type"] for column in body["devices"]}
    assert (types["Backup policy"], types["Cost center"], types["Bought"]) == ("text", "integer", "date")
    entry = AuditEntry.objects.get(action="columns.replace")
    assert entry.source == AuditEntry.Source.API and entry.actor is not None

    # Custom fields only: the snapshots have what they need, so an incremental run rewrites the files from them.
    incremental = run_export()
    assert incremental.mode == ExportRun.Mode.INCREMENTAL, incremental.log
    assert "did not touch are the previous run's" not in incremental.log  # another column set: every row anew
    assert incremental.columns["devices"][-1]["header"] == "Bought"
    devices = {int(row["ID"]): row for row in read_csv(files_of(incremental)[DEVICES_CSV])}
    header = list(next(iter(devices.values())))
    assert "Serial" in header and "Serial number" not in header and "Comments" not in header
    assert header[-3:] == ["Backup policy", "Cost center", "Bought"]
    by_cf = {device["id"]: device["custom_fields"] for device in netbox.devices}
    for netbox_id, row in devices.items():
        fields = by_cf[netbox_id]
        assert row["Cost center"] == ("" if fields["cost_center"] is None else str(fields["cost_center"]))
        assert row["Bought"] == (fields["HW_buy_date"] or "")
        assert row["Backup policy"] == (fields["backup_policy"] or "")
    merged = read_csv(files_of(incremental)[MERGED_CSV])
    assert list(merged[0])[-1] == "netbox_type" and "Cost center" in merged[0]
    assert {row["netbox_type"] for row in merged if row["Cost center"]} == {"devices", "vms"}

    # The workbook types them: an integer is a number, a date a date, text stays text.
    book = openpyxl.load_workbook(files_of(incremental)[WORKBOOK], read_only=True)
    rows = list(book["NetBox Inventory"].iter_rows(values_only=True))
    at = {name: index for index, name in enumerate(rows[0])}
    costs = [row[at["Cost center"]] for row in rows[1:] if row[at["Cost center"]] is not None]
    bought = [row[at["Bought"]] for row in rows[1:] if row[at["Bought"]] is not None]
    policies = [row[at["Backup policy"]] for row in rows[1:] if row[at["Backup policy"]] is not None]
    assert costs and all(type(value) is int for value in costs)
    assert bought and all(isinstance(value, datetime.date) for value in bought)
    assert policies and all(isinstance(value, str) for value in policies)
    expected_date = next(f["HW_buy_date"] for f in by_cf.values() if f["HW_buy_date"])
    assert datetime.date.fromisoformat(expected_date) in {value.date() for value in bought}

    # A field: path the snapshots lack: the next run is a full one, and its log says why.
    devices_set = [*response.json()["devices"], PATH_COLUMN]
    assert admin.put("/api/exports/columns/", {"devices": devices_set}, format="json").status_code == 200
    full = run_export()
    assert full.mode == ExportRun.Mode.FULL
    assert "device_type.slug" in full.log and "Full export instead of incremental" in full.log
    slugs = {int(row["ID"]): row["Type slug"] for row in read_csv(files_of(full)[DEVICES_CSV])}
    assert slugs == {device["id"]: device["device_type"]["slug"] for device in netbox.devices}

    # Editing the custom field in NetBox: old -> new in the run's changes (an incremental run).
    device = next(device for device in netbox.devices if device["custom_fields"].get("cost_center") is not None)
    old = device["custom_fields"]["cost_center"]
    netbox.update_device(device["id"], custom_fields={**device["custom_fields"], "cost_center": old + 1})
    edited = run_export()
    assert edited.mode == ExportRun.Mode.INCREMENTAL
    assert "did not touch are the previous run's" in edited.log  # the same column set: the previous rows serve
    assert read_csv(files_of(edited)[DEVICES_CSV]) == read_csv(files_of(run_export(force=True))[DEVICES_CSV])
    change = ExportChange.objects.get(run=edited, netbox_id=device["id"], kind=ExportChange.Kind.DEVICE)
    assert change.fields["Cost center"] == [str(old), str(old + 1)]
    assert set(change.fields) == {"Cost center", "Last updated"}


def test_a_custom_field_deleted_in_netbox_empties_its_column_and_the_log_says_so(netbox, client_for):
    run_export()
    devices_set = [*contract("devices"), {"header": "Cost center", "source": "cf:cost_center"}]
    assert client_for("admin").put("/api/exports/columns/", {"devices": devices_set}, format="json").status_code == 200
    with_field = run_export()
    assert any(row["Cost center"] for row in read_csv(files_of(with_field)[DEVICES_CSV]))
    netbox.delete_custom_field("cost_center")
    without = run_export()
    assert without.status == ExportRun.Status.SUCCEEDED
    assert "did not touch are the previous run's" not in without.log  # the column is empty now: every row anew
    assert "no custom field cost_center for devices" in without.log
    assert all(row["Cost center"] == "" for row in read_csv(files_of(without)[DEVICES_CSV]))


def test_an_unknown_custom_field_is_a_400_listing_netboxs_names(netbox, client_for):
    devices_set = [*contract("devices"), {"header": "Owner", "source": "cf:owner_team"}]
    response = client_for("admin").put("/api/exports/columns/", {"devices": devices_set}, format="json")
    assert response.status_code == 400
    problem = response.json()["problems"][0]
    assert "owner_team" in problem
    for name in ("cost_center", "backup_policy", "HW_buy_date", "environment"):
        assert name in problem
    assert "Virtual_Disks" not in problem  # a VM-only field is not offered for devices
    assert not AuditEntry.objects.filter(action="columns.replace").exists()


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        ({"header": "Name", "source": "field:platform.slug"}, "already used"),
        ({"header": "two\nlines", "source": "field:platform.slug"}, "line break"),
        ({"header": "=cmd", "source": "field:platform.slug"}, "formula"),
        ({"header": "x" * 256, "source": "field:platform.slug"}, "longer than 255"),
        ({"header": "Slug", "source": "field:Platform..slug"}, "not a path"),
        ({"header": "Slug", "source": "field:no_such_field.slug"}, "no field 'no_such_field'"),
        ({"header": "Slug", "source": "platform.slug"}, "starts with contract:, cf: or field:"),
        ({"header": "Slug", "source": "field:platform.slug", "type": "money"}, "unknown type"),
        ({"header": "netbox_type", "source": "field:platform.slug"}, "merged file's own column"),
    ],
)
def test_a_column_that_would_break_the_files_is_a_400_naming_it(db, client_for, column, problem):
    response = client_for("admin").put(
        "/api/exports/columns/", {"devices": [*contract("devices"), column]}, format="json"
    )
    assert response.status_code == 400
    assert problem in response.json()["detail"], response.json()


def test_the_id_and_name_columns_stay(db, client_for):
    columns = [c for c in contract("vms") if c["source"] != "contract:ID"]
    response = client_for("admin").put("/api/exports/columns/", {"vms": columns}, format="json")
    assert response.status_code == 400 and "contract:ID" in response.json()["detail"]


def test_a_viewer_cannot_change_the_set_but_reads_it(db, client_for):
    viewer = client_for("viewer")
    assert viewer.get("/api/exports/columns/").json() == ColumnSet().as_dict()
    assert viewer.put("/api/exports/columns/", {"devices": contract("devices")}, format="json").status_code == 403
    assert (
        viewer.post("/api/exports/columns/preview/", {"devices": contract("devices")}, format="json").status_code == 403
    )


def test_preview_shows_the_first_rows_from_the_snapshots_without_asking_netbox(netbox, client_for):
    run_export()
    admin = client_for("admin")
    admin.get("/api/exports/columns/")
    netbox.reset_log()
    body = {"devices": [*custom_device_set(), PATH_COLUMN]}
    response = admin.post("/api/exports/columns/preview/", body, format="json")
    assert response.status_code == 200, response.json()
    preview = response.json()
    devices = preview["devices"]
    assert devices["columns"][-4:] == ["Backup policy", "Cost center", "Bought", "Type slug"]
    assert len(devices["rows"]) == 20 and len(preview["vms"]["rows"]) == 20
    first = sorted(netbox.devices, key=lambda device: device["id"])[0]
    row = dict(zip(devices["columns"], devices["rows"][0], strict=True))
    assert row["ID"] == first["id"] and row["Name"] == first["name"]
    assert row["Cost center"] == (first["custom_fields"]["cost_center"] or "")
    # No device or VM was asked of NetBox (the custom fields' definitions, at most, for the check).
    paths = {request.path for request in netbox.requests}
    assert not any("devices" in path or "virtual-machines" in path for path in paths), paths
    # A path the snapshots did not keep yet is empty in the preview; nothing was saved.
    assert row["Type slug"] == ""
    assert admin.get("/api/exports/columns/").json() == ColumnSet().as_dict()


def admin_lines(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    page = client.get("/admin/exports/columnset/")
    assert page.status_code == 200
    form = page.context["form"]
    return {"devices": form.initial["devices"], "vms": form.initial["vms"]}


def test_admin_page_previews_saves_and_names_problems(netbox, client_for):
    run_export()
    admin = client_for("admin")
    lines = admin_lines(admin)
    assert lines["devices"].splitlines()[0] == "Name | contract:Name | text"
    devices = lines["devices"].replace(
        "Serial number | contract:Serial number | text", "Serial | contract:Serial number"
    )
    devices += "\nCost center | cf:cost_center\nPlatform slug | field:platform.slug | text"
    # Preview: the first rows with the proposed columns, nothing saved.
    preview = admin.post("/admin/exports/columnset/", {**lines, "devices": devices, "_preview": "1"})
    assert preview.status_code == 200
    html = preview.content.decode()
    assert '<th scope="col">Cost center</th>' in html and '<th scope="col">Serial</th>' in html
    assert admin.get("/api/exports/columns/").json() == ColumnSet().as_dict()
    # An unknown custom field: the form names it and NetBox's fields.
    bad = admin.post("/admin/exports/columnset/", {**lines, "devices": devices + "\nOwner | cf:owner", "_save": "1"})
    assert bad.status_code == 200 and "owner" in bad.content.decode() and "cost_center" in bad.content.decode()
    # Save: audited as coming from the admin.
    saved = admin.post("/admin/exports/columnset/", {**lines, "devices": devices, "_save": "1"})
    assert saved.status_code == 302
    headers = [column["header"] for column in admin.get("/api/exports/columns/").json()["devices"]]
    assert headers[-2:] == ["Cost center", "Platform slug"] and "Serial" in headers
    assert AuditEntry.objects.get(action="columns.replace").source == AuditEntry.Source.ADMIN
    # The run page shows the set a run used.
    run = run_export()
    page = admin.get(f"/admin/exports/exportrun/{run.pk}/change/").content.decode()
    assert "field:platform.slug" in page and "Platform slug" in page
    web = admin.get(f"/exports/runs/{run.pk}/").content.decode()
    assert 'id="columns"' in web and "<code>field:platform.slug</code>" in web


def test_admin_page_is_for_column_managers_only(db, client_for):
    assert client_for("operator").get("/admin/exports/columnset/").status_code in (302, 403)


def test_quality_rules_read_the_operators_columns(netbox, client_for):
    from quality.models import QualityAllowedValues, QualityRequiredColumn

    devices_set = custom_device_set()
    assert client_for("admin").put("/api/exports/columns/", {"devices": devices_set}, format="json").status_code == 200
    QualityAllowedValues.objects.create(column="Backup policy", values="daily\nweekly")
    QualityRequiredColumn.objects.create(column="Cost center", kinds=QualityRequiredColumn.Kinds.DEVICES)
    run = run_export()
    findings = read_csv(files_of(run)["data_quality.csv"])
    policies = {int(d["id"]): d["custom_fields"]["backup_policy"] for d in netbox.devices}
    flagged = {int(f["id"]) for f in findings if f["rule"] == "allowed_backup_policy"}
    assert flagged and flagged == {i for i, v in policies.items() if v and v.casefold() not in ("daily", "weekly")}
    missing = {int(f["id"]) for f in findings if f["rule"] == "missing_cost_center" and f["kind"] == "device"}
    assert missing == {d["id"] for d in netbox.devices if d["custom_fields"]["cost_center"] is None}
    # The renamed Serial number column is still the one the built-in rule reads.
    counts = {count.rule: count for count in run.quality_counts.all()}
    assert counts["device_no_serial"].error == "" and counts["allowed_backup_policy"].count == len(flagged)


def custom_export(netbox, client_for) -> ExportRun:  # type: ignore[no-untyped-def]
    vm_columns = [*contract("vms"), {"header": "Cost center", "source": "cf:cost_center"}]
    body = {"devices": custom_device_set(), "vms": vm_columns}
    assert client_for("admin").put("/api/exports/columns/", body, format="json").status_code == 200
    run = run_export()
    assert run.status == ExportRun.Status.SUCCEEDED
    return run


def test_the_cmdb_api_filters_and_sorts_the_operators_columns_by_their_types(netbox, client_for):
    custom_export(netbox, client_for)
    viewer = client_for("viewer")
    costs = sorted(d["custom_fields"]["cost_center"] for d in netbox.devices if d["custom_fields"]["cost_center"])
    threshold = costs[len(costs) // 2]
    columns = {c["label"]: c for c in viewer.get("/api/cmdb/devices/rows/?limit=1").json()["columns"]}
    assert columns["Cost center"]["kind"] == "number" and columns["Bought"]["kind"] == "date"
    assert columns["Backup policy"]["kind"] == "text" and "Serial" in columns and "Comments" not in columns
    body = viewer.get(f"/api/cmdb/devices/rows/?cost_center__gte={threshold}&limit=500").json()
    found = sorted(row["cost_center"] for row in body["results"])
    assert found == [cost for cost in costs if cost >= threshold]
    # A date column filters as dates, and the merged dataset carries the columns of both.
    bought = viewer.get("/api/cmdb/devices/rows/?bought__gte=2023-01-01&limit=500").json()["results"]
    assert bought and all(row["bought"] >= "2023-01-01" for row in bought)
    merged = viewer.get(f"/api/cmdb/merged/rows/?cost_center__gte={threshold}&limit=500").json()["results"]
    assert {row["netbox_type"] for row in merged} <= {"devices", "vms"} and len(merged) >= len(found)


def test_the_chat_finds_and_counts_by_the_operators_columns(netbox, client_for):
    import json

    from chat.tools import tool_run

    custom_export(netbox, client_for)
    device = next(d for d in netbox.devices if d["custom_fields"]["backup_policy"])
    policy = device["custom_fields"]["backup_policy"]
    found = json.loads(tool_run(name="search_inventory", arguments=json.dumps({"where": {"Backup policy": policy}})))
    assert device["name"] in {row["Name"] for row in found["results"]}
    assert all(policy.casefold() in row["Backup policy"].casefold() for row in found["results"])
    counted = json.loads(tool_run(name="count_inventory", arguments=json.dumps({"group_by": "cost center"})))
    assert counted["group_by"] == "Cost center" and counted["total"] == 100


def test_the_workbook_order_setting_follows_renamed_and_hidden_contract_columns():
    column_set = ColumnSet.from_dict(
        {
            "devices": [
                {**column.as_dict(), "header": "Asset"}
                if column.name == "Asset tag"
                else {**column.as_dict(), "visible": column.name != "Rack"}
                for column in default_columns("devices")
            ]
        }
    )
    order = column_set.workbook_order(["Asset tag", "Rack", "Name", "ID"])
    assert order[:3] == ("Asset", "Name", "ID") and "Rack" not in order
    assert set(order) == set(column_set.merged_columns)
    with pytest.raises(ValueError, match="No such column"):
        column_set.workbook_order(["No such column"])


def test_paths_and_custom_fields_render_by_type():
    from exports.render import render_typed
    from integrations.netbox.records import device_from_api, path_value

    data = {
        "id": 7,
        "tags": [{"name": "web"}, {"name": "Alpha"}, {"name": "web"}],
        "device_type": {"slug": "r650", "manufacturer": {"slug": "dell"}},
        "primary_ip4": None,
        "position": 41.0,
    }
    assert path_value(data, "device_type.manufacturer.slug") == "dell"
    assert path_value(data, "primary_ip4.dns_name") is None
    assert path_value(data, "tags.name") == ["web", "Alpha", "web"]
    assert path_value(data, "tags.0.name") == "web"
    record = device_from_api(data, paths=("tags.name", "position", "nope.deeper"))
    assert record.extra == {"tags.name": ["web", "Alpha", "web"], "position": 41.0, "nope.deeper": None}
    assert render_typed(record.extra["tags.name"], "text") == "Alpha, web"  # joined like Tags
    assert render_typed(41.0, "integer") == 41 and render_typed(41.0, "text") == "41"
    assert render_typed("12.50", "decimal") == 12.5 and render_typed("n/a", "decimal") == ""
    assert render_typed(True, "boolean") == "True" and render_typed(None, "boolean") == ""
    assert render_typed("2024-05-01T10:00:00.123456+02:00", "datetime") == "2024-05-01T08:00:00Z"
    assert render_typed({"name": "Gold", "id": 3}, "text") == "Gold"


def test_the_chat_aliases_follow_a_renamed_contract_column(netbox, client_for):
    import json

    from chat.tools import tool_run

    body = {
        dataset: [
            {**column, "header": "Datacenter"} if column["source"] == "contract:Site" else column
            for column in contract(dataset)
        ]
        for dataset in ("devices", "vms")
    }
    assert client_for("admin").put("/api/exports/columns/", body, format="json").status_code == 200
    run_export()
    site = netbox.devices[0]["site"]["name"]
    found = json.loads(tool_run(name="search_inventory", arguments=json.dumps({"site": site, "type": "device"})))
    assert found["total"] == sum(1 for d in netbox.devices if d["site"]["name"] == site)
    assert all(row["Datacenter"] == site for row in found["results"])
    counted = json.loads(tool_run(name="count_inventory", arguments=json.dumps({"group_by": "site"})))
    assert counted["group_by"] == "Datacenter" and counted["total"] == 100
