"""Accounts in the Django admin: provisioning through the services, guard rails, masked keys, audit read-only."""

import pytest
from django.test import Client

from accounts.global_keys import global_key_set
from accounts.models import ApiToken, AuditEntry, GlobalKey, User
from accounts.tokens import api_token_create

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Admin-made-passphrase-31"
SECRET = "nbt_key1234.averysecretvalue-0987654321-WXYZ"


@pytest.fixture
def admin(make_user):
    return make_user("admin", username="boss")


@pytest.fixture
def client(admin):
    client = Client()
    client.force_login(admin)
    return client


def test_admin_creates_a_user_with_role_and_password(client):
    response = client.post(
        "/admin/accounts/user/add/",
        {"username": "gina", "role": "operator", "display_name": "Gina", "email": "g@example.com",
         "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    gina = User.objects.get(username="gina")
    assert gina.role == "operator" and gina.check_password(NEW_PASSWORD)
    assert list(gina.groups.values_list("name", flat=True)) == ["operator"]
    entry = AuditEntry.objects.get(action="user.create", target="user:gina")
    assert entry.source == "admin" and entry.actor_name == "boss" and entry.detail == {"role": "operator"}


def test_weak_initial_password_is_refused_in_the_form(client):
    response = client.post(
        "/admin/accounts/user/add/",
        {"username": "hal", "role": "viewer", "password1": "123", "password2": "123"},
    )
    assert response.status_code == 200 and "too short" in response.content.decode()
    assert not User.objects.filter(username="hal").exists()


def test_admin_edits_role_and_cannot_demote_themselves(client, admin, make_user):
    ivan = make_user("viewer", username="ivan")
    page = client.get(f"/admin/accounts/user/{ivan.pk}/change/").content.decode()
    assert "Reset password" in page and ivan.password not in page
    data = {"display_name": "Ivan", "email": "", "role": "member", "is_active": "on"}
    for prefix in ("api_tokens",):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    assert client.post(f"/admin/accounts/user/{ivan.pk}/change/", data).status_code == 302
    ivan.refresh_from_db()
    assert ivan.role == "member" and ivan.display_name == "Ivan"
    assert AuditEntry.objects.filter(action="user.role", target="user:ivan", source="admin").exists()
    data["role"] = "viewer"
    response = client.post(f"/admin/accounts/user/{admin.pk}/change/", data)
    assert response.status_code == 200 and "You cannot remove your own admin role." in response.content.decode()
    admin.refresh_from_db()
    assert admin.role == "admin"


def test_deactivate_action_respects_the_guard_rails_and_there_is_no_delete(client, admin, make_user):
    jo = make_user("viewer", username="jo")
    response = client.post(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [jo.pk, admin.pk]},
        follow=True,
    )
    body = response.content.decode()
    assert "You cannot deactivate yourself." in body and "1 user deactivated; 0 API tokens revoked." in body
    assert not User.objects.get(pk=jo.pk).is_active and User.objects.get(pk=admin.pk).is_active
    assert client.get(f"/admin/accounts/user/{jo.pk}/delete/").status_code == 403
    assert "delete_selected" not in client.get("/admin/accounts/user/").content.decode()


def test_password_reset_page_goes_through_the_service(client, make_user):
    kim = make_user("viewer", username="kim")
    url = f"/admin/accounts/user/{kim.pk}/password/"
    assert client.get(url).status_code == 200
    weak = client.post(url, {"new_password1": "abc", "new_password2": "abc"})
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    assert client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}).status_code == 302
    kim.refresh_from_db()
    assert kim.check_password(NEW_PASSWORD)
    assert AuditEntry.objects.filter(action="user.password_reset", target="user:kim", source="admin").exists()


def test_key_pages_show_only_masked_values(client):
    response = client.post(
        "/admin/accounts/globalkey/add/", {"name": "netbox", "label": "NetBox", "url": "", "value": SECRET}
    )
    assert response.status_code == 302
    key = GlobalKey.objects.get(name="netbox")
    for url in ("/admin/accounts/globalkey/", f"/admin/accounts/globalkey/{key.pk}/change/"):
        page = client.get(url).content.decode()
        assert "••••WXYZ" in page and SECRET not in page and key.value_encrypted not in page
    # Changing the label keeps the value.
    change = client.post(
        f"/admin/accounts/globalkey/{key.pk}/change/", {"label": "NetBox prod", "url": "", "value": ""}
    )
    assert change.status_code == 302
    from accounts.keys import secret_get

    assert secret_get("netbox") == SECRET and GlobalKey.objects.get().label == "NetBox prod"
    assert client.post(f"/admin/accounts/globalkey/{key.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(AuditEntry.objects.filter(target="key:netbox").order_by("id").values_list("action", flat=True)) == [
        "key.create", "key.update", "key.delete",
    ]  # fmt: skip


def test_new_key_needs_a_valid_name_and_a_value(client):
    response = client.post("/admin/accounts/globalkey/add/", {"name": "Bad Name", "label": "", "url": "", "value": ""})
    body = response.content.decode()
    assert response.status_code == 200 and "A value is required" in body
    assert not GlobalKey.objects.exists()


def test_tokens_are_revoked_from_the_admin_and_audit_is_read_only(client, make_user):
    token, _ = api_token_create(user=make_user("viewer"), label="laptop")
    assert client.get("/admin/accounts/apitoken/").status_code == 200
    response = client.post("/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]})
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked is not None
    entry = AuditEntry.objects.get(action="token.revoke")
    page = client.get(f"/admin/accounts/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.get("/admin/accounts/auditentry/add/").status_code == 403
    assert client.post(f"/admin/accounts/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    global_key_set(name="backup", value="x" * 20)
    assert "••••xxxx" in client.get("/admin/accounts/globalkey/").content.decode()
