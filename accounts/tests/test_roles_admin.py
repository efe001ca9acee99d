"""Roles in the admin: four built-in roles, capabilities as checkboxes, never added, renamed or deleted."""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import AuditEntry
from accounts.roles import CAPABILITIES
from accounts.selectors import role_capabilities

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(make_user):
    client = Client()
    client.force_login(make_user("admin", username="boss"))
    return client


def test_roles_list_shows_the_four_roles_with_capabilities(admin_client):
    page = admin_client.get("/admin/accounts/rolegroup/").content.decode()
    for label in ("Admin", "Member", "Operator", "Viewer"):
        assert f">{label}<" in page
    assert "Download exports" in page
    assert "/admin/auth/group/" not in admin_client.get("/admin/").content.decode()


def test_capabilities_are_checkboxes_and_saving_changes_the_role(admin_client, make_user):
    operator = Group.objects.get(name="operator")
    form = admin_client.get(f"/admin/accounts/rolegroup/{operator.pk}/change/").content.decode()
    assert 'type="checkbox" name="capabilities" value="chat.use"' in form
    assert 'name="name"' not in form  # the name is shown, not editable
    response = admin_client.post(
        f"/admin/accounts/rolegroup/{operator.pk}/change/",
        {"capabilities": ["export.download", "chat.use"], "name": "renamed"},
    )
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.name == "operator"
    assert role_capabilities(role="operator") == ["chat.use", "export.download"]
    assert make_user("operator").has_capability("chat.use")
    assert AuditEntry.objects.filter(action="role.capabilities", target="role:operator").exists()


def test_built_in_roles_cannot_be_added_or_deleted(admin_client):
    viewer = Group.objects.get(name="viewer")
    assert admin_client.get("/admin/accounts/rolegroup/add/").status_code == 403
    assert admin_client.post(f"/admin/accounts/rolegroup/{viewer.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Group.objects.filter(name="viewer").exists()


def test_the_admin_roles_capabilities_cannot_be_removed(admin_client):
    admin_role = Group.objects.get(name="admin")
    form = admin_client.get(f"/admin/accounts/rolegroup/{admin_role.pk}/change/").content.decode()
    boxes = re.findall(r'<input type="checkbox" name="capabilities"[^>]*>', form)
    assert len(boxes) == len(CAPABILITIES) and all("disabled" in box and "checked" in box for box in boxes)
    before = set(admin_role.permissions.values_list("codename", flat=True))
    admin_client.post(f"/admin/accounts/rolegroup/{admin_role.pk}/change/", {"capabilities": []})
    assert set(admin_role.permissions.values_list("codename", flat=True)) == before


def test_the_admin_is_titled_for_the_product(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "Enreach tools administration" in page and "Django administration" not in page
    assert "<title>Users, roles, keys and exports | Enreach tools admin</title>" in page
