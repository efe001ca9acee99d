"""Directory-managed users without a directory: role mapping, the sign-in service's decisions, the admin's warning.

The LDAP and OIDC adapters are tested against real servers in ``integrations/tests/test_directory_*.py``; this file
checks what ``accounts.directory`` decides from what a directory says.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.directory import (
    DirectoryIdentity,
    DirectoryRefused,
    RoleMapping,
    directory_sign_in,
    directory_users_reconcile,
    role_for_groups,
    role_groups_parse,
)
from accounts.models import ApiToken, AuditEntry, User
from accounts.tokens import api_token_create

ADMINS = "cn=CMDB Admins,ou=groups,dc=example,dc=com"
OPS = "cn=cmdb-ops,ou=groups,dc=example,dc=com"
MAPPING = RoleMapping(groups=role_groups_parse(f"admin={ADMINS};operator={OPS};operator=cn=night-shift,dc=example"))


def ldap_identity(username: str = "lee", *groups: str, enabled: bool = True) -> DirectoryIdentity:
    return DirectoryIdentity(
        source=User.Source.LDAP,
        directory_id=f"uid={username},ou=people,dc=example,dc=com",
        username=username,
        email=f"{username}@example.com",
        first_name="Lee",
        last_name="Directory",
        groups=groups,
        enabled=enabled,
    )


def test_role_groups_parse_keeps_dns_whole_and_allows_a_role_twice():
    assert role_groups_parse(" admin = cn=a,dc=x ; operator=cn=b,dc=x;operator=cn=c,dc=x;; ") == {
        "admin": ("cn=a,dc=x",),
        "operator": ("cn=b,dc=x", "cn=c,dc=x"),
    }
    assert role_groups_parse("") == {}
    with pytest.raises(ImproperlyConfigured, match="unknown role 'owner'"):
        role_groups_parse("owner=cn=a,dc=x", setting="AUTH_LDAP_ROLE_GROUPS")
    with pytest.raises(ImproperlyConfigured, match="is not role=group"):
        role_groups_parse("admin")


def test_the_highest_role_wins_and_dns_compare_loosely():
    mapping = role_groups_parse(f"viewer=cn=all,dc=x;admin={ADMINS};member=cn=m,dc=x")
    role, matched = role_for_groups(
        groups=["cn=all,dc=x", "CN=cmdb admins, OU=groups, DC=example, DC=com"], mapping=mapping
    )
    assert role == "admin" and matched == ["CN=cmdb admins, OU=groups, DC=example, DC=com"]
    assert role_for_groups(groups=["cn=other"], mapping=mapping) == (None, [])
    assert role_for_groups(groups=[], mapping=mapping, default="viewer") == ("viewer", [])


@pytest.mark.django_db
def test_sign_in_creates_then_follows_the_directory(seeded_roles):
    user = directory_sign_in(identity=ldap_identity("lee", OPS), mapping=MAPPING, ip="192.0.2.7")
    assert (user.role, user.source, user.is_active, user.has_usable_password()) == ("operator", "ldap", True, False)
    assert user.directory_groups == [OPS]  # type: ignore[attr-defined]
    assert AuditEntry.objects.get(action="user.create").ip == "192.0.2.7"

    again = directory_sign_in(identity=ldap_identity("lee", OPS, ADMINS), mapping=MAPPING)
    assert again.pk == user.pk and again.role == "admin" and again.is_superuser
    entry = AuditEntry.objects.get(action="user.role")
    assert (entry.source, entry.actor_name, entry.detail) == (
        "ldap", "directory:ldap", {"from": "operator", "to": "admin", "groups": [ADMINS]},
    )  # fmt: skip


@pytest.mark.django_db
def test_a_directory_may_demote_the_only_admin_a_local_break_glass_admin_is_untouched(seeded_roles, make_user):
    breakglass = make_user("admin", username="breakglass")
    directory_sign_in(identity=ldap_identity("lee", ADMINS), mapping=MAPPING)
    lee = directory_sign_in(identity=ldap_identity("lee", OPS), mapping=MAPPING)
    assert lee.role == "operator"
    with pytest.raises(DirectoryRefused) as refused:
        directory_sign_in(identity=ldap_identity("breakglass", ADMINS), mapping=MAPPING)
    assert refused.value.code == "local_account"
    breakglass.refresh_from_db()
    assert (breakglass.source, breakglass.role, breakglass.is_active) == ("local", "admin", True)


@pytest.mark.django_db
def test_refusals_deactivate_and_revoke_and_a_later_grant_reactivates(seeded_roles):
    user = directory_sign_in(identity=ldap_identity("lee", OPS), mapping=MAPPING)
    api_token_create(user=user, label="a")
    with pytest.raises(DirectoryRefused, match="not in any group") as refused:
        directory_sign_in(identity=ldap_identity("lee"), mapping=MAPPING)
    assert refused.value.code == "no_role"
    user.refresh_from_db()
    assert not user.is_active and not ApiToken.objects.filter(user=user, revoked__isnull=True).exists()
    with pytest.raises(DirectoryRefused, match="is disabled"):
        directory_sign_in(identity=ldap_identity("lee", OPS, enabled=False), mapping=MAPPING)

    back = directory_sign_in(identity=ldap_identity("lee", OPS), mapping=MAPPING)
    assert back.is_active
    assert AuditEntry.objects.filter(action="user.activate", target="user:lee").exists()


@pytest.mark.django_db
def test_oidc_users_are_matched_by_subject_and_a_taken_username_is_refused(seeded_roles):
    mapping = RoleMapping(groups={"member": ("cmdb",)})
    first = DirectoryIdentity(source="oidc", directory_id="sub-1", username="kim", groups=("cmdb",))
    user = directory_sign_in(identity=first, mapping=mapping)
    renamed = DirectoryIdentity(source="oidc", directory_id="sub-1", username="kim.new", groups=("cmdb",))
    assert directory_sign_in(identity=renamed, mapping=mapping).pk == user.pk  # the subject is the account
    other = DirectoryIdentity(source="oidc", directory_id="sub-2", username="KIM", groups=("cmdb",))
    with pytest.raises(DirectoryRefused) as refused:
        directory_sign_in(identity=other, mapping=mapping)
    assert refused.value.code == "username_taken"


@pytest.mark.django_db
def test_reconcile_deactivates_the_removed_and_moves_roles(seeded_roles):
    for name in ("gone", "moved", "kept"):
        directory_sign_in(identity=ldap_identity(name, OPS), mapping=MAPPING)
    result = directory_users_reconcile(
        source="ldap", lookup={"gone": None, "moved": ldap_identity("moved", ADMINS)}, mapping=MAPPING
    )
    assert result.deactivated == ["gone"] and result.role_changed == ["moved"] and result.unchanged == 1
    assert not User.objects.get(username="gone").is_active
    assert User.objects.get(username="moved").role == "admin"


@pytest.mark.django_db
def test_the_admin_shows_the_source_and_asks_before_a_hand_edit_of_a_directory_user(seeded_roles, make_user, client):
    client.force_login(make_user("admin", username="root"))
    lee = directory_sign_in(identity=ldap_identity("lee", OPS), mapping=MAPPING)
    listing = client.get("/admin/accounts/user/?source=ldap").content.decode()
    assert "lee" in listing and "LDAP directory" in listing and "root" not in listing.split("result_list")[1]

    page = client.get(f"/admin/accounts/user/{lee.pk}/change/").content.decode()
    assert "Set by the LDAP directory at every sign-in" in page and "Change it anyway" in page
    form = {"display_name": "Lee", "email": "lee@example.com", "role": "member", "is_active": "on"}
    form.update({"api_tokens-TOTAL_FORMS": "0", "api_tokens-INITIAL_FORMS": "0"})
    refused = client.post(f"/admin/accounts/user/{lee.pk}/change/", form).content.decode()
    assert "the next sign-in sets them again" in refused
    assert User.objects.get(pk=lee.pk).role == "operator"

    saved = client.post(f"/admin/accounts/user/{lee.pk}/change/", {**form, "directory_override": "on"}, follow=True)
    assert "sets them again at their next sign-in" in saved.content.decode()
    assert User.objects.get(pk=lee.pk).role == "member"
    # A local user's form has no such box.
    local = make_user("viewer", username="local")
    assert "Change it anyway" not in client.get(f"/admin/accounts/user/{local.pk}/change/").content.decode()
    # No local password for a directory user while DIRECTORY_ALLOW_LOCAL_PASSWORDS is off: a clear error, no 500.
    reset = client.post(
        f"/admin/accounts/user/{lee.pk}/password/",
        {"new_password1": "Another-passphrase-81", "new_password2": "Another-passphrase-81"},
    )
    assert reset.status_code == 200 and "local passwords are off for directory users" in reset.content.decode()


@pytest.mark.django_db
def test_a_local_sign_in_is_audited_with_its_method(seeded_roles, make_user, client):
    from conftest import PASSWORD

    make_user("viewer", username="val")
    client.post("/accounts/login/", {"username": "val", "password": PASSWORD}, REMOTE_ADDR="198.51.100.4")
    entry = AuditEntry.objects.get(action="user.sign_in", target="user:val")
    assert (entry.detail, entry.source, entry.ip) == ({"method": "local", "role": "viewer"}, "web", "198.51.100.4")
