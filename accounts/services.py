"""Account services: every door (admin, API, management command, profile page) calls these.

Writes that matter for security (provisioning, role and capability changes, passwords, tokens, global keys)
record an ``AuditEntry``; callers say who acts and from where with an ``AuditContext``.

Users, roles, passwords and profiles are here; the audit trail is ``accounts.audit``, API tokens
``accounts.tokens``, global keys ``accounts.global_keys``, the errors ``accounts.errors``.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.audit import AuditContext, audit_record
from accounts.errors import AccountError, AccountThrottled, GuardRailError
from accounts.models import User
from accounts.preferences import preference_errors
from accounts.roles import CAPABILITIES, Role, capability_codename
from accounts.throttling import TooManyAttempts, password_attempt_begin
from accounts.tokens import tokens_revoke_all


def _password_check(password: str, *, user: User | None, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages), field=field) from None


def local_password_allowed(user: User) -> bool:
    """Whether ``user`` may sign in with (or be given) a password kept here: always for local accounts; for users a
    directory manages only when ``DIRECTORY_ALLOW_LOCAL_PASSWORDS`` is on."""
    return not user.is_directory_managed or bool(getattr(settings, "DIRECTORY_ALLOW_LOCAL_PASSWORDS", False))


def _local_password_check(user: User, *, field: str = "password") -> None:
    if not local_password_allowed(user):
        raise AccountError(
            f"{user.username} signs in through the {user.get_source_display()}; local passwords are off for "
            "directory users (DIRECTORY_ALLOW_LOCAL_PASSWORDS).",
            field=field,
        )


def _email_check(email: str) -> None:
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise AccountError("Enter a valid email address.", field="email") from None


def _active_admins() -> int:
    return User.objects.filter(role=Role.ADMIN, is_active=True).count()


def _guard(*, user: User, role: str | None = None, is_active: bool | None = None, by: AuditContext | None) -> None:
    """Refuse changes that would lock administrators out. Looks at the stored state, not the unsaved instance."""
    stored = User.objects.filter(pk=user.pk).values("role", "is_active").first() if user.pk else None
    if stored is None or stored["role"] != Role.ADMIN or not stored["is_active"]:
        return
    demoted = role is not None and role != Role.ADMIN
    deactivated = is_active is False
    if not (demoted or deactivated):
        return
    acting_on_self = by is not None and by.user is not None and by.user.pk == user.pk
    if acting_on_self and demoted:
        raise GuardRailError("You cannot remove your own admin role.", field="role")
    if acting_on_self and deactivated:
        raise GuardRailError("You cannot deactivate yourself.", field="is_active")
    if _active_admins() <= 1:
        raise GuardRailError(
            f"{user.username!r} is the last active admin: promote another admin first.",
            field="role" if demoted else "is_active",
        )


def user_change_check(
    *, user: User, role: str | None = None, is_active: bool | None = None, by: AuditContext | None = None
) -> None:
    """Raise ``AccountError`` if the change is not allowed (used by forms to show the error beside the field)."""
    if role is not None and role not in Role.values:
        raise AccountError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role")
    _guard(user=user, role=role, is_active=is_active, by=by)


def _role_apply(user: User, role: str) -> None:
    user.role = role
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    user.groups.remove(*Group.objects.filter(name__in=Role.values).exclude(name=role))
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)


@transaction.atomic
def user_set_role(*, user: User, role: str, by: AuditContext | None = None) -> User:
    """Give ``user`` a role: its group replaces any role group they had; admins get the Django admin."""
    user_change_check(user=user, role=role, by=by)
    previous = User.objects.filter(pk=user.pk).values_list("role", flat=True).first()
    _role_apply(user, role)
    if previous != role:
        audit_record(by=by, action="user.role", target=f"user:{user.username}", detail={"from": previous, "to": role})
    return user


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str | None,
    role: str = Role.VIEWER,
    email: str = "",
    display_name: str = "",
    by: AuditContext | None = None,
    check_password: bool = True,
) -> User:
    """Create an active user with a role. ``password=None`` leaves the account without a usable password.

    The password goes through Django's validators unless ``check_password`` is off (the bootstrap admin).
    """
    username = (username or "").strip()
    if not username:
        raise AccountError("A username is required.", field="username")
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages), field="username") from None
    if User.objects.filter(username__iexact=username).exists():
        raise AccountError(f"A user named {username!r} already exists.", field="username")
    if role not in Role.values:
        raise AccountError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role")
    _email_check(email)
    user = User(username=username, email=email, display_name=display_name)
    if password is None:
        user.set_unusable_password()
    else:
        if check_password:
            _password_check(password, user=user)
        user.set_password(password)
    user.save()
    audit_record(by=by, action="user.create", target=f"user:{username}", detail={"role": role})
    _role_apply(user, role)
    return user


@transaction.atomic
def user_update(
    *,
    user: User,
    by: AuditContext | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    email: str | None = None,
    display_name: str | None = None,
) -> User:
    """Change a user's role, active flag, email or display name (only what is given), within the guard rails."""
    user_change_check(user=user, role=role, is_active=is_active, by=by)
    changed: dict[str, Any] = {}
    if email is not None and email != user.email:
        _email_check(email)
        user.email = changed["email"] = email
    if display_name is not None and display_name != user.display_name:
        user.display_name = changed["display_name"] = display_name
    if changed:
        user.save(update_fields=list(changed))
        audit_record(by=by, action="user.update", target=f"user:{user.username}", detail={"fields": sorted(changed)})
    if role is not None:
        user_set_role(user=user, role=role, by=by)
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        user.save(update_fields=["is_active"])
        detail: dict[str, Any] = {}
        if not is_active:
            detail["tokens_revoked"] = user.tokens_revoked = tokens_revoke_all(  # type: ignore[attr-defined]
                user=user, by=by, reason="deactivation"
            )
        action = "user.activate" if is_active else "user.deactivate"
        audit_record(by=by, action=action, target=f"user:{user.username}", detail=detail)
    return user


def user_deactivate(*, user: User, by: AuditContext | None = None) -> User:
    """Deactivate instead of deleting: sign-in and sessions stop working, the API tokens are revoked (their number
    in ``user.tokens_revoked``), history is kept."""
    return user_update(user=user, is_active=False, by=by)


@transaction.atomic
def user_set_password(*, user: User, password: str, by: AuditContext | None = None) -> User:
    """Reset a user's password (validated). Their existing sessions stop working and their API tokens are revoked;
    ``user.tokens_revoked`` says how many."""
    _local_password_check(user)
    _password_check(password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    revoked = tokens_revoke_all(user=user, by=by, reason="password_reset")
    audit_record(
        by=by, action="user.password_reset", target=f"user:{user.username}", detail={"tokens_revoked": revoked}
    )
    user.tokens_revoked = revoked  # type: ignore[attr-defined]
    return user


def password_change(*, user: User, current_password: str, new_password: str, by: AuditContext | None = None) -> User:
    """A user changes their own password: the current one is required, the new one validated.

    Checks of the current password are rate limited like sign-ins (per account at the address, and per address);
    over the limit ``AccountThrottled`` is raised without checking. Other sessions end because the session auth
    hash changes (the caller keeps the current session with ``update_session_auth_hash``) and the user's API
    tokens are revoked.
    """
    _local_password_check(user, field="new_password")
    # Counted outside any transaction: a failure must stay counted when the change is refused.
    try:
        attempt = password_attempt_begin(
            account=f"#{user.pk}", address=(by.ip if by else None) or "", what="current-password checks"
        )
    except TooManyAttempts as exc:
        raise AccountThrottled(exc.message, field="current_password", wait=exc.wait) from None
    if not user.check_password(current_password or ""):
        raise AccountError("The current password is not correct.", field="current_password")
    attempt.succeeded()
    _password_check(new_password, user=user, field="new_password")
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        revoked = tokens_revoke_all(user=user, by=by, reason="password_change")
        audit_record(
            by=by, action="user.password_change", target=f"user:{user.username}", detail={"tokens_revoked": revoked}
        )
    user.tokens_revoked = revoked  # type: ignore[attr-defined]
    return user


@transaction.atomic
def profile_update(
    *,
    user: User,
    display_name: str | None = None,
    email: str | None = None,
    preferences: dict[str, Any] | None = None,
    by: AuditContext | None = None,
) -> User:
    """Change one's own profile. Only the given fields change; ``preferences`` are merged key by key."""
    fields: list[str] = []
    if display_name is not None:
        user.display_name = display_name.strip()
        fields.append("display_name")
    if email is not None:
        _email_check(email)
        user.email = email
        fields.append("email")
    if preferences is not None:
        errors = preference_errors(preferences)
        if errors:
            key, message = next(iter(errors.items()))
            raise AccountError(message, field=f"preferences.{key}")
        merged = {**(user.preferences or {}), **preferences}
        user.preferences = {k: v for k, v in merged.items() if v is not None}
        fields.append("preferences")
    if fields:
        user.save(update_fields=fields)
        if "email" in fields:
            audit_record(by=by, action="user.email", target=f"user:{user.username}")
    return user


@transaction.atomic
def role_set_capabilities(*, role: str, capabilities: list[str], by: AuditContext | None = None) -> list[str]:
    """Replace a role's capabilities (its group's ``accounts`` capability permissions; other permissions stay)."""
    if role not in Role.values:
        raise AccountError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role")
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise AccountError(
            f"Unknown capabilities: {', '.join(unknown)}; known: {', '.join(CAPABILITIES)}.", field="capabilities"
        )
    if role == Role.ADMIN:
        raise AccountError("The admin role always holds every capability.", field="role")
    group, _ = Group.objects.get_or_create(name=role)
    codenames = [capability_codename(cap) for cap in CAPABILITIES]
    perms = Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
    wanted = {capability_codename(cap) for cap in capabilities}
    before = sorted(cap for cap in CAPABILITIES if group.permissions.filter(codename=capability_codename(cap)).exists())
    group.permissions.remove(*[p for p in perms if p.codename not in wanted])
    group.permissions.add(*[p for p in perms if p.codename in wanted])
    after = sorted(set(capabilities))
    if before != after:
        audit_record(by=by, action="role.capabilities", target=f"role:{role}", detail={"from": before, "to": after})
    return after


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
    return user_create(username=username, password=password, role=Role.ADMIN, check_password=False), generated
