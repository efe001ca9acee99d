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


def test_debug_error_pages_keep_their_inline_styles_by_hash_only(client, settings, django_user_model):
    import base64
    import hashlib
    import re

    settings.DEBUG = True
    user = django_user_model.objects.create_user(username="dbg", password="x-debug-pass-123")
    client.force_login(user)
    response = client.get("/no-such-page-here/")
    assert response.status_code == 404 and b"<style" in response.content  # Django's technical 404 page
    policy = response.headers["Content-Security-Policy"]
    styles = re.findall(rb"<style[^>]*>(.*?)</style>", response.content, re.DOTALL)
    for block in styles:
        digest = base64.b64encode(hashlib.sha256(block).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert ("unsafe-inline" not in policy and "script-src 'self'" in policy) or "default-src 'self'" in policy
    # An ordinary page keeps the plain policy.
    settings.DEBUG = False
    plain = client.get("/no-such-page-here/")
    assert "sha256-" not in plain.headers["Content-Security-Policy"]
