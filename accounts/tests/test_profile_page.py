"""The profile page: details and preferences, password, and tokens (the secret shown once)."""

import re

import pytest
from django.test import Client

from accounts.models import ApiToken
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(make_user):
    client = Client()
    client.force_login(make_user("operator", username="pat"))
    return client


def test_profile_page_needs_sign_in():
    response = Client().get("/accounts/profile/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_token_is_shown_once_then_listed_by_prefix_and_revocable(client):
    response = client.post("/accounts/profile/", {"action": "token-create", "label": "laptop", "read_only": "on"})
    body = response.content.decode()
    secret = re.search(r'id="new-token-secret">(ent_[^<]+)<', body).group(1)
    token = ApiToken.objects.get()
    assert token.read_only and token.label == "laptop" and secret.startswith(token.prefix)
    again = client.get("/accounts/profile/").content.decode()
    assert secret not in again and f"{token.prefix}…" in again
    assert client.post("/accounts/profile/", {"action": "token-revoke", "token": token.pk}).status_code == 302
    token.refresh_from_db()
    assert token.revoked is not None
    assert "revoked" in client.get("/accounts/profile/").content.decode()


def test_profile_form_saves_preferences_and_reports_errors(client):
    data = {"action": "profile", "display_name": "Pat", "email": "pat@example.com", "time_zone": "Europe/Oslo",
            "theme": "dark", "export_dataset": "vms"}  # fmt: skip
    assert client.post("/accounts/profile/", data).status_code == 302
    body = client.get("/api/profile/").json()
    assert body["display_name"] == "Pat" and body["preferences"]["time_zone"] == "Europe/Oslo"
    bad = client.post("/accounts/profile/", {**data, "time_zone": "Nowhere/Land"})
    assert bad.status_code == 200 and "Select a valid choice" in bad.content.decode()


def test_password_change_from_the_page_keeps_the_session(client):
    new = "Page-changed-passphrase-55"
    wrong = client.post("/accounts/profile/", {"action": "password", "current_password": "x", "new_password": new})
    assert "The current password is not correct." in wrong.content.decode()
    ok = client.post(
        "/accounts/profile/", {"action": "password", "current_password": PASSWORD, "new_password": new}, follow=True
    )
    assert "Password changed" in ok.content.decode()
    assert client.get("/accounts/profile/").status_code == 200


def test_time_zones_are_grouped_by_region_with_a_find_box(client):
    from accounts.preferences import time_zones

    page = client.get("/accounts/profile/").content.decode()
    groups = re.findall(r'<optgroup label="([^"]+)">', page)
    assert {"Africa", "America", "Asia", "Europe"} <= set(groups) and groups[-1] == "Other"
    assert '<option value="Europe/Amsterdam">Amsterdam</option>' in page
    assert '<option value="America/Argentina/Buenos_Aires">Argentina/Buenos Aires</option>' in page
    assert len(re.findall(r'<option value="', page.split('id="id_time_zone"')[1].split("</select>")[0])) == len(
        time_zones()
    )
    assert 'id="tz-find"' in page and "js/timezones.js" in page
