"""Preferences act: times in the user's zone, the theme on <html>, the preferred file first; sign-out says so."""

import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.template import Context, Template
from django.test import Client

from accounts.models import ApiToken
from accounts.tokens import api_token_create

pytestmark = pytest.mark.django_db


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _token_created_at_noon_utc(user):
    token, _ = api_token_create(user=user, label="tz")
    ApiToken.objects.filter(pk=token.pk).update(created=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))


def test_profile_times_follow_the_time_zone_preference(make_user):
    user = make_user("viewer", username="zoe")
    _token_created_at_noon_utc(user)
    client = _client(user)
    assert "<td>2026-06-01 12:00</td>" in client.get("/accounts/profile/").content.decode()
    user.preferences = {"time_zone": "America/New_York"}
    user.save()
    page = client.get("/accounts/profile/").content.decode()
    assert "<td>2026-06-01 08:00</td>" in page and "Times are shown in America/New_York." in page


def test_the_admin_shows_times_in_the_users_zone_too(make_user):
    admin = make_user("admin", username="ada")
    admin.preferences = {"time_zone": "Asia/Kolkata"}
    admin.save()
    _token_created_at_noon_utc(admin)
    page = _client(admin).get("/admin/accounts/apitoken/").content.decode()
    assert "June 1, 2026, 5:30 p.m." in page, re.findall(r"field-created[^<]*<[^<]*", page)


@pytest.mark.parametrize("theme", ["dark", "light", "system"])
def test_the_theme_preference_is_set_on_the_html_element(make_user, theme):
    user = make_user("viewer")
    user.preferences = {"theme": theme}
    user.save()
    page = _client(user).get("/accounts/profile/").content.decode()
    assert f'<html lang="en" data-theme="{theme}">' in page


def test_signed_out_pages_use_the_system_theme():
    page = Client().get("/accounts/login/").content.decode()
    assert '<html lang="en" data-theme="system">' in page


def test_the_stylesheet_has_dark_colours_for_dark_and_for_system():
    from django.contrib.staticfiles import finders

    css = Path(finders.find("css/app.css")).read_text(encoding="utf-8")
    assert ':root[data-theme="dark"]' in css
    assert "@media (prefers-color-scheme: dark)" in css and ':root[data-theme="system"]' in css


def test_preferred_first_puts_the_preferred_kind_first_and_keeps_the_rest_in_order():
    files = [SimpleNamespace(kind=k) for k in ("devices", "merged", "vms", "workbook")]
    rendered = Template(
        "{% load preferences %}{% for f in files|preferred_first:export_dataset %}{{ f.kind }} {% endfor %}"
    ).render(Context({"files": files, "export_dataset": "vms"}))
    assert rendered.split() == ["vms", "devices", "merged", "workbook"]


def test_sign_out_shows_a_signed_out_message(make_user):
    client = _client(make_user("viewer"))
    response = client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert "You have been signed out." in response.content.decode()
    assert client.get("/").status_code == 302


def test_every_page_links_the_favicon_and_favicon_ico_resolves(make_user):
    page = _client(make_user("viewer")).get("/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in page
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"


def test_base_layout_and_home_have_no_inline_script_or_style(make_user):
    page = _client(make_user("admin")).get("/").content.decode()
    assert "<style" not in page and 'style="' not in page
    assert all('src="' in tag for tag in page.split("<script")[1:])
