"""The API documentation pages are served by the app itself: no CDN, no inline script or style."""

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_docs_page_loads_only_local_assets_and_no_inline_code(client_for):
    page = client_for("viewer").get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    assert "<style" not in page and 'style="' not in page
    assert all('src="' in tag for tag in page.split("<script")[1:])
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset


def test_swagger_settings_are_a_script_file_pointing_at_the_schema(client_for):
    response = client_for("viewer").get("/api/docs/?script=")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/javascript")
    assert 'url: "/api/schema/"' in response.content.decode()


def test_redoc_page_loads_the_local_bundle_with_no_inline_code(client_for):
    response = client_for("viewer").get("/api/redoc/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-schema-url="/api/schema/"' in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    assert "<style" not in page and 'style="' not in page
    assert all('src="' in tag for tag in page.split("<script")[1:])
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset


def test_redoc_page_alone_allows_inline_styles_and_blob_workers(client_for):
    client = client_for("viewer")
    policy = client.get("/api/redoc/")["Content-Security-Policy"]
    assert policy == (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'; style-src-attr 'none'; worker-src blob:"
    )
    assert "unsafe-inline" not in client.get("/api/docs/")["Content-Security-Policy"]


def test_redoc_policy_builds_on_a_replaced_site_policy_and_respects_none(client_for, settings):
    client = client_for("viewer")
    settings.CONTENT_SECURITY_POLICY = "default-src 'self' https://intranet.example; frame-ancestors 'none'"
    assert client.get("/api/redoc/")["Content-Security-Policy"] == (
        "default-src 'self' https://intranet.example; frame-ancestors 'none'; "
        "style-src 'self' https://intranet.example 'unsafe-inline'; style-src-attr 'none'; worker-src blob:"
    )
    settings.CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in client.get("/api/redoc/")


def test_redoc_sends_anonymous_people_to_sign_in(client):
    response = client.get("/api/redoc/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_schema_is_generated_once_per_process_and_again_when_a_setting_changes(client_for, settings, monkeypatch):
    from drf_spectacular.generators import SchemaGenerator

    generated = []
    original = SchemaGenerator.get_schema

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        generated.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counting)
    settings.SPECTACULAR_SETTINGS = {**settings.SPECTACULAR_SETTINGS}  # a setting changed: whatever was kept goes
    client = client_for("viewer")
    first = client.get("/api/schema/", {"format": "json"})
    second = client.get("/api/schema/", {"format": "json"})
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    assert "/api/exports/runs/{id}/publish/" in first.json()["paths"]
    assert len(generated) == 1
    assert client.get("/api/schema/").content.decode().startswith("openapi:")  # the YAML from the same schema
    assert len(generated) == 1
    settings.API_MAX_LIMIT = 499  # documented in the paging parameters
    assert "(at most 499)" in client.get("/api/schema/", {"format": "json"}).content.decode()
    assert len(generated) == 2
