"""Named views of the CMDB grid: personal or shared, listed for whoever may see them, changed only by the owner or
an admin."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cmdb.models import CmdbNamedView

VIEW = {"filters": {"site": {"op": "contains", "value": "fra1"}}, "ordering": ["-name"], "q": "", "hidden": ["rack"]}


@pytest.fixture
def people(make_user):
    def client(user):
        c = APIClient()
        c.force_login(user)
        return c

    ann, ben, boss = make_user("viewer", "ann"), make_user("operator", "ben"), make_user("admin", "boss")
    return client(ann), client(ben), client(boss)


def test_a_personal_view_is_its_owners_and_a_shared_one_everyones(db, people):
    ann, ben, _ = people
    mine = ann.post("/api/cmdb/views/", {"name": "FRA servers", "dataset": "devices", "view": VIEW}, format="json")
    assert mine.status_code == 201, mine.json()
    body = mine.json()
    assert body["mine"] and body["can_edit"] and not body["shared"] and body["owner"] == "ann"
    assert body["view"]["filters"] == {"site": {"op": "contains", "value": "fra1", "value2": ""}}
    assert body["view"]["hidden"] == ["rack"] and body["url"] == f"/cmdb/?view={body['id']}"
    assert [v["name"] for v in ben.get("/api/cmdb/views/").json()] == []
    assert ben.get(f"/api/cmdb/views/{body['id']}/").status_code == 404

    shared = ann.post(
        "/api/cmdb/views/", {"name": "All VMs", "dataset": "vms", "shared": True, "view": {}}, format="json"
    ).json()
    seen = ben.get("/api/cmdb/views/").json()
    assert [(v["name"], v["owner"], v["mine"], v["can_edit"]) for v in seen] == [("All VMs", "ann", False, False)]
    assert ben.get("/api/cmdb/views/?dataset=devices").json() == []
    assert ben.get(f"/api/cmdb/views/{shared['id']}/").json()["name"] == "All VMs"


def test_only_the_owner_or_an_admin_changes_or_deletes(db, people):
    ann, ben, boss = people
    view = ann.post(
        "/api/cmdb/views/", {"name": "Shared", "dataset": "merged", "shared": True, "view": VIEW}, format="json"
    ).json()
    url = f"/api/cmdb/views/{view['id']}/"
    assert ben.patch(url, {"name": "Mine now"}, format="json").status_code == 403
    assert ben.delete(url).status_code == 403
    renamed = ann.patch(url, {"name": "Frankfurt", "view": {"q": "srv"}}, format="json").json()
    assert renamed["name"] == "Frankfurt" and renamed["view"]["q"] == "srv" and renamed["view"]["filters"] == {}
    assert boss.get(url).json()["can_edit"] is True
    assert boss.patch(url, {"shared": False}, format="json").json()["shared"] is False
    assert ben.get(url).status_code == 404  # no longer shared
    assert boss.delete(url).status_code == 204
    assert not CmdbNamedView.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "", "dataset": "devices", "view": {}}, "name"),
        ({"name": "x", "dataset": "nope", "view": {}}, "dataset"),
        ({"name": "x", "dataset": "devices", "view": {"density": "huge"}}, "density"),
        ({"name": "x", "dataset": "devices", "view": {"filters": {"site": {"op": "like"}}}}, "filters"),
        ({"name": "x" * 101, "dataset": "devices", "view": {}}, "name"),
        ({"name": "x", "dataset": "devices"}, "view"),
    ],
)
def test_bad_views_are_400s_naming_the_field(db, people, payload, field):
    ann, _, _ = people
    response = ann.post("/api/cmdb/views/", payload, format="json")
    assert response.status_code == 400 and field in str(response.json())


def test_names_are_unique_per_owner_and_dataset(db, people):
    ann, ben, _ = people
    payload = {"name": "Mine", "dataset": "devices", "view": {}}
    assert ann.post("/api/cmdb/views/", payload, format="json").status_code == 201
    again = ann.post("/api/cmdb/views/", payload, format="json")
    assert again.status_code == 400 and "already have" in again.json()["name"][0]
    assert ann.post("/api/cmdb/views/", {**payload, "dataset": "vms"}, format="json").status_code == 201
    assert ben.post("/api/cmdb/views/", payload, format="json").status_code == 201


def test_pick_from_values_filters_are_kept(db, people):
    ann, _, _ = people
    view = {"filters": {"status": {"op": "in", "values": ["Active", "Planned", "Active"]}}}
    body = ann.post("/api/cmdb/views/", {"name": "Live", "dataset": "devices", "view": view}, format="json").json()
    assert body["view"]["filters"]["status"]["values"] == ["Active", "Planned"]


def test_named_views_need_export_download(db, api_client, make_user):
    assert api_client.get("/api/cmdb/views/").status_code in (401, 403)
    from django.contrib.auth.models import Group

    nobody = make_user("viewer")
    Group.objects.get(name="viewer").permissions.clear()
    client = APIClient()
    client.force_login(nobody)
    assert client.get("/api/cmdb/views/").status_code == 403
    assert client.post("/api/cmdb/views/", {}, format="json").status_code == 403
