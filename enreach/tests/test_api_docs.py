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
