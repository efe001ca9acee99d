"""Bad input is a JSON 4xx, never a 500: deep or large JSON, junk pagination, ids beyond 64 bits, unknown paths."""

from __future__ import annotations

import http.client
import io
import json

import pytest
from rest_framework.test import APIClient

from enreach.api import json_depth

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000
JSON_BODIES = [
    ("post", "/api/suggestions/"),
    ("patch", "/api/profile/"),
    ("post", "/api/profile/tokens/"),
    ("post", "/api/exports/runs/"),
    ("post", "/api/chat/sessions/"),
]


@pytest.fixture
def admin(client_for) -> APIClient:
    return client_for("admin")


def assert_json(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()


@pytest.mark.parametrize(("method", "path"), JSON_BODIES)
def test_deeply_nested_json_is_a_400(admin, method, path):
    body = getattr(admin, method)(path, data='{"title": ' + DEEP + "}", content_type="application/json")
    assert "nested deeper than 32 levels" in assert_json(body, 400)["detail"]


def test_json_nesting_within_the_limit_still_parses(admin):
    context = {"a": {"b": {"c": [1, [2, [3]]]}}}
    response = admin.post("/api/chat/sessions/", {"title": "x", "context": context}, format="json")
    assert assert_json(response, 201)["context"] == context


def test_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, {"c": "\\"]]]"}]}') == 3


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_an_oversized_body_is_a_json_413(admin, settings, content_type):
    settings.API_JSON_MAX_BYTES = 1000
    body = assert_json(admin.post("/api/suggestions/", data="x" * 5000, content_type=content_type), 413)
    assert "at most 1000 bytes" in body["detail"]


def test_a_body_over_djangos_limit_is_413_not_an_html_400(admin, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = admin.post(
        "/api/suggestions/", data="title=" + "x" * 500, content_type="application/x-www-form-urlencoded"
    )
    assert_json(response, 413)


def test_a_chunked_body_is_read_whole_not_as_empty(admin):
    """As a server that decodes the chunks hands it over (gunicorn): the body, and no CONTENT_LENGTH."""
    response = admin.generic("PUT", "/api/cmdb/devices/view/", "", content_type="application/x-www-form-urlencoded",
                             CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
                             **{"wsgi.input": io.BytesIO(b"density=compact&q=fra")})  # fmt: skip
    assert response.status_code == 200, response.content
    assert (response.json()["density"], response.json()["q"]) == ("compact", "fra")
    big = io.BytesIO(b"[" * 3_000_000)
    too_big = admin.generic("PUT", "/api/cmdb/devices/view/", "", content_type="application/json", CONTENT_LENGTH="",
                            HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": big})  # fmt: skip
    assert_json(too_big, 413)


@pytest.mark.django_db(transaction=True)
def test_chunked_bodies_leave_nothing_on_a_kept_alive_connection(live_server, seeded_roles, make_user):
    """Django's development server (the tests' live server) hands a chunked body to nobody: it was left on the
    connection and read as the next request, whose answer (a bare HTML page) the client took for the answer to its
    own next request. The fuzz test met it: requests sends an empty form body chunked ("0\\r\\n\\r\\n")."""
    from accounts.tokens import api_token_create

    _, secret = api_token_create(user=make_user("viewer"), label="chunked")
    connection = http.client.HTTPConnection(live_server.url.removeprefix("http://"), timeout=20)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/x-www-form-urlencoded"}

    def put_chunked(chunks: list[bytes], path: str = "/api/cmdb/devices/view/") -> http.client.HTTPResponse:
        connection.putrequest("PUT", path)
        for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n")
        return connection.getresponse()

    def get(path: str) -> tuple[int, dict]:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())

    saved = put_chunked([b"density=com", b"pact&q=ams1"])
    assert saved.status == 200 and json.loads(saved.read())["density"] == "compact"
    status, view = get("/api/cmdb/devices/view/")
    assert (status, view["density"], view["q"]) == (200, "compact", "ams1")
    empty = put_chunked([])  # what requests sends for an empty form: no Content-Length, one last chunk
    assert empty.status == 200 and json.loads(empty.read())["density"] == "comfortable"  # an empty view saved
    unknown = put_chunked([b"density=compact"], path="/api/cmdb/nope/view/")  # answered before any view reads
    assert unknown.status == 404 and json.loads(unknown.read())["detail"].startswith("Unknown dataset")
    for _ in range(3):  # every answer since came on the same connection, each with its status line
        assert get("/api/health/")[0] == 200
    connection.close()


@pytest.mark.parametrize("path", ["/api/exports/runs/", "/api/admin/users/", "/api/chat/sessions/"])
@pytest.mark.parametrize("query", ["limit=9223372036854775808", "limit=abc", "limit=0", "offset=-1", "offset=1e3"])
def test_junk_or_overflowing_pagination_is_a_400(admin, path, query):
    body = assert_json(admin.get(f"{path}?{query}"), 400)
    assert query.split("=")[0] in body


def test_limit_is_capped(admin, settings, make_user):
    settings.API_MAX_LIMIT = 2
    for _ in range(3):
        make_user("viewer")
    body = assert_json(admin.get("/api/admin/users/?limit=1000000000"), 200)
    assert len(body["results"]) == 2 and body["count"] == 4


@pytest.mark.parametrize(
    "path",
    [
        "/api/exports/runs/99999999999999999999/artifacts/x.csv",
        "/api/exports/runs/99999999999999999999/",
        "/api/admin/users/99999999999999999999/",
        "/api/chat/sessions/99999999999999999999/",
        "/api/chat/sessions/99999999999999999999/messages/",
        "/api/profile/tokens/99999999999999999999/",
        "/api/suggestions/99999999999999999999/",
    ],
)
def test_ids_beyond_64_bits_are_a_json_404(admin, path):
    assert_json(admin.get(path), 404)


def test_unknown_api_paths_and_methods_answer_json(admin):
    assert assert_json(admin.get("/api/nothing-here/"), 404) == {"detail": "Not found."}
    assert_json(admin.put("/api/auth/me"), 405)


def test_pages_outside_the_api_keep_html_errors(admin):
    response = admin.get("/no-such-page/")
    assert response.status_code == 404 and "text/html" in response["Content-Type"]


def test_server_errors_under_the_api_are_json():
    from django.test import RequestFactory

    from enreach.api import handler500

    response = handler500(RequestFactory().get("/api/exports/runs/"))
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert b"Server error" in response.content
    assert "text/html" in handler500(RequestFactory().get("/exports/"))["Content-Type"]
