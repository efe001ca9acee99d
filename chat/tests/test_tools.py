"""The grounding tools, against the merged CSV of a real export of the fake NetBox."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from chat import tools
from exports import selectors as export_selectors
from exports.models import ExportRun


def run(tool: str, /, **arguments: object) -> dict:
    return json.loads(tools.tool_run(name=tool, arguments=json.dumps(arguments)))


def csv_rows(run_: ExportRun) -> list[dict[str, str]]:
    artifact = run_.artifacts.get(name="netbox_merged_export.csv")
    with export_selectors.artifact_path(artifact).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_tools_read_the_runs_mapped_table_file_which_holds_the_merged_csv(export):
    from cmdb.selectors import cmdb_source
    from cmdb.table import RowDicts
    from cmdb.tablefiles import TABLE_FILE

    run("search_inventory", site="FRA1")
    source = cmdb_source()
    artifact = export.artifacts.get(name="netbox_merged_export.csv")
    assert (export_selectors.artifact_path(artifact).parent / TABLE_FILE).is_file()
    rows = RowDicts(source.table)
    assert list(rows) == csv_rows(export)
    assert Counter(r["netbox_type"] for r in rows) == {"devices": 40, "vms": 60}
    # The rows are not kept a second time as Python dicts.
    assert not hasattr(export_selectors, "cmdb_rows_latest")


def test_tools_explain_that_there_is_no_export_yet(db):
    assert run("search_inventory", site="FRA1") == {"error": tools.NO_EXPORT}


def test_search_by_site_and_type_returns_total_and_summary_columns(export):
    rows = csv_rows(export)
    expected = [r["Name"] for r in rows if r["Site"] == "FRA1" and r["netbox_type"] == "devices"]
    assert expected, "the sample must have FRA1 devices"
    result = run("search_inventory", site="fra1", type="device")
    assert result["total"] == len(expected)
    assert [r["Name"] for r in result["results"]] == expected
    first = result["results"][0]
    assert first["type"] == "device" and first["Site"] == "FRA1"
    assert "Inventory items" not in first  # only the summary columns


def test_search_by_exact_ip_ignores_the_prefix_length_and_does_not_match_longer_addresses(export):
    rows = csv_rows(export)
    target = next(r for r in rows if r["IP Address"])
    address = target["IP Address"].split("/")[0]
    result = run("search_inventory", ip=address)
    assert [r["Name"] for r in result["results"]] == [target["Name"]]
    network = address.rsplit(".", 1)[0] + ".0/24"
    in_network = run("search_inventory", ip=network)
    assert in_network["total"] >= 1 and target["Name"] in [r["Name"] for r in in_network["results"]]


def test_search_by_tag_matches_whole_tags(export):
    rows = csv_rows(export)
    expected = [r["Name"] for r in rows if "lab" in [t.strip() for t in r["Tags"].split(",")]]
    result = run("search_inventory", tag="LAB", limit=50)
    assert result["total"] == len(expected) > 0
    assert all("lab" in r["Tags"] for r in result["results"])


def test_search_caps_results_at_the_limit_but_reports_the_total(export):
    result = run("search_inventory", limit=5)
    assert result["total"] == 100 and result["returned"] == 5 and len(result["results"]) == 5
    assert run("search_inventory")["returned"] == tools.MAX_ROWS


def test_count_active_devices_without_oob_ip_by_site(export):
    rows = csv_rows(export)
    expected = Counter(
        r["Site"] for r in rows if r["netbox_type"] == "devices" and r["Status"] == "Active" and not r["OOB IP"]
    )
    result = run("count_inventory", type="device", status="active", where={"OOB IP": None}, group_by="site")
    assert result["total"] == sum(expected.values())
    assert {c["value"]: c["count"] for c in result["counts"]} == dict(expected)
    assert result["group_by"] == "Site"


def test_count_by_tag_counts_each_tag(export):
    rows = csv_rows(export)
    expected = Counter(t.strip() for r in rows for t in r["Tags"].split(",") if t.strip())
    counts = {c["value"]: c["count"] for c in run("count_inventory", group_by="tag")["counts"]}
    assert {k: v for k, v in counts.items() if k != "(none)"} == dict(expected)


def test_show_object_returns_every_non_empty_column(export):
    rows = csv_rows(export)
    vm = next(r for r in rows if r["netbox_type"] == "vms" and r["Device"])
    result = run("show_object", name=vm["Name"].upper())
    assert result["total"] == 1
    assert result["results"][0] == {**{k: v for k, v in vm.items() if v and k != "netbox_type"}, "type": "vm"}


def test_show_object_unknown_name_suggests_similar_names(export):
    result = run("show_object", name="fra1")
    assert result["total"] == 0 and "fra1" in result["error"]
    assert result["similar_names"] and all("fra1" in n for n in result["similar_names"])


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("drop_tables", "{}", "Unknown tool"),
        ("search_inventory", "{not json", "not valid JSON"),
        ("search_inventory", "[1]", "must be a JSON object"),
        ("search_inventory", '{"colour": "red"}', "Unknown argument(s): colour"),
        ("count_inventory", '{"group_by": "Colour"}', "Unknown column 'Colour'"),
        ("search_inventory", '{"type": "router"}', '"type" must be'),
    ],
)
def test_bad_tool_calls_answer_a_readable_error_to_the_model(export, name, arguments, message):
    result = json.loads(tools.tool_run(name=name, arguments=arguments))
    assert message in result["error"]


def test_results_are_capped_in_size(export, monkeypatch):
    monkeypatch.setattr(tools, "MAX_RESULT_CHARS", 2000)
    text = tools.tool_run(name="search_inventory", arguments="{}")
    result = json.loads(text)
    assert len(text) <= 2000
    assert result["truncated"] is True and result["total"] == 100 and 0 < result["returned"] < 50
