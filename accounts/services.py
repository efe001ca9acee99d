"""Account services: every door (admin, API, management command) calls these."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.contrib.auth.models import Group
from django.db import transaction

from accounts.models import ApiToken, User
from accounts.roles import Role

TOKEN_PREFIX = "ent_"


class AccountError(Exception):
    """A requested account change is not allowed or not valid."""


def token_hash(token: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def user_set_role(*, user: User, role: str) -> User:
    """Give ``user`` a role: its group replaces any role group they had; admins get the Django admin."""
    if role not in Role.values:
        raise AccountError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    user.role = role
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    user.groups.remove(*Group.objects.filter(name__in=Role.values).exclude(name=role))
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    return user


@transaction.atomic
def user_create(
    *, username: str, password: str | None, role: str = Role.VIEWER, email: str = "", display_name: str = ""
) -> User:
    """Create an active user with a role. ``password=None`` leaves the account without a usable password."""
    if User.objects.filter(username__iexact=username).exists():
        raise AccountError(f"A user named {username!r} already exists.")
    user = User(username=username, email=email, display_name=display_name)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save()
    return user_set_role(user=user, role=role)


def admin_ensure(*, username: str, password: str = "") -> tuple[User | None, str | None]:
    """Create the first admin account if no active admin exists.

    Returns ``(user, generated_password)``: ``(None, None)`` when an admin already exists, the password is only
    returned when it was generated here (so it can be printed once).
    """
    if User.objects.filter(role=Role.ADMIN, is_active=True).exists():
        return None, None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        existing.set_password(password)
        existing.is_active = True
        existing.save(update_fields=["password", "is_active"])
        return user_set_role(user=existing, role=Role.ADMIN), generated
    return user_create(username=username, password=password, role=Role.ADMIN), generated


def api_token_create(
    *, user: User, label: str = "", expires: datetime | None = None, read_only: bool = False
) -> tuple[ApiToken, str]:
    """Create a personal API token. The secret is returned once and only its hash is stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        label=label,
        prefix=secret[: len(TOKEN_PREFIX) + 8],
        key_hash=token_hash(secret),
        expires=expires,
        read_only=read_only,
    )
    return token, secret
