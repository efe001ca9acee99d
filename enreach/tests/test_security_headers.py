"""Every response carries the Content-Security-Policy, Referrer-Policy and nosniff headers."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/health/", "/api/nothing/", "/admin/login/"])
def test_security_headers_on_pages_api_and_errors(client, path):
    response = client.get(path)
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_policy_can_be_replaced_or_turned_off(client, settings):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self' https://intranet.example"
    assert client.get("/accounts/login/")["Content-Security-Policy"] == "default-src 'self' https://intranet.example"
    settings.CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in client.get("/accounts/login/")


def test_templates_have_no_inline_script_or_style():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    mine = ["templates/accounts", "templates/registration", "templates/suggestions", "templates/admin"]
    offending = [
        f"{path.relative_to(root)}: {match.group()}"
        for folder in mine
        for path in (root / folder).rglob("*.html")
        for match in re.finditer(r"<script(?![^>]*\ssrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", path.read_text())
    ]
    assert offending == []
