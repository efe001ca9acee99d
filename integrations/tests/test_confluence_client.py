"""ConfluenceClient against the Confluence-shaped server on loopback (requests as atlassian-python-api sends them)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
import requests

from devtools.confluence import FakeConfluence
from integrations.confluence.client import ConfluenceClient
from integrations.exceptions import (
    ConfluenceAuthError,
    ConfluenceConflict,
    ConfluenceError,
    ConfluenceNotFound,
    ConfluenceUnavailable,
    IntegrationNotConfigured,
)


@pytest.fixture
def confluence() -> Iterator[FakeConfluence]:
    with FakeConfluence() as server:
        server.add_page("100", "Devices", "<p>old</p>")
        yield server


def cloud_client(server: FakeConfluence, **options: object) -> ConfluenceClient:
    defaults: dict[str, object] = {"email": server.email, "retries": 2, "backoff": 0.01, "timeout": 5}
    defaults.update(options)
    return ConfluenceClient(server.url, server.token, **defaults)  # type: ignore[arg-type]


def test_cloud_client_sends_basic_auth_with_email_and_token(confluence: FakeConfluence) -> None:
    page = cloud_client(confluence).page_get("100")

    assert (page.title, page.version, page.body) == ("Devices", 1, "<p>old</p>")
    request = confluence.requests[-1]
    assert request.path == "/rest/api/content/100"
    assert request.query == {"expand": "body.storage,version"}
    expected = base64.b64encode(f"{confluence.email}:{confluence.token}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"


def test_server_client_sends_personal_access_token_as_bearer(confluence: FakeConfluence) -> None:
    confluence.context = "/confluence"
    client = ConfluenceClient(confluence.url, confluence.token, retries=0)

    assert client.page_get("100").version == 1
    assert confluence.requests[-1].headers["authorization"] == f"Bearer {confluence.token}"


def test_update_sends_next_version_as_minor_edit_with_comment(confluence: FakeConfluence) -> None:
    page = cloud_client(confluence).page_update("100", title="Devices", body="<p>new</p>", version_comment="run 7")

    assert page.version == 2
    stored = confluence.pages["100"].current
    assert (stored.number, stored.body, stored.minor_edit, stored.message) == (2, "<p>new</p>", True, "run 7")
    put = next(r for r in confluence.requests if r.method == "PUT")
    assert put.query == {"status": "current"}
    assert put.json["body"]["storage"]["representation"] == "storage"


def test_update_rereads_and_retries_once_on_version_conflict(confluence: FakeConfluence) -> None:
    confluence.conflict_next_update()

    page = cloud_client(confluence).page_update("100", title="Devices", body="<p>mine</p>")

    assert page.version == 3  # version 2 was the concurrent edit
    assert confluence.pages["100"].current.body == "<p>mine</p>"
    assert [r.method for r in confluence.requests].count("PUT") == 2


def test_update_gives_up_after_two_conflicts(confluence: FakeConfluence) -> None:
    confluence.conflict_next_update(times=2)

    with pytest.raises(ConfluenceConflict, match="409 twice"):
        cloud_client(confluence).page_update("100", title="Devices", body="<p>mine</p>")


def test_upload_creates_then_replaces_attachment_keeping_history(confluence: FakeConfluence) -> None:
    client = cloud_client(confluence)

    first = client.attachment_upload("100", name="a.csv", content=b"v1", content_type="text/csv", comment="run 1")
    second = client.attachment_upload("100", name="a.csv", content=b"v2", content_type="text/csv", comment="run 2")

    assert (first.created, second.created, first.id == second.id) == (True, False, True)
    attachment = confluence.attachments_of("100")["a.csv"]
    assert [(v.number, v.data, v.comment) for v in attachment.versions] == [(1, b"v1", "run 1"), (2, b"v2", "run 2")]
    posts = [r for r in confluence.requests if r.method == "POST"]
    assert [p.path for p in posts] == [
        "/rest/api/content/100/child/attachment",
        f"/rest/api/content/100/child/attachment/{first.id}/data",
    ]
    assert all(p.headers["x-atlassian-token"] == "no-check" for p in posts)
    assert [r.query for r in confluence.requests if r.method == "GET"] == [
        {"filename": "a.csv", "expand": "version", "limit": "50"}
    ] * 2
    assert not [r for r in confluence.requests if r.method == "DELETE"]


def test_wrong_token_is_an_auth_error_without_retries(confluence: FakeConfluence) -> None:
    client = ConfluenceClient(confluence.url, "wrong", email=confluence.email, retries=3, backoff=0.01)

    with pytest.raises(ConfluenceAuthError) as caught:
        client.page_get("100")
    assert "wrong" not in str(caught.value)
    assert len(confluence.requests) == 1


def test_unknown_page_is_not_found(confluence: FakeConfluence) -> None:
    with pytest.raises(ConfluenceNotFound, match="404"):
        cloud_client(confluence).page_get("999")


def test_429_is_retried_after_retry_after(confluence: FakeConfluence) -> None:
    confluence.fail(429, retry_after="0.3")
    started = time.monotonic()

    page = cloud_client(confluence).page_get("100")

    assert page.version == 1
    assert time.monotonic() - started >= 0.3
    assert len(confluence.requests) == 2


def test_server_errors_are_retried_then_reported_as_unavailable(confluence: FakeConfluence) -> None:
    confluence.fail(500, times=5)

    with pytest.raises(ConfluenceUnavailable, match="3 times"):
        cloud_client(confluence).page_get("100")
    assert len(confluence.requests) == 3


def test_one_server_error_during_upload_is_retried(confluence: FakeConfluence) -> None:
    confluence.fail(503, method="POST")

    result = cloud_client(confluence).attachment_upload("100", name="x.csv", content=b"x", content_type="text/csv",
                                                        comment="c")  # fmt: skip

    assert result.version == 1
    assert len(confluence.attachments_of("100")["x.csv"].versions) == 1


def test_slow_server_times_out_as_unavailable(confluence: FakeConfluence) -> None:
    confluence.delay = 1.5

    with pytest.raises(ConfluenceUnavailable, match="Timeout"):
        cloud_client(confluence, timeout=1, retries=0).page_get("100")


def test_an_upload_whose_answer_times_out_is_never_sent_again(confluence: FakeConfluence) -> None:
    # Confluence may have stored the upload whose answer we never saw: a second POST would add a duplicate version.
    existing = confluence.add_attachment("100", "a.csv", b"v1")
    confluence.reset_requests()
    confluence.delay = 1.5

    with pytest.raises(ConfluenceUnavailable, match="Timeout"):
        cloud_client(confluence, timeout=1, retries=3).attachment_upload(
            "100", name="a.csv", content=b"v2", content_type="text/csv", comment="c", attachment_id=existing.id
        )

    assert confluence.request_counts() == {"POST /rest/api/content/{id}/child/attachment/{id}/data": 1}


def test_an_upload_answered_500_is_not_sent_again(confluence: FakeConfluence) -> None:
    # Unlike 429 and 503, a 500 does not say the upload was not stored.
    confluence.fail(500, method="POST")

    with pytest.raises(ConfluenceUnavailable, match="HTTP 500"):
        cloud_client(confluence).attachment_upload("100", name="x.csv", content=b"x", content_type="text/csv",
                                                   comment="c", attachment_id="")  # fmt: skip

    assert len([r for r in confluence.requests if r.method == "POST"]) == 1


def test_a_read_is_retried_on_server_errors_by_the_session(confluence: FakeConfluence) -> None:
    confluence.fail(502, times=2)
    client = cloud_client(confluence)

    assert client.page_get("100").version == 1
    assert client.request_count == 3
    assert len(confluence.requests) == 3


def test_requests_are_counted_per_operation_and_status(confluence: FakeConfluence) -> None:
    confluence.fail(500)
    client = cloud_client(confluence)
    client.page_get("100")

    assert dict(client._responses) == {("page_get", "500"): 1, ("page_get", "200"): 1}
    client.flush_metrics()
    assert not client._responses


def test_missing_url_or_token_is_not_configured() -> None:
    with pytest.raises(IntegrationNotConfigured, match="ATLASSIAN_BASE_URL"):
        ConfluenceClient("", "token")
    with pytest.raises(IntegrationNotConfigured, match="ATLASSIAN_API_TOKEN"):
        ConfluenceClient("https://example.atlassian.net/wiki", "")


def test_find_reads_the_attachment_version_size_and_comment(confluence: FakeConfluence) -> None:
    client = cloud_client(confluence)
    client.attachment_upload("100", name="a.csv", content=b"12345", content_type="text/csv", comment="sha256 abc")

    found = client.attachment_find("100", "a.csv")

    assert found is not None and (found.version, found.size, found.comment) == (1, 5, "sha256 abc")
    assert client.attachment_find("100", "other.csv") is None


def test_upload_to_a_known_attachment_is_one_post(confluence: FakeConfluence) -> None:
    existing = confluence.add_attachment("100", "a.csv", b"v1")
    confluence.reset_requests()

    result = cloud_client(confluence).attachment_upload(
        "100", name="a.csv", content=b"v2", content_type="text/csv", comment="c", attachment_id=existing.id
    )

    assert (result.id, result.version, result.size) == (existing.id, 2, 2)
    assert confluence.request_counts() == {"POST /rest/api/content/{id}/child/attachment/{id}/data": 1}


def test_creating_an_attachment_whose_name_exists_adds_a_version_instead(confluence: FakeConfluence) -> None:
    existing = confluence.add_attachment("100", "a.csv", b"v1")

    result = cloud_client(confluence).attachment_upload(
        "100", name="a.csv", content=b"v2", content_type="text/csv", comment="c", attachment_id=""
    )

    assert (result.id, result.version) == (existing.id, 2)
    assert [r.path for r in confluence.writes()] == [
        "/rest/api/content/100/child/attachment",  # 400: same file name as an existing attachment
        f"/rest/api/content/100/child/attachment/{existing.id}/data",
    ]


def test_invalid_storage_format_reports_confluences_parse_error(confluence: FakeConfluence) -> None:
    client = cloud_client(confluence)

    with pytest.raises(ConfluenceError) as caught:
        client.page_update("100", title="Devices", body="<p><b>bold</p>")

    message = str(caught.value)
    assert "HTTP 400" in message and "Error parsing xhtml: mismatched tag" in message and "at [row,col" in message
    assert "No space or no content type" not in message and "BadRequestException" not in message
    assert confluence.pages["100"].current.number == 1


def test_validation_errors_from_data_errors_reach_the_message(confluence: FakeConfluence) -> None:
    with pytest.raises(ConfluenceError, match="Title cannot be empty"):
        cloud_client(confluence).page_update("100", title="", body="<p>new</p>")


def test_confluences_reason_is_kept_for_every_status_but_never_the_token(confluence: FakeConfluence) -> None:
    confluence.fail(403, message=f"User publisher may not attach (token {confluence.token})", method="GET")
    confluence.fail(500, times=3, message="Database is read-only", errors=("Try again later",))
    client = cloud_client(confluence)

    with pytest.raises(ConfluenceAuthError) as refused:
        client.page_get("100")
    with pytest.raises(ConfluenceUnavailable) as unavailable:
        client.page_get("100")

    assert "User publisher may not attach (token [token])" in str(refused.value)
    assert confluence.token not in str(refused.value)
    assert "HTTP 500: Database is read-only; Try again later" in str(unavailable.value)


def test_fake_server_refuses_uploads_without_the_xsrf_header(confluence: FakeConfluence) -> None:
    response = requests.post(
        f"{confluence.url}/rest/api/content/100/child/attachment",
        files={"file": ("a.csv", b"x", "text/csv")},
        headers={"Authorization": f"Bearer {confluence.token}"},
        timeout=5,
    )

    assert response.status_code == 403 and response.json()["message"] == "XSRF check failed"
    assert confluence.attachments_of("100") == {}
