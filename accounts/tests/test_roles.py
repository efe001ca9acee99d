from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from accounts.errors import AccountError
from accounts.roles import CAPABILITIES, ROLE_CAPABILITIES, Role, capability_codename
from accounts.services import user_set_role

pytestmark = pytest.mark.django_db


def group_capabilities(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    codenames = set(group.permissions.filter(content_type__app_label="accounts").values_list("codename", flat=True))
    return {cap for cap in CAPABILITIES if capability_codename(cap) in codenames}


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", {"export.run", "export.download", "chat.use", "suggestions.manage", "keys.manage", "columns.manage"}),
        ("member", {"export.run", "export.download", "chat.use"}),
        ("operator", {"export.run", "export.download"}),
        ("viewer", {"export.download"}),
    ],
)
def test_roles_are_seeded_with_their_capabilities(role, expected):
    assert group_capabilities(role) == expected
    assert set(ROLE_CAPABILITIES[role]) == expected


@pytest.mark.parametrize("role", Role.values)
def test_user_holds_exactly_the_capabilities_of_their_role(make_user, role):
    user = make_user(role)
    assert user.capabilities == sorted(ROLE_CAPABILITIES[role])
    assert list(user.groups.values_list("name", flat=True)) == [role]
    assert user.is_staff is (role == Role.ADMIN)


def test_changing_role_swaps_group_and_capabilities(make_user):
    user = make_user("viewer")
    user_set_role(user=user, role="member")
    user = type(user).objects.get(pk=user.pk)
    assert list(user.groups.values_list("name", flat=True)) == ["member"]
    assert user.has_capability("chat.use")


def test_unknown_role_is_refused(make_user):
    with pytest.raises(AccountError, match="Unknown role"):
        user_set_role(user=make_user("viewer"), role="root")


def test_edited_role_is_not_reseeded_on_restart(make_user):
    viewer = Group.objects.get(name="viewer")
    viewer.permissions.remove(Permission.objects.get(codename="export_download"))
    # What a restart runs: migrations and the first-admin bootstrap.
    call_command("migrate", verbosity=0)
    call_command("ensure_admin", stdout=StringIO())
    assert group_capabilities("viewer") == set()
    assert not make_user("viewer").has_capability("export.download")


def test_inactive_user_has_no_capability(make_user):
    user = make_user("admin")
    user.is_active = False
    assert user.capabilities == []
