"""Reads of users, roles, tokens, global keys and the audit trail."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import QuerySet

from accounts.models import ApiToken, GlobalKey, User
from accounts.roles import CAPABILITIES, Role, capability_codename


def user_list(*, role: str | None = None, is_active: bool | None = None) -> QuerySet[User]:
    """Users by username, optionally filtered by role and active flag."""
    users = User.objects.order_by("username")
    if role:
        users = users.filter(role=role)
    if is_active is not None:
        users = users.filter(is_active=is_active)
    return users


def user_get(*, username: str) -> User | None:
    """A user by username (case-insensitive), or None."""
    return User.objects.filter(username__iexact=username).first()


def role_capabilities(*, role: str) -> list[str]:
    """The sorted capabilities a role grants (admins hold every capability as superusers)."""
    if role == Role.ADMIN:
        return sorted(CAPABILITIES)
    group = Group.objects.filter(name=role).first()
    if group is None:
        return []
    codenames = set(group.permissions.filter(content_type__app_label="accounts").values_list("codename", flat=True))
    return sorted(cap for cap in CAPABILITIES if capability_codename(cap) in codenames)


def role_list() -> list[dict[str, object]]:
    """Every role with its label, capabilities and number of active users."""
    return [
        {
            "name": role.value,
            "label": role.label,
            "capabilities": role_capabilities(role=role.value),
            "users": User.objects.filter(role=role.value, is_active=True).count(),
        }
        for role in Role
    ]


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    """A user's tokens, newest first, revoked ones included."""
    return ApiToken.objects.filter(user=user).order_by("-created", "-id")


def global_key_list() -> QuerySet[GlobalKey]:
    """Global keys by name, with who changed them last."""
    return GlobalKey.objects.select_related("updated_by").order_by("name")
