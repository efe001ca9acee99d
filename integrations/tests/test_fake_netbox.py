"""The fake NetBox must answer like NetBox 4.6 does, or tests against it prove nothing.

Where a sample response exists, the fake's answer to the same request must equal it (with the server address
swapped in).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from devtools.netbox import MAX_PAGE_SIZE, FakeNetbox
from integrations.tests.conftest import load_sample


def get(netbox: FakeNetbox, path: str, params: Any = None, authorization: str | None = "default") -> requests.Response:
    headers = {}
    if authorization == "default":
        headers["Authorization"] = f"Token {netbox.token}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    return requests.get(f"{netbox.url}{path}", params=params, headers=headers, timeout=10)


def key_shape(value: Any) -> Any:
    """The nested key structure of a JSON value (dict keys in order, the first element of lists)."""
    if isinstance(value, dict):
        return {key: key_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [key_shape(value[0])] if value else []
    return None


# -- the sample requests, answered exactly -----------------------------------------------------------------------


def test_device_page_equals_the_sample_page() -> None:
    with FakeNetbox(devices=2000, vms=0) as netbox:
        response = get(netbox, "/api/dcim/devices/", {"limit": 25, "ordering": "id", "exclude": "config_context"})
        assert response.status_code == 200
        assert response.json() == load_sample("devices_page.json", netbox.url)


def test_virtual_machine_page_equals_the_sample_page_except_host_devices() -> None:
    with FakeNetbox(devices=50, vms=3000) as netbox:
        params = {"limit": 25, "ordering": "id", "exclude": "config_context"}
        page = get(netbox, "/api/virtualization/virtual-machines/", params).json()
        sample = load_sample("virtual_machines_page.json", netbox.url)
        device_ids = {d["id"] for d in netbox.devices}
        for served, expected in zip(page["results"], sample["results"], strict=True):
            # The samples name hosts of the real NetBox; the fake points them at hypervisors it serves.
            assert (served["device"] is None) == (expected["device"] is None)
            if served["device"]:
                assert served["device"]["id"] in device_ids
                assert key_shape(served["device"]) == key_shape(expected["device"])
            assert {**served, "device": None} == {**expected, "device": None}
        assert {k: page[k] for k in ("count", "next", "previous")} == {
            k: sample[k] for k in ("count", "next", "previous")
        }


def test_middle_page_with_dynamic_fields_equals_the_sample(fake_netbox: FakeNetbox) -> None:
    params = {"limit": 2, "offset": 4, "ordering": "id", "exclude": "config_context", "fields": "id,name"}
    page = get(fake_netbox, "/api/dcim/devices/", params).json()
    sample = load_sample("devices_paging_middle.json", fake_netbox.url)
    assert page == {**sample, "count": 50}


def test_id_last_updated_listing_equals_the_sample(fake_netbox: FakeNetbox) -> None:
    page = get(fake_netbox, "/api/dcim/devices/", {"limit": 5, "ordering": "id", "fields": "id,last_updated"}).json()
    assert page == {**load_sample("devices_id_last_updated.json", fake_netbox.url), "count": 50}


def test_device_detail_equals_the_sample_with_config_context(fake_netbox: FakeNetbox) -> None:
    response = get(fake_netbox, "/api/dcim/devices/7/")
    assert response.status_code == 200
    assert response.json() == load_sample("device_detail_with_config_context.json", fake_netbox.url)
    assert list(response.json()) == list(load_sample("device_detail_with_config_context.json", fake_netbox.url))
    assert fake_netbox.stats["config_context_renders"] == 1


@pytest.mark.parametrize(
    ("path", "params", "sample"),
    [
        ("/api/status/", None, "status.json"),
        ("/api/dcim/sites/", {"limit": 10}, "sites_page.json"),
        ("/api/tenancy/tenants/", {"limit": 10}, "tenants_page.json"),
        ("/api/extras/custom-fields/", {"limit": 50}, "custom_fields.json"),
    ],
)
def test_reference_endpoints_equal_the_samples(
    fake_netbox: FakeNetbox, path: str, params: dict[str, Any] | None, sample: str
) -> None:
    assert get(fake_netbox, path, params).json() == load_sample(sample, fake_netbox.url)


def test_errors_have_netboxs_bodies(fake_netbox: FakeNetbox) -> None:
    bad_filter = get(fake_netbox, "/api/dcim/devices/", {"status": "bogus", "limit": 1})
    assert (bad_filter.status_code, bad_filter.json()) == (400, load_sample("error_bad_filter.json", ""))
    missing = get(fake_netbox, "/api/dcim/devices/99999999/")
    assert (missing.status_code, missing.json()) == (404, load_sample("error_not_found.json", ""))
    bad_token = get(fake_netbox, "/api/dcim/devices/", {"limit": 1}, authorization="Token " + "f" * 40)
    assert (bad_token.status_code, bad_token.json()) == (403, load_sample("error_invalid_token.json", ""))


# -- authentication --------------------------------------------------------------------------------------------


def test_v1_token_and_v2_bearer_token_are_accepted() -> None:
    v2 = "nbt_4Fq9xk2LmN0p.Zq8sT1vW3yB5dF7hJ9kL2nP4rS6uX8z"
    with FakeNetbox(devices=3, vms=0, token=v2) as netbox:
        assert get(netbox, "/api/status/", authorization=f"Bearer {v2}").status_code == 200
        # NetBox infers the version from the nbt_ prefix, not from the keyword.
        assert get(netbox, "/api/status/", authorization=f"Token {v2}").status_code == 200
        wrong = get(netbox, "/api/status/", authorization="Bearer nbt_4Fq9xk2LmN0p.wrong")
        assert (wrong.status_code, wrong.json()) == (403, {"detail": "Invalid v2 token"})
    with FakeNetbox(devices=3, vms=0) as netbox:
        assert get(netbox, "/api/status/", authorization=f"Token {netbox.token}").status_code == 200


def test_missing_or_unknown_authorization_is_not_authenticated(fake_netbox: FakeNetbox) -> None:
    for authorization in (None, "Basic dXNlcjpwYXNz"):
        response = get(fake_netbox, "/api/dcim/devices/", authorization=authorization)
        assert (response.status_code, response.json()) == (
            403,
            {"detail": "Authentication credentials were not provided."},
        )


def test_revoked_token_is_rejected(fake_netbox: FakeNetbox) -> None:
    fake_netbox.revoke_token()
    response = get(fake_netbox, "/api/status/", authorization="Token 0123456789abcdef0123456789abcdef01234567")
    assert (response.status_code, response.json()) == (403, {"detail": "Invalid v1 token"})


# -- paging, ordering, filters and dynamic fields -------------------------------------------------------------


def test_paging_links_keep_every_parameter_sorted_by_key(fake_netbox: FakeNetbox) -> None:
    params = [("ordering", "id"), ("limit", "20"), ("exclude", "config_context"), ("offset", "20")]
    page = get(fake_netbox, "/api/dcim/devices/", params).json()
    base = f"{fake_netbox.url}/api/dcim/devices/"
    assert list(page) == ["count", "next", "previous", "results"]
    assert page["count"] == 50
    assert [d["id"] for d in page["results"]] == list(range(21, 41))
    assert page["next"] == f"{base}?exclude=config_context&limit=20&offset=40&ordering=id"
    # DRF drops offset from the link back to the first page.
    assert page["previous"] == f"{base}?exclude=config_context&limit=20&ordering=id"
    last = get(fake_netbox, "/api/dcim/devices/", {"ordering": "id", "limit": 20, "offset": 40}).json()
    assert last["next"] is None
    assert len(last["results"]) == 10


def test_limit_zero_means_max_page_size_and_larger_limits_are_clamped() -> None:
    with FakeNetbox(devices=1100, vms=0) as netbox:
        for limit in (0, 1000, 5000):
            page = get(netbox, "/api/dcim/devices/", {"limit": limit, "ordering": "id", "fields": "id"}).json()
            assert len(page["results"]) == MAX_PAGE_SIZE
            assert page["next"] == f"{netbox.url}/api/dcim/devices/?fields=id&limit=1000&offset=1000&ordering=id"
        default = get(netbox, "/api/dcim/devices/", {"fields": "id"}).json()
        assert len(default["results"]) == 50


def test_default_ordering_is_name_then_id_and_ordering_parameter_is_honoured(fake_netbox: FakeNetbox) -> None:
    names = [d["name"] for d in get(fake_netbox, "/api/dcim/devices/", {"fields": "name"}).json()["results"]]
    assert names == sorted(names)
    ids = [d["id"] for d in get(fake_netbox, "/api/dcim/devices/", {"ordering": "-id", "limit": 5}).json()["results"]]
    assert ids == [50, 49, 48, 47, 46]


def test_fields_keep_the_serializer_order_and_omit_and_brief_trim(fake_netbox: FakeNetbox) -> None:
    page = get(fake_netbox, "/api/dcim/devices/", {"fields": "last_updated,id", "limit": 1}).json()
    assert list(page["results"][0]) == ["id", "last_updated"]
    omitted = get(fake_netbox, "/api/dcim/devices/1/", {"omit": "comments,custom_fields"}).json()
    assert "comments" not in omitted and "custom_fields" not in omitted and "serial" in omitted
    brief = get(fake_netbox, "/api/virtualization/virtual-machines/", {"brief": 1, "limit": 1}).json()
    assert list(brief["results"][0]) == ["id", "url", "display", "name", "description"]


def test_id_filters(fake_netbox: FakeNetbox) -> None:
    repeated = get(fake_netbox, "/api/dcim/devices/", [("id", "3"), ("id", "5"), ("id", "999"), ("ordering", "id")])
    assert [d["id"] for d in repeated.json()["results"]] == [3, 5]
    listed = get(fake_netbox, "/api/virtualization/virtual-machines/", {"id__in": "7,8,9", "ordering": "id"})
    assert [d["id"] for d in listed.json()["results"]] == [7, 8, 9]
    bad = get(fake_netbox, "/api/dcim/devices/", {"id": "x"})
    assert (bad.status_code, bad.json()) == (400, {"id": ["Enter a number."]})


def test_last_updated_gte_returns_only_changed_objects(fake_netbox: FakeNetbox) -> None:
    newest = max(d["last_updated"] for d in fake_netbox.devices)
    changed = fake_netbox.update_device(7, description="moved")
    assert changed["last_updated"] > newest
    page = get(fake_netbox, "/api/dcim/devices/", {"last_updated__gte": changed["last_updated"], "fields": "id"})
    assert page.json()["results"] == [{"id": 7}]
    # Any ISO form NetBox accepts, including an offset.
    everything = get(fake_netbox, "/api/dcim/devices/", {"last_updated__gte": "2000-01-01T01:00:00+01:00"})
    assert everything.json()["count"] == 50
    bad = get(fake_netbox, "/api/dcim/devices/", {"last_updated__gte": "yesterday"})
    assert (bad.status_code, bad.json()) == (400, {"last_updated__gte": ["Enter a valid date/time."]})


def test_config_context_is_rendered_unless_excluded_and_counted(fake_netbox: FakeNetbox) -> None:
    with_context = get(fake_netbox, "/api/dcim/devices/", {"limit": 5}).json()
    assert all("config_context" in d for d in with_context["results"])
    assert fake_netbox.stats["config_context_renders"] == 5
    # fields= trims the output but, as in NetBox, does not skip the expensive query.
    get(fake_netbox, "/api/dcim/devices/", {"limit": 5, "fields": "id"})
    assert fake_netbox.stats["config_context_renders"] == 10
    excluded = get(fake_netbox, "/api/virtualization/virtual-machines/", {"limit": 5, "exclude": "config_context"})
    assert not any("config_context" in d for d in excluded.json()["results"])
    assert fake_netbox.stats["config_context_renders"] == 10


def test_missing_trailing_slash_redirects_like_django(fake_netbox: FakeNetbox) -> None:
    response = get(fake_netbox, "/api/dcim/devices", {"limit": 1})
    assert response.status_code == 200
    assert response.history[0].status_code == 301


# -- generated objects ------------------------------------------------------------------------------------------


def test_generated_objects_have_the_sample_shapes(fake_netbox: FakeNetbox) -> None:
    sample_device = load_sample("devices_page.json", fake_netbox.url)["results"][6]
    sample_vm = load_sample("virtual_machines_page.json", fake_netbox.url)["results"][0]
    for device in fake_netbox.devices:
        assert list(device) == list(sample_device)
    for vm in fake_netbox.vms:
        assert list(vm) == list(sample_vm)
    generated = next(d for d in fake_netbox.devices if d["id"] > 25 and d["tenant"] and d["primary_ip4"])
    for key in ("site", "tenant", "status", "primary_ip4", "device_type", "role"):
        reference = next(d[key] for d in load_sample("devices_page.json", "")["results"] if d[key])
        assert key_shape(generated[key]) == key_shape(reference)
    sample_assignment = load_sample("contact_assignments_page.json", fake_netbox.url)["results"][0]
    object_types = set()
    for assignment in fake_netbox.contact_assignments:
        assert key_shape(assignment) == key_shape(sample_assignment)
        object_types.add(assignment["object_type"])
    assert object_types == {"dcim.device", "virtualization.virtualmachine"}


def test_edge_case_devices_are_kept(fake_netbox: FakeNetbox) -> None:
    devices = {d["id"]: d for d in fake_netbox.devices}
    assert devices[1]["serial"] == "000417"
    assert devices[2]["description"].startswith("=")
    assert devices[3]["name"] == "edge-<lab>&test"
    assert devices[4]["name"] == "sw-zürich-01"
    assert "\n" in devices[3]["comments"]
    assert len(devices[5]["comments"]) == 5000


def test_generation_is_deterministic_and_names_and_ids_are_unique() -> None:
    with FakeNetbox(devices=300, vms=400, seed=7) as first, FakeNetbox(devices=300, vms=400, seed=7) as second:
        assert [d["serial"] for d in first.devices] == [d["serial"] for d in second.devices]
        assert len({d["name"] for d in first.devices}) == 300
        assert len({v["name"] for v in first.vms}) == 400
        assert {v["status"]["value"] for v in first.vms} > {"active", "planned"}
        assert len({d["tenant"]["id"] if d["tenant"] else None for d in first.devices}) == 6


def test_some_devices_sit_in_a_parent_bay_or_a_virtual_chassis(fake_netbox: FakeNetbox) -> None:
    children = [d for d in fake_netbox.devices if d["parent_device"]]
    members = [d for d in fake_netbox.devices if d["virtual_chassis"]]
    assert children and members
    child = children[0]
    parent = next(d for d in fake_netbox.devices if d["id"] == child["parent_device"]["id"])
    # DeviceSerializer.get_parent_device: NestedDeviceSerializer plus the NestedDeviceBaySerializer of the bay.
    assert list(child["parent_device"]) == ["id", "url", "display_url", "display", "name", "device_bay"]
    assert list(child["parent_device"]["device_bay"]) == ["id", "url", "display_url", "display", "device", "name"]
    assert child["parent_device"]["name"] == parent["name"]
    assert child["site"] == parent["site"]
    chassis = members[0]["virtual_chassis"]
    assert list(chassis) == ["id", "url", "display", "name", "master", "description", "member_count"]
    assert sorted(m["vc_position"] for m in members if m["virtual_chassis"]["id"] == chassis["id"]) == [1, 2]


def test_every_url_points_at_the_fake_itself(fake_netbox: FakeNetbox) -> None:
    for path in (
        "/api/dcim/devices/",
        "/api/virtualization/virtual-machines/",
        "/api/tenancy/contact-assignments/",
        "/api/dcim/sites/",
        "/api/tenancy/tenants/",
        "/api/extras/custom-fields/",
        "/api/dcim/devices/36/",
    ):
        text = get(fake_netbox, path, {"limit": 1000}).text
        assert "netbox.example.com" not in text
        assert fake_netbox.url in text


def test_contact_assignments_filter_by_object_type_and_object_id(fake_netbox: FakeNetbox) -> None:
    path = "/api/tenancy/contact-assignments/"
    for object_type in ("dcim.device", "virtualization.virtualmachine"):
        page = get(fake_netbox, path, {"object_type": object_type, "limit": 0}).json()
        assert page["count"] > 0
        assert {a["object_type"] for a in page["results"]} == {object_type}
    some = fake_netbox.contact_assignments[0]
    page = get(fake_netbox, path, {"object_type": some["object_type"], "object_id": some["object_id"]}).json()
    assert some["id"] in {a["id"] for a in page["results"]}
    assert {a["object_id"] for a in page["results"]} == {some["object_id"]}


# -- mutations ---------------------------------------------------------------------------------------------------


def test_mutations_are_served_at_once(fake_netbox: FakeNetbox) -> None:
    assert get(fake_netbox, "/api/dcim/devices/9/").json()["name"] == "lon1-srv001"
    fake_netbox.update_device(9, name="lon1-renamed")
    detail = get(fake_netbox, "/api/dcim/devices/9/").json()
    assert (detail["name"], detail["display"]) == ("lon1-renamed", "lon1-renamed")
    new_id = fake_netbox.add_device(name="brand-new")
    assert new_id == 51
    assert get(fake_netbox, f"/api/dcim/devices/{new_id}/").json()["name"] == "brand-new"
    vm_id = fake_netbox.add_vm()
    assert get(fake_netbox, "/api/virtualization/virtual-machines/", {"fields": "id"}).json()["count"] == 81
    fake_netbox.update_vm(vm_id, vcpus=64.0)
    assert get(fake_netbox, f"/api/virtualization/virtual-machines/{vm_id}/").json()["vcpus"] == 64.0
    device_id = next(a["object_id"] for a in fake_netbox.contact_assignments if a["object_type"] == "dcim.device")
    fake_netbox.delete_device(device_id)
    assert get(fake_netbox, f"/api/dcim/devices/{device_id}/").status_code == 404
    assignments = get(fake_netbox, "/api/tenancy/contact-assignments/", {"object_id": device_id, "limit": 0}).json()
    assert [a for a in assignments["results"] if a["object_type"] == "dcim.device"] == []
    fake_netbox.delete_vm(vm_id)
    assert get(fake_netbox, "/api/dcim/devices/", {"fields": "id"}).json()["count"] == 50


def _brute_force(objects: list[dict[str, Any]], since: str, low: int, high: int, ids: set[int]) -> list[int]:
    return [o["id"] for o in objects if o["last_updated"] >= since and low <= o["id"] < high and o["id"] in ids]


def test_filtered_listings_follow_every_change_as_an_index_would(fake_netbox: FakeNetbox) -> None:
    """The indexes behind id lists, id ranges, last_updated__gte and object_id are kept up to date object by
    object: after updates (stamps moved forwards and backwards), renames, additions and deletions, every filtered
    listing equals a filter of the live objects."""
    since = sorted(d["last_updated"] for d in fake_netbox.devices)[20]
    fake_netbox.update_device(3, description="later")
    fake_netbox.update_device(40, last_updated="2026-11-28T02:24:00.000001Z")  # to the oldest stamp
    fake_netbox.update_device(12, name="aaa-first")  # moves to the front of the default (name) ordering
    fake_netbox.update_vm(5, description="later")
    new_device = fake_netbox.add_device()
    fake_netbox.delete_device(30)
    fake_netbox.delete_vm(79)
    moved = fake_netbox.contact_assignments[0]
    target = next(d["id"] for d in fake_netbox.devices if d["id"] != moved["object_id"])
    if moved["object_type"] == "dcim.device":
        fake_netbox.update_contact_assignment(moved["id"], object_id=target)
    wanted = {3, 12, 29, 30, 31, 40, 44, new_device}
    for path, objects in (
        ("/api/dcim/devices/", fake_netbox.devices),
        ("/api/virtualization/virtual-machines/", fake_netbox.vms),
    ):
        params: list[tuple[str, Any]] = [("ordering", "id"), ("fields", "id"), ("limit", 0)]
        page = get(fake_netbox, path, [*params, ("last_updated__gte", since)]).json()
        assert [o["id"] for o in page["results"]] == _brute_force(objects, since, 0, 10**9, {o["id"] for o in objects})
        page = get(fake_netbox, path, [*params, ("id__gte", 10), ("id__lt", 45), ("id__gt", 11)]).json()
        assert [o["id"] for o in page["results"]] == _brute_force(objects, "", 12, 45, {o["id"] for o in objects})
        page = get(fake_netbox, path, [*params, *(("id", i) for i in wanted), ("id__lte", 40)]).json()
        assert [o["id"] for o in page["results"]] == _brute_force(objects, "", 0, 41, wanted)
        by_name = get(fake_netbox, path, {"fields": "id", "limit": 0}).json()["results"]
        in_order = sorted(objects, key=lambda o: (o.get("name") or "", o["id"]))
        assert [o["id"] for o in by_name] == [o["id"] for o in in_order]
        recent = get(fake_netbox, path, {"fields": "id", "limit": 0, "last_updated__gte": since}).json()["results"]
        assert [o["id"] for o in recent] == [o["id"] for o in in_order if o["last_updated"] >= since]
    path = "/api/tenancy/contact-assignments/"
    for object_id in {moved["object_id"], target, 30}:
        page = get(fake_netbox, path, {"object_type": "dcim.device", "object_id": object_id, "limit": 0}).json()
        expected = [
            a["id"]
            for a in fake_netbox.contact_assignments
            if a["object_type"] == "dcim.device" and a["object_id"] == object_id
        ]
        assert [a["id"] for a in page["results"]] == expected


class _CountedObjects(dict[int, dict[str, Any]]):
    """A collection's objects, counting the reads of single objects."""

    reads = 0

    def __getitem__(self, key: int) -> dict[str, Any]:
        self.reads += 1
        return super().__getitem__(key)


def test_filtered_listings_read_only_the_objects_they_answer_with(fake_netbox: FakeNetbox) -> None:
    """Like NetBox's database with its indexes, an id list, an id range or ``last_updated__gte`` finds its objects
    without reading every object: a walk of a large listing filtered anew on every request cost as much as the
    export asking it (the benchmark's incremental run at 250,000 objects)."""
    collection = fake_netbox._collection("devices")
    collection.objects = objects = _CountedObjects(collection.objects)
    newest = max(d["last_updated"] for d in fake_netbox.devices)
    fake_netbox.update_device(7, description="moved")
    for params in (
        {"last_updated__gte": newest, "ordering": "id"},
        {"id__gte": 20, "id__lt": 23},
        [("id", 4), ("id", 9), ("ordering", "id")],
    ):
        objects.reads = 0
        assert get(fake_netbox, "/api/dcim/devices/", params).status_code == 200
        assert objects.reads <= 10, params


# -- faults and the request log -------------------------------------------------------------------------------


def test_fail_answers_the_given_status_the_given_number_of_times(fake_netbox: FakeNetbox) -> None:
    fake_netbox.fail("/api/dcim/devices/", status=503, times=2)
    assert [get(fake_netbox, "/api/dcim/devices/").status_code for _ in range(3)] == [503, 503, 200]
    assert get(fake_netbox, "/api/status/").status_code == 200
    fake_netbox.fail("/api/status/", status=429, retry_after=1)
    throttled = get(fake_netbox, "/api/status/")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert throttled.json() == {"detail": "Request was throttled. Expected available in 1 second."}


def test_bad_json_is_a_truncated_200(fake_netbox: FakeNetbox) -> None:
    fake_netbox.bad_json("/api/dcim/devices/")
    response = get(fake_netbox, "/api/dcim/devices/")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert get(fake_netbox, "/api/dcim/devices/").json()["count"] == 50


@pytest.mark.parametrize("mid_body", [True, False])
def test_drop_connection_breaks_the_response(fake_netbox: FakeNetbox, mid_body: bool) -> None:
    fake_netbox.drop_connection("/api/dcim/devices/", mid_body=mid_body)
    with pytest.raises(requests.exceptions.RequestException):
        get(fake_netbox, "/api/dcim/devices/", {"limit": 50})
    assert get(fake_netbox, "/api/dcim/devices/").status_code == 200


def test_latency_delays_every_request(fake_netbox: FakeNetbox) -> None:
    fake_netbox.latency = 0.2
    started = time.monotonic()
    get(fake_netbox, "/api/status/")
    assert time.monotonic() - started >= 0.2


def test_request_log_records_method_path_query_and_authorization(fake_netbox: FakeNetbox) -> None:
    fake_netbox.reset_log()
    get(fake_netbox, "/api/dcim/devices/", [("id", "1"), ("id", "2"), ("limit", "5")])
    [logged] = fake_netbox.requests
    assert logged.method == "GET"
    assert logged.path == "/api/dcim/devices/"
    assert logged.query == {"id": ["1", "2"], "limit": ["5"]}
    assert logged.authorization == f"Token {fake_netbox.token}"
    assert fake_netbox.stats["list_requests"] == 1
    fake_netbox.reset_log()
    assert fake_netbox.requests == [] and fake_netbox.stats == {}


def test_stop_closes_the_port(fake_netbox: FakeNetbox) -> None:
    url = fake_netbox.url
    session = requests.Session()
    assert session.get(f"{url}/api/status/", headers={"Authorization": f"Token {fake_netbox.token}"}).ok
    fake_netbox.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"{url}/api/status/", headers={"Authorization": f"Token {fake_netbox.token}"}, timeout=2)
