"""NetboxClient against the fake NetBox over real HTTP: the requests it sends, the records it returns, and how it
copes with a NetBox that fails, throttles, drops connections, answers garbage or changes mid-walk."""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.netbox import FakeNetbox, LoggedRequest
from integrations.exceptions import (
    IntegrationNotConfigured,
    NetboxAuthError,
    NetboxError,
    NetboxInconsistentData,
    NetboxUnavailable,
)
from integrations.netbox.client import NetboxClient, authorization_header, parse_extra_headers
from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    VM_OBJECT_TYPE,
    device_from_api,
    virtual_machine_from_api,
)

MakeClient = Callable[..., NetboxClient]


def list_requests(netbox: FakeNetbox, path: str) -> list[LoggedRequest]:
    return [r for r in netbox.requests if r.path == path]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- bulk fetches ----------------------------------------------------------------------------------------------


def test_fetch_devices_reads_every_device_in_ceil_count_over_page_requests(
    fake_netbox: FakeNetbox, make_client: MakeClient
) -> None:
    client = make_client(page_size=20)
    fake_netbox.reset_log()

    devices = client.fetch_devices()

    assert devices == [device_from_api(d) for d in fake_netbox.devices]
    assert [d.id for d in devices] == list(range(1, 51))
    logged = fake_netbox.requests
    assert len(logged) == math.ceil(50 / 20) == client.request_count
    for request in logged:
        assert request.path == "/api/dcim/devices/"
        assert request.query["limit"] == ["20"]
        assert request.query["ordering"] == ["id"]
        assert request.query["exclude"] == ["config_context"]
    assert sorted(int(r.query.get("offset", ["0"])[0]) for r in logged) == [0, 20, 40]
    assert fake_netbox.stats.get("detail_requests", 0) == 0
    assert fake_netbox.stats.get("config_context_renders", 0) == 0


def test_fetch_virtual_machines_fetches_pages_concurrently(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(page_size=10, workers=4)
    fake_netbox.reset_log()
    # One page, then 7 pages on 4 workers: the server holds the first 4 of them until all 4 are in flight.
    fake_netbox.gather_pages(4)

    vms = client.fetch_virtual_machines()

    assert vms == [virtual_machine_from_api(v) for v in fake_netbox.vms]
    assert len(fake_netbox.requests) == 8
    assert fake_netbox.stats.get("gather_timeouts", 0) == 0
    assert fake_netbox.stats["max_in_flight"] == 4


def test_fetch_reports_progress(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    seen: list[int] = []
    make_client(page_size=20).fetch_devices(progress=seen.append)
    assert seen == sorted(seen)
    assert seen[0] == 20
    assert seen[-1] == 50


def test_a_smaller_server_page_cap_is_followed() -> None:
    with FakeNetbox(devices=1100, vms=0) as netbox:
        client = NetboxClient(url=netbox.url, token=netbox.token, page_size=5000, backoff=0.01)
        devices = client.fetch_devices()
        assert len(devices) == 1100
        offsets = sorted(int(r.query.get("offset", ["0"])[0]) for r in netbox.requests)
        assert offsets == [0, 1000]


def test_fetch_sites_tenants_and_contact_assignments(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(page_size=1000)
    fake_netbox.reset_log()

    sites = client.fetch_sites()
    tenants = client.fetch_tenants()
    device_contacts = client.fetch_contact_assignments(DEVICE_OBJECT_TYPE)
    vm_contacts = client.fetch_contact_assignments(VM_OBJECT_TYPE)

    assert {s.name: s.region for s in sites}["AMS1"] == "Europe"
    assert [t.id for t in tenants] == [1, 2, 3, 4, 5]
    served = fake_netbox.contact_assignments
    assert {c.id for c in device_contacts} == {a["id"] for a in served if a["object_type"] == DEVICE_OBJECT_TYPE}
    assert {c.id for c in vm_contacts} == {a["id"] for a in served if a["object_type"] == VM_OBJECT_TYPE}
    assert all(c.contact and c.role and c.priority for c in device_contacts + vm_contacts)
    # One request per listing: no per-object lookups.
    assert len(fake_netbox.requests) == 4
    object_types = [r.query.get("object_type") for r in list_requests(fake_netbox, "/api/tenancy/contact-assignments/")]
    assert object_types == [[DEVICE_OBJECT_TYPE], [VM_OBJECT_TYPE]]
    with pytest.raises(ValueError):
        client.fetch_contact_assignments("dcim.site")


def test_contact_assignments_by_id_object_contact_and_role(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(page_size=1000)
    served = [a for a in fake_netbox.contact_assignments if a["object_type"] == VM_OBJECT_TYPE]
    objects = sorted({a["object_id"] for a in served})[:3]
    contact = served[0]["contact"]["id"]
    roles = sorted({a["role"]["id"] for a in served})[:2]
    fake_netbox.reset_log()

    by_id = client.fetch_contact_assignments_by(VM_OBJECT_TYPE, "id", [served[2]["id"], served[0]["id"], 10**6])
    by_object = client.fetch_contact_assignments_by(VM_OBJECT_TYPE, "object_id", objects)
    by_contact = client.fetch_contact_assignments(VM_OBJECT_TYPE, where=[("contact_id", contact)])
    by_role = client.fetch_contact_assignments(VM_OBJECT_TYPE, where=[("role_id", i) for i in roles])
    counted = client.count_contact_assignments(VM_OBJECT_TYPE, where=[("contact_id", contact)])

    assert [a.id for a in by_id] == [served[0]["id"], served[2]["id"]]
    assert [a.id for a in by_object] == [a["id"] for a in served if a["object_id"] in objects]
    assert [a.id for a in by_contact] == [a["id"] for a in served if a["contact"]["id"] == contact]
    assert counted == len(by_contact)
    assert [a.id for a in by_role] == [a["id"] for a in served if a["role"]["id"] in roles]
    for request in fake_netbox.requests:
        assert request.path == "/api/tenancy/contact-assignments/"
        assert request.query["object_type"] == [VM_OBJECT_TYPE]
    requests = fake_netbox.requests
    assert requests[0].query["id"] == [str(served[0]["id"]), str(served[2]["id"]), str(10**6)]
    assert requests[1].query["object_id"] == [str(i) for i in objects]
    assert requests[2].query["contact_id"] == [str(contact)]
    with pytest.raises(ValueError):
        client.fetch_contact_assignments_by("dcim.site", "id", [1])
    # NetBox answers an id that names no contact (a model choice filter) with a 400; so does the fake.
    with pytest.raises(NetboxError, match="contact_id: Select a valid choice"):
        client.fetch_contact_assignments(VM_OBJECT_TYPE, where=[("contact_id", 10**6)])


def test_status_goes_through_pynetbox_on_our_session_and_count_is_one_request(
    fake_netbox: FakeNetbox, make_client: MakeClient
) -> None:
    client = make_client(extra_headers={"X-Proxy-Key": "k1"})
    fake_netbox.reset_log()

    assert client.status()["netbox-version"] == "4.6.8"
    assert client.count("devices") == 50
    assert client.count("virtual_machines") == 80

    status_request, *count_requests = fake_netbox.requests
    assert status_request.path == "/api/status/"
    assert status_request.headers["X-Proxy-Key"] == "k1"
    assert [r.query["limit"] for r in count_requests] == [["1"], ["1"]]
    assert client.request_count == 3
    assert fake_netbox.stats.get("config_context_renders", 0) == 0


# -- change detection ------------------------------------------------------------------------------------------


def test_fetch_last_updated_uses_the_cheap_listing(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(page_size=30)
    fake_netbox.reset_log()

    stamps = client.fetch_last_updated("virtual_machines")

    assert stamps == {v["id"]: v["last_updated"] for v in fake_netbox.vms}
    for request in fake_netbox.requests:
        assert request.query["fields"] == ["id,last_updated"]
        assert request.query["exclude"] == ["config_context"]
        assert request.query["ordering"] == ["id"]
    assert len(fake_netbox.requests) == 3
    assert fake_netbox.stats.get("config_context_renders", 0) == 0


def test_fetch_by_id_batches_ids_into_short_request_lines() -> None:
    with FakeNetbox(devices=450, vms=0) as netbox:
        client = NetboxClient(url=netbox.url, token=netbox.token, backoff=0.01)
        wanted = [*range(450, 0, -1), 9999]

        devices = client.fetch_devices_by_id(wanted)

        assert [d.id for d in devices] == list(range(1, 451))
        batches = [r.query["id"] for r in netbox.requests]
        assert sorted(len(batch) for batch in batches) == [51, 200, 200]
        assert sorted(int(i) for batch in batches for i in batch) == [*range(1, 451), 9999]
        for request in netbox.requests:
            query = "&".join(f"{key}={value}" for key, values in request.query.items() for value in values)
            assert len(f"GET {request.path}?{query} HTTP/1.1") < 4096
            assert request.query["exclude"] == ["config_context"]
        assert client.fetch_virtual_machines_by_id([]) == []


# -- tokens and headers ----------------------------------------------------------------------------------------


def test_v2_token_is_sent_as_bearer() -> None:
    token = "nbt_4Fq9xk2LmN0p.Zq8sT1vW3yB5dF7hJ9kL2nP4rS6uX8z"
    with FakeNetbox(devices=3, vms=0, token=token) as netbox:
        client = NetboxClient(url=netbox.url, token=token, backoff=0.01)
        assert client.status()["netbox-version"] == "4.6.8"
        assert len(client.fetch_devices()) == 3
        assert {r.authorization for r in netbox.requests} == {f"Bearer {token}"}


def test_extra_headers_are_sent_on_every_request(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(extra_headers=parse_extra_headers("X-Proxy-Key=abc; CF-Access-Client-Id = id.access"))
    fake_netbox.reset_log()
    client.fetch_devices()
    client.fetch_sites()
    assert fake_netbox.requests
    for request in fake_netbox.requests:
        assert request.headers["X-Proxy-Key"] == "abc"
        assert request.headers["CF-Access-Client-Id"] == "id.access"
        assert request.authorization == f"Token {fake_netbox.token}"


def test_parse_extra_headers() -> None:
    assert parse_extra_headers("") == {}
    assert parse_extra_headers(None) == {}
    assert parse_extra_headers("A=1;B=x=y;;") == {"A": "1", "B": "x=y"}
    with pytest.raises(IntegrationNotConfigured):
        parse_extra_headers("no-equals-sign")


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("0123456789abcdef0123456789abcdef01234567", "Token 0123456789abcdef0123456789abcdef01234567"),
        ("nbt_key.secret", "Bearer nbt_key.secret"),
        ("Token 0123abc", "Token 0123abc"),
        ("bearer nbt_key.secret", "Bearer nbt_key.secret"),
        ("  abc  ", "Token abc"),
    ],
)
def test_authorization_header(token: str, header: str) -> None:
    assert authorization_header(token) == header


def test_missing_configuration_is_reported() -> None:
    with pytest.raises(IntegrationNotConfigured):
        NetboxClient(url="", token="x")
    with pytest.raises(IntegrationNotConfigured):
        NetboxClient(url="https://netbox.example.com", token="")
    with pytest.raises(IntegrationNotConfigured):
        NetboxClient(url="netbox.example.com", token="x")


def test_url_with_api_suffix_is_accepted(fake_netbox: FakeNetbox) -> None:
    client = NetboxClient(url=f"{fake_netbox.url}/api/", token=fake_netbox.token)
    assert client.count("devices") == 50


# -- failures --------------------------------------------------------------------------------------------------


def test_retries_on_server_errors(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client()
    fake_netbox.fail("/api/dcim/devices/", status=500, times=2)
    fake_netbox.fail("/api/dcim/devices/", status=502)

    assert len(client.fetch_devices()) == 50
    assert client.request_count == 3 + 3


def test_honours_retry_after_on_429(
    fake_netbox: FakeNetbox, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(backoff=0.01)
    fake_netbox.fail("/api/status/", status=429, retry_after=1)

    with caplog.at_level(logging.WARNING, logger="integrations.http"):
        assert client.status()["netbox-version"] == "4.6.8"
    assert client.request_count == 2
    # pynetbox's status() goes through the same session: the wait is NetBox's, not our backoff.
    assert [r.getMessage().rpartition(" in ")[2] for r in caplog.records] == ["1.00s"]


def test_retry_after_is_capped(
    fake_netbox: FakeNetbox, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(retry_after_cap=0.05)
    fake_netbox.fail("/api/dcim/devices/", status=503, retry_after=3600)
    with caplog.at_level(logging.WARNING, logger="integrations.http"):
        assert client.count("devices") == 50
    assert client.request_count == 2
    waits = [r.getMessage() for r in caplog.records if "retry 1 of" in r.getMessage()]
    assert len(waits) == 1 and waits[0].endswith("(HTTP 503); retry 1 of 3 in 0.05s")


@pytest.mark.parametrize("mid_body", [True, False])
def test_retries_a_dropped_connection(fake_netbox: FakeNetbox, make_client: MakeClient, mid_body: bool) -> None:
    client = make_client()
    fake_netbox.drop_connection("/api/dcim/devices/", times=2, mid_body=mid_body)

    assert [d.id for d in client.fetch_devices()] == list(range(1, 51))
    assert client.request_count == 3 + 2


def test_retries_bad_json_then_gives_up_with_inconsistent_data(
    fake_netbox: FakeNetbox, make_client: MakeClient
) -> None:
    client = make_client(retries=2)
    fake_netbox.bad_json("/api/virtualization/virtual-machines/")
    assert len(client.fetch_virtual_machines()) == 80

    fake_netbox.bad_json("/api/virtualization/virtual-machines/", times=3)
    with pytest.raises(NetboxInconsistentData, match="malformed"):
        client.fetch_virtual_machines()


def test_rejected_token_raises_auth_error_with_netboxs_detail_and_no_retry(fake_netbox: FakeNetbox) -> None:
    client = NetboxClient(url=fake_netbox.url, token="f" * 40, backoff=0.01)
    with pytest.raises(NetboxAuthError, match="Invalid v1 token") as excinfo:
        client.fetch_devices()
    assert "f" * 40 not in str(excinfo.value)
    assert client.request_count == 1
    with pytest.raises(NetboxAuthError, match="Invalid v1 token"):
        client.status()


def test_revoked_token_and_401_raise_auth_error(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client()
    fake_netbox.fail("/api/dcim/devices/", status=401)
    with pytest.raises(NetboxAuthError):
        client.count("devices")
    fake_netbox.revoke_token()
    with pytest.raises(NetboxAuthError, match="Invalid v1 token"):
        client.fetch_sites()


def test_bad_request_raises_netbox_error_with_netboxs_message(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client()
    body = {"status": ["Select a valid choice. bogus is not one of the available choices."]}
    fake_netbox.fail("/api/dcim/devices/", status=400, body=body)
    with pytest.raises(NetboxError, match=r"status: Select a valid choice\. bogus") as excinfo:
        client.fetch_devices()
    assert not isinstance(excinfo.value, NetboxUnavailable | NetboxAuthError)
    assert client.request_count == 1


def test_closed_port_raises_unavailable_naming_the_url_not_the_token() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    token = "0123456789abcdef0123456789abcdef01234567"
    client = NetboxClient(url=url, token=token, retries=2, backoff=0.01)
    with pytest.raises(NetboxUnavailable) as excinfo:
        client.status()
    message = str(excinfo.value)
    assert url in message
    assert token not in message
    assert client.request_count == 3
    with pytest.raises(NetboxUnavailable):
        client.fetch_devices()


def test_persistent_server_errors_raise_unavailable(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(retries=2)
    fake_netbox.fail("/api/dcim/devices/", status=503, times=10)
    with pytest.raises(NetboxUnavailable, match="HTTP 503"):
        client.fetch_devices()
    assert client.request_count == 3


def test_read_timeout_is_retried_then_unavailable(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(timeout=(1.0, 0.1), retries=1)
    fake_netbox.latency = 0.3
    with pytest.raises(NetboxUnavailable, match="Timeout"):
        client.count("devices")
    assert client.request_count == 2


def test_html_page_is_reported_as_not_netbox(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client()
    fake_netbox.fail("/api/dcim/devices/", status=200, body="<html><body>Sign in</body></html>")
    with pytest.raises(NetboxError, match="HTML page"):
        client.count("devices")


# -- listings that change during the walk ---------------------------------------------------------------------


def test_a_listing_that_changes_mid_walk_is_read_again(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    client = make_client(page_size=10, workers=1)
    fake_netbox.reset_log()
    deleted: list[int] = []

    def delete_once(fetched: int) -> None:
        # Runs after the first page: the later offsets shift by one, so one device would be skipped.
        if not deleted:
            deleted.append(3)
            fake_netbox.delete_device(3)

    devices = client.fetch_devices(progress=delete_once)

    assert [d.id for d in devices] == [i for i in range(1, 51) if i != 3]
    first_pages = [r for r in fake_netbox.requests if "offset" not in r.query]
    assert len(first_pages) == 2


def test_a_listing_that_keeps_changing_raises_inconsistent_data(
    fake_netbox: FakeNetbox, make_client: MakeClient
) -> None:
    client = make_client(page_size=10, workers=1)
    victims = iter(range(1, 50))

    def delete_after_first_page(fetched: int) -> None:
        if fetched <= 10:
            fake_netbox.delete_device(next(victims))

    with pytest.raises(NetboxInconsistentData, match="kept changing"):
        client.fetch_devices(progress=delete_after_first_page)


def test_client_repr_does_not_show_the_token(make_client: MakeClient) -> None:
    client = make_client()
    assert client.url in repr(client)
    assert "0123456789abcdef" not in repr(client)


def test_listings_walked_at_once_share_the_workers(fake_netbox: FakeNetbox, make_client: MakeClient) -> None:
    fake_netbox.latency = 0.02  # long enough for requests to overlap
    client = make_client(page_size=5, workers=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        devices = pool.submit(client.fetch_devices)
        vms = pool.submit(client.fetch_virtual_machines)
        assert (len(devices.result()), len(vms.result())) == (50, 80)
    assert fake_netbox.stats["max_in_flight"] == 2
