"""The admin API: user provisioning with guard rails, roles and their capabilities, global keys."""

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEntry, GlobalKey, User
from accounts.selectors import role_capabilities
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Provisioned-passphrase-2024"
SECRET = "nbt_abcdefgh.0123456789abcdefSECRETvalue9876"


@pytest.fixture
def admin(make_user):
    return make_user("admin", username="boss")


@pytest.fixture
def client(admin):
    client = APIClient()
    client.force_login(admin)
    return client


def test_admin_creates_lists_and_updates_users(client):
    response = client.post(
        "/api/admin/users/",
        {"username": "alice", "password": NEW_PASSWORD, "role": "operator", "email": "alice@example.com"},
        format="json",
    )
    assert response.status_code == 201
    alice = response.json()
    assert alice["role"] == "operator" and alice["capabilities"] == ["export.download", "export.run"]
    assert User.objects.get(username="alice").check_password(NEW_PASSWORD)
    listing = client.get("/api/admin/users/?role=operator").json()
    assert [u["username"] for u in listing["results"]] == ["alice"]
    updated = client.patch(f"/api/admin/users/{alice['id']}/", {"role": "member", "display_name": "Al"}, format="json")
    assert updated.status_code == 200 and updated.json()["role"] == "member" and updated.json()["display_name"] == "Al"
    actions = list(AuditEntry.objects.filter(target="user:alice").order_by("id").values_list("action", flat=True))
    assert actions == ["user.create", "user.update", "user.role"]
    assert AuditEntry.objects.filter(actor__username="boss", ip="127.0.0.1", source="api").count() == 3


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "bob", "password": "short", "role": "viewer"}, "password"),
        ({"username": "boss", "password": NEW_PASSWORD, "role": "viewer"}, "username"),
        ({"username": "bad name!", "password": NEW_PASSWORD, "role": "viewer"}, "username"),
        ({"username": "bob", "password": NEW_PASSWORD, "role": "root"}, "role"),
        ({"username": "bob", "password": NEW_PASSWORD, "email": "nope"}, "email"),
    ],
)
def test_bad_user_input_is_a_400_naming_the_field(client, payload, field):
    response = client.post("/api/admin/users/", payload, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not User.objects.filter(username="bob").exists()


def test_deactivate_and_reset_password(client, make_user):
    viewer = make_user("viewer")
    assert client.post(f"/api/admin/users/{viewer.pk}/reset-password/", {"password": "x"}).status_code == 400
    reset = client.post(f"/api/admin/users/{viewer.pk}/reset-password/", {"password": NEW_PASSWORD})
    assert reset.status_code == 200
    viewer.refresh_from_db()
    assert viewer.check_password(NEW_PASSWORD)
    response = client.post(f"/api/admin/users/{viewer.pk}/deactivate/")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert client.delete(f"/api/admin/users/{viewer.pk}/").status_code == 405
    assert User.objects.filter(pk=viewer.pk).exists()
    assert client.get("/api/admin/users/999999/").status_code == 404


def test_admin_cannot_demote_or_deactivate_themselves(client, admin, make_user):
    make_user("admin")  # not the last admin: the self rule alone applies
    demote = client.patch(f"/api/admin/users/{admin.pk}/", {"role": "member"}, format="json")
    assert demote.status_code == 409 and "your own admin role" in demote.json()["role"][0]
    deactivate = client.post(f"/api/admin/users/{admin.pk}/deactivate/")
    assert deactivate.status_code == 409 and "deactivate yourself" in deactivate.json()["detail"]  # the schema's shape
    admin.refresh_from_db()
    assert admin.role == "admin" and admin.is_active


def test_last_active_admin_cannot_be_demoted_or_deactivated(make_user):
    from accounts.errors import GuardRailError
    from accounts.services import user_deactivate, user_set_role

    last = make_user("admin")
    other = make_user("admin")
    user_deactivate(user=other)
    with pytest.raises(GuardRailError, match="last active admin"):
        user_set_role(user=last, role="viewer")
    with pytest.raises(GuardRailError, match="last active admin"):
        user_deactivate(user=last)
    # With a second active admin, one of them may go.
    other_client = APIClient()
    from accounts.services import user_update

    user_update(user=other, is_active=True)
    other_client.force_login(other)
    assert other_client.patch(f"/api/admin/users/{last.pk}/", {"role": "viewer"}, format="json").status_code == 200
    again = other_client.patch(f"/api/admin/users/{other.pk}/", {"role": "viewer"}, format="json")
    assert again.status_code == 409


def test_roles_list_and_capability_edits_are_validated(client):
    roles = {r["name"]: r for r in client.get("/api/admin/roles/").json()}
    assert roles["viewer"]["capabilities"] == ["export.download"]
    assert roles["admin"]["users"] == 1
    bad = client.patch("/api/admin/roles/viewer/", {"capabilities": ["export.download", "root.all"]}, format="json")
    assert bad.status_code == 400 and "root.all" in str(bad.json())
    assert client.patch("/api/admin/roles/admin/", {"capabilities": []}, format="json").status_code == 400
    assert client.patch("/api/admin/roles/wizard/", {"capabilities": []}, format="json").status_code == 404
    ok = client.patch("/api/admin/roles/viewer/", {"capabilities": ["chat.use", "export.download"]}, format="json")
    assert ok.status_code == 200 and ok.json()["capabilities"] == ["chat.use", "export.download"]
    assert role_capabilities(role="viewer") == ["chat.use", "export.download"]
    entry = AuditEntry.objects.get(action="role.capabilities")
    assert entry.detail == {"from": ["export.download"], "to": ["chat.use", "export.download"]}


def test_keys_api_shows_only_a_masked_hint(client, admin):
    created = client.put("/api/admin/keys/netbox/", {"value": SECRET, "label": "NetBox"}, format="json")
    assert created.status_code == 201
    assert created.json()["value"] == "••••9876" and created.json()["updated_by"] == "boss"
    changed = client.put("/api/admin/keys/netbox/", {"label": "NetBox prod"}, format="json")
    assert changed.status_code == 200 and changed.json()["value"] == "••••9876"
    listing = client.get("/api/admin/keys/")
    assert [k["name"] for k in listing.json()] == ["netbox"] and SECRET not in listing.content.decode()
    detail = client.get("/api/admin/keys/netbox/")
    assert detail.json()["label"] == "NetBox prod" and SECRET not in detail.content.decode()
    assert client.put("/api/admin/keys/backup/", {"label": "no value"}, format="json").status_code == 400
    assert client.put("/api/admin/keys/backup/", {"value": ""}, format="json").status_code == 400
    assert client.delete("/api/admin/keys/netbox/").status_code == 204
    assert client.delete("/api/admin/keys/netbox/").status_code == 404
    assert not GlobalKey.objects.exists()
    actions = list(AuditEntry.objects.filter(target="key:netbox").order_by("id").values_list("action", "detail"))
    assert actions == [("key.create", {"fields": ["value", "label"]}), ("key.update", {"fields": ["label"]}),
                       ("key.delete", {})]  # fmt: skip


def test_short_key_values_get_no_hint(client):
    body = client.put("/api/admin/keys/backup/", {"value": "hunter2"}, format="json").json()
    assert body["value"] == "••••"


def test_signed_in_password_session_is_usable_for_the_admin_api(make_user):
    # The admin API works with a real password sign-in too (not only force_login).
    admin = make_user("admin")
    client = APIClient()
    assert client.login(username=admin.username, password=PASSWORD)
    assert client.get("/api/admin/users/").status_code == 200
