"""The profile API: details, preferences, password change and personal tokens."""

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEntry
from accounts.tokens import api_token_create
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-Different-long-passphrase-99"


@pytest.fixture
def member(make_user):
    return make_user("member", email="m@example.com", display_name="Mem")


@pytest.fixture
def client(member):
    client = APIClient()
    client.force_login(member)
    return client


def test_profile_shows_identity_and_default_preferences(client, member):
    body = client.get("/api/profile/").json()
    assert body["username"] == member.username and body["role"] == "member"
    assert body["capabilities"] == ["chat.use", "export.download", "export.run"]
    assert body["preferences"] == {"time_zone": "UTC", "theme": "system", "export_dataset": "merged"}


def test_patch_changes_only_the_fields_sent(client, member):
    assert client.patch("/api/profile/", {"preferences": {"theme": "dark"}}, format="json").status_code == 200
    response = client.patch("/api/profile/", {"preferences": {"time_zone": "Europe/Amsterdam"}}, format="json")
    body = response.json()
    assert body["preferences"] == {"time_zone": "Europe/Amsterdam", "theme": "dark", "export_dataset": "merged"}
    assert body["display_name"] == "Mem" and body["email"] == "m@example.com"
    body = client.patch("/api/profile/", {"display_name": "Member One"}, format="json").json()
    assert body["display_name"] == "Member One" and body["preferences"]["theme"] == "dark"
    member.refresh_from_db()
    assert member.preferences == {"theme": "dark", "time_zone": "Europe/Amsterdam"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"preferences": {"time_zone": "Mars/Olympus"}}, "time_zone"),
        ({"preferences": {"theme": "neon"}}, "theme"),
        ({"preferences": {"export_dataset": "racks"}}, "export_dataset"),
        ({"preferences": {"font": "comic"}}, "font"),
        ({"preferences": "dark"}, "preferences"),
    ],
)
def test_invalid_profile_input_is_a_400_naming_the_field(client, member, payload, field):
    response = client.patch("/api/profile/", payload, format="json")
    assert response.status_code == 400
    assert field in str(response.json())
    member.refresh_from_db()
    assert member.preferences == {} and member.email == "m@example.com"


def test_password_change_needs_the_current_password_and_a_valid_new_one(client, member):
    wrong = client.post("/api/profile/password/", {"current_password": "nope", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 400 and "current_password" in wrong.json()
    weak = client.post("/api/profile/password/", {"current_password": PASSWORD, "new_password": "12345678"})
    assert weak.status_code == 400 and "new_password" in weak.json()
    member.refresh_from_db()
    assert member.check_password(PASSWORD)


def test_password_change_ends_other_sessions_and_keeps_this_one(client, member):
    elsewhere = APIClient()
    assert elsewhere.login(username=member.username, password=PASSWORD)
    assert elsewhere.get("/api/profile/").status_code == 200
    response = client.post("/api/profile/password/", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 200 and response.json()["tokens_revoked"] == 0
    assert client.get("/api/profile/").status_code == 200
    assert elsewhere.get("/api/profile/").status_code in (401, 403)
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)
    assert AuditEntry.objects.filter(action="user.password_change", target=f"user:{member.username}").exists()


def test_token_secret_is_answered_once_and_never_listed(client, member):
    response = client.post("/api/profile/tokens/", {"label": "ci", "read_only": True}, format="json")
    assert response.status_code == 201
    created = response.json()
    secret = created["token"]
    assert secret.startswith("ent_") and secret.startswith(created["prefix"])
    listing = client.get("/api/profile/tokens/")
    assert listing.status_code == 200 and secret not in listing.content.decode()
    assert [t["label"] for t in listing.json()] == ["ci"]
    assert set(listing.json()[0]) == {"id", "prefix", "label", "read_only", "created", "expires", "last_used",
                                      "revoked", "active"}  # fmt: skip
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert bearer.get("/api/profile/").json()["username"] == member.username
    entry = AuditEntry.objects.get(action="token.create")
    assert entry.actor == member and entry.ip == "127.0.0.1" and entry.source == "api"


def test_revoked_token_is_rejected_and_others_tokens_are_not_found(client, member, make_user):
    token, secret = api_token_create(user=member, label="old")
    other_token, _ = api_token_create(user=make_user("viewer"))
    assert client.delete(f"/api/profile/tokens/{other_token.pk}/").status_code == 404
    assert ApiToken.objects.get(pk=other_token.pk).revoked is None
    assert client.delete(f"/api/profile/tokens/{token.pk}/").status_code == 204
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert bearer.get("/api/profile/").status_code == 401
    assert client.get("/api/profile/tokens/").json()[0]["active"] is False
    assert AuditEntry.objects.filter(action="token.revoke", target=f"token:{token.prefix}").count() == 1


def test_token_expiry_must_be_in_the_future(client):
    response = client.post("/api/profile/tokens/", {"expires": "2001-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and "expires" in response.json()


def test_repeated_bad_tokens_are_throttled_with_429(settings, member):
    settings.TOKEN_FAILURE_LIMIT = 3
    _, secret = api_token_create(user=member)
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer ent_guess")
    assert [guesser.get("/api/auth/me").status_code for _ in range(3)] == [401, 401, 401]
    blocked = guesser.get("/api/auth/me")
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    # Others' failures never refuse a valid token, even from the same address.
    valid = APIClient()
    valid.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert valid.get("/api/auth/me").status_code == 200
    assert valid.get("/api/auth/me", REMOTE_ADDR="10.0.0.7").status_code == 200
