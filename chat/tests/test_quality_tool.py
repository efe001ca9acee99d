"""The assistant's data_quality tool, over a real export of the fake NetBox."""

from __future__ import annotations

import json

import pytest

from chat import tools
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request


def run(**arguments: object) -> dict:
    return json.loads(tools.tool_run(name="data_quality", arguments=json.dumps(arguments)))


@pytest.fixture
def expired(netbox, db) -> dict:
    """An export where one device has an expired warranty."""
    device = netbox.devices[8]
    netbox.update_device(
        device["id"], custom_fields={**device["custom_fields"], "HW_warranty_expiration": "2001-01-31"}
    )
    export, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    assert export_run_execute(run=export).status == "succeeded"
    return device


def test_the_tool_is_registered_with_the_other_tools():
    assert "data_quality" in tools.tool_names()
    assert {"search_inventory", "count_inventory", "show_object"} <= set(tools.tool_names())


def test_without_filters_it_gives_the_counts_per_rule(expired):
    result = run()
    rules = {rule["rule"]: rule for rule in result["rules"]}
    assert rules["warranty_expired"]["count"] >= 1 and rules["warranty_expired"]["severity"] == "error"
    assert "results" not in result


def test_which_servers_at_a_site_have_an_expired_warranty(expired, settings):
    site = expired["site"]["name"]
    result = run(rule="warranty_expired", site=site.lower()[:3], type="device")
    names = [row["name"] for row in result["results"]]
    assert expired["name"] in names and result["total"] == len(names)
    row = next(r for r in result["results"] if r["name"] == expired["name"])
    assert row["value"] == "2001-01-31" and row["url"] == f"{settings.NETBOX_URL}/dcim/devices/{expired['id']}/"
    assert run(rule="warranty_expired", site="no-such-site")["total"] == 0


def test_wrong_calls_get_a_readable_error(expired):
    assert "Unknown rule" in run(rule="no_such_rule")["error"]
    assert "severity" in run(severity="fatal")["error"]
    assert "Unknown argument" in run(colour="red")["error"]
    assert run(severity="error", limit=1)["returned"] == 1


def test_no_export_yet(db):
    assert "export" in run()["error"].lower()
