"""Grounding: what each answer rests on, recorded from any tool's result, stored with the answer, in the API."""

from __future__ import annotations

import csv
import json

import pytest
from rest_framework.test import APIClient

from accounts.keys import encrypt
from accounts.models import GlobalKey
from accounts.roles import Role
from chat import tools
from chat.grounding import lookup_record
from chat.models import ChatMessage
from chat.services import chat_session_create
from devtools.llm import text, tool_call
from exports import selectors as export_selectors

PATHS = {"devices": "dcim/devices", "vms": "virtualization/virtual-machines"}


def _latest_rows() -> list[dict[str, str]]:
    """The merged CSV of the newest successful export, read with the csv module (what the CMDB holds)."""
    artifact = export_selectors.artifact_latest(name="netbox_merged_export.csv")
    assert artifact is not None
    with export_selectors.artifact_path(artifact).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _cmdb_ids() -> dict[tuple[str, str], str]:
    rows = _latest_rows()
    return {(row["Name"], row["netbox_type"]): row["ID"] for row in rows}


def test_search_rows_link_to_netbox_through_the_cmdb_when_the_tool_gives_no_id(export, netbox):
    arguments = json.dumps({"site": "FRA1"})
    result = tools.tool_run(name="search_inventory", arguments=arguments)
    parsed = json.loads(result)
    record = lookup_record(tool="search_inventory", arguments=arguments, result=result)

    assert (record["tool"], record["arguments"], record["total"]) == (
        "search_inventory",
        {"site": "FRA1"},
        parsed["total"],
    )
    assert record["returned"] == len(parsed["results"]) == len(record["rows"]) > 0
    assert {row["type"] for row in record["rows"]} == {"device", "vm"}  # FRA1 has both
    ids = _cmdb_ids()
    for row, found in zip(record["rows"], parsed["results"], strict=True):
        kind = "vms" if found["type"] == "vm" else "devices"
        assert row["name"] == found["Name"] and row["columns"]["Site"] == "FRA1"
        assert row["netbox_id"] == int(ids[(found["Name"], kind)])
        assert row["netbox_url"] == f"{netbox.url.rstrip('/')}/{PATHS[kind]}/{row['netbox_id']}/"


def test_show_object_rows_carry_their_own_id(export, netbox):
    name = next(iter(_cmdb_ids()))[0]
    arguments = json.dumps({"name": name})
    record = lookup_record(
        tool="show_object", arguments=arguments, result=tools.tool_run(name="show_object", arguments=arguments)
    )
    (row,) = record["rows"]
    assert row["name"] == name and str(row["netbox_id"]) == row["columns"]["ID"]
    assert row["netbox_url"].startswith(netbox.url.rstrip("/") + "/")


def test_any_tool_returning_rows_is_recorded_with_links(db, settings):
    settings.NETBOX_URL = "https://netbox.example.com/"
    result = {
        "total": 7,
        "rows": [
            {"name": "db-01", "kind": "device", "id": 12, "rule": "missing serial"},
            {"name": "vm-01", "netbox_type": "vms", "ID": "34", "rule": "no backup"},
            {"name": "orphan", "rule": "unknown type"},
        ],
    }
    record = lookup_record(tool="data_quality", arguments='{"rule": "all"}', result=json.dumps(result))
    assert (record["total"], record["returned"], record["error"]) == (7, 3, "")
    assert [(r["name"], r["type"], r["netbox_url"]) for r in record["rows"]] == [
        ("db-01", "device", "https://netbox.example.com/dcim/devices/12/"),
        ("vm-01", "vm", "https://netbox.example.com/virtualization/virtual-machines/34/"),
        ("orphan", "", ""),
    ]
    assert record["rows"][0]["columns"]["rule"] == "missing serial"


def test_the_global_netbox_key_address_is_the_one_linked(db, settings):
    settings.NETBOX_URL = "https://old.example.com"
    GlobalKey.objects.create(name="netbox", url="https://netbox.corp.example/", value_encrypted=encrypt("t0ken"))
    result = json.dumps({"total": 1, "results": [{"Name": "a", "type": "device", "ID": "5"}]})
    (row,) = lookup_record(tool="search_inventory", arguments="{}", result=result)["rows"]
    assert row["netbox_url"] == "https://netbox.corp.example/dcim/devices/5/"


@pytest.mark.parametrize("url", ["", "javascript:alert(1)//", "ftp://netbox.example.com"])
def test_rows_are_not_linked_without_an_http_netbox_address(db, settings, url):
    settings.NETBOX_URL = url
    result = json.dumps({"total": 1, "results": [{"Name": "a", "type": "device", "ID": "5"}]})
    (row,) = lookup_record(tool="search_inventory", arguments="{}", result=result)["rows"]
    assert (row["netbox_id"], row["netbox_url"]) == (5, "")


def test_counts_errors_and_junk_are_recorded_without_failing(db):
    counted = lookup_record(
        tool="count_inventory",
        arguments='{"group_by": "site"}',
        result=json.dumps({"total": 9, "group_by": "Site", "groups": 2, "counts": [{"value": "FRA1", "count": 5},
                                                                                  {"value": "AMS1", "count": 4}]}),
    )  # fmt: skip
    assert (counted["total"], counted["rows"], counted["group_by"]) == (9, [], "Site")
    assert counted["groups"] == [{"value": "FRA1", "count": 5}, {"value": "AMS1", "count": 4}]

    failed = lookup_record(tool="nope", arguments="{", result=json.dumps({"error": "Unknown tool 'nope'."}))
    assert failed["error"] == "Unknown tool 'nope'." and failed["arguments"] == {"_raw": "{"}
    assert failed["total"] is None and failed["rows"] == []

    junk = lookup_record(tool="x", arguments="[1]", result="not json")
    assert (junk["arguments"], junk["total"], junk["rows"]) == ({"_raw": [1]}, None, [])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_answer_stores_its_export_and_lookups_and_the_messages_api_returns_them(
    make_user, llm, export, netbox, stream
):
    alice = make_user(Role.MEMBER, username="alice")
    client = APIClient()
    client.force_login(alice)
    session = chat_session_create(owner=alice)
    llm.script(
        tool_call("search_inventory", {"type": "vm", "site": "AMS1"}),
        tool_call("count_inventory", {"group_by": "status"}),
        text("**Done.** <script>x</script> [ok](https://example.com) [bad](javascript:x)"),
    )
    extra = {"HTTP_ACCEPT": "text/event-stream"} if stream else {}
    response = client.post(
        f"/api/chat/sessions/{session.pk}/messages/", {"content": "VMs in AMS1?"}, format="json", **extra
    )
    assert response.status_code == 201
    if stream:
        body = b"".join(response.streaming_content).decode()
        assert body.count("event: lookup") == 2

    answer = ChatMessage.objects.get(session=session, role="assistant", tool_calls=[])
    assert answer.grounding["export"]["id"] == export.pk
    search, count = answer.grounding["lookups"]
    assert search["tool"] == "search_inventory" and search["arguments"] == {"type": "vm", "site": "AMS1"}
    assert search["total"] == len(search["rows"]) > 0 and {r["type"] for r in search["rows"]} == {"vm"}
    assert all(
        r["netbox_url"].startswith(f"{netbox.url.rstrip('/')}/virtualization/virtual-machines/") for r in search["rows"]
    )
    assert count["tool"] == "count_inventory" and count["total"] == 100 and count["groups"]

    listed = client.get(f"/api/chat/sessions/{session.pk}/messages/").json()["results"]
    final = listed[-1]
    assert final["id"] == answer.pk and final["grounding"] == json.loads(json.dumps(answer.grounding))
    assert final["interrupted"] == ""
    assert final["content_html"] == (
        '<p><strong>Done.</strong> &lt;script&gt;x&lt;/script&gt; <a href="https://example.com" '
        'rel="noopener noreferrer nofollow">ok</a> [bad](javascript:x)</p>\n'
    )
    assert listed[0]["content_html"] == "" and listed[0]["grounding"] == {}
