"""Bad input is a JSON 4xx, never a 500: deep or large JSON, junk pagination, ids beyond 64 bits, unknown paths."""

from __future__ import annotations

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


def test_a_chunked_body_is_a_json_411_not_read_as_empty(admin):
    saved = admin.put("/api/cmdb/devices/view/", {"density": "compact"}, format="json")
    assert saved.status_code == 200 and saved.json()["density"] == "compact"
    # What a WSGI server hands Django for a chunked body: the header, and no CONTENT_LENGTH (so no body for Django).
    response = admin.generic("PUT", "/api/cmdb/devices/view/", "", content_type="application/json",
                             HTTP_TRANSFER_ENCODING="chunked")  # fmt: skip
    assert "Content-Length" in assert_json(response, 411)["detail"]
    assert admin.get("/api/cmdb/devices/view/").json()["density"] == "compact"  # not replaced by an empty view


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
