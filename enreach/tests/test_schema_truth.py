"""The OpenAPI schema documents what the API really answers (schemathesis checks the responses, see test_fuzz_api)."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_every_operation_documents_its_error_answers(schema):
    missing = []
    for path, method, operation in operations(schema):
        if path == "/api/health/":
            continue  # public
        codes = set(operation["responses"])
        expected = {"401", "403", "429"}
        if re.search(r"\{\w+\}", path):
            expected.add("404")
        if method in ("post", "put", "patch"):
            expected |= {"400", "413"}
        if not expected <= codes:
            missing.append(f"{method.upper()} {path}: {sorted(expected - codes)}")
    assert missing == []


def test_error_bodies_are_json_objects_with_a_detail(schema):
    for _path, _method, operation in operations(schema):
        for code in ("401", "403", "404", "413", "429"):
            if code in operation["responses"]:
                content = operation["responses"][code]["content"]
                assert list(content) == ["application/json"]


def test_chat_context_is_an_object_and_emails_are_plain_text(schema):
    components = schema["components"]["schemas"]
    assert components["ChatSession"]["properties"]["context"]["type"] == "object"
    assert components["ChatSessionWrite"]["properties"]["context"]["type"] == "object"
    for name in ("User", "Profile", "UserCredentialsEnded"):
        assert "format" not in components[name]["properties"]["email"], name


def test_paginated_lists_bound_limit_and_offset(schema):
    parameters = schema["paths"]["/api/exports/runs/"]["get"]["parameters"]
    limit = next(p for p in parameters if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and "at most 500" in limit["description"]
