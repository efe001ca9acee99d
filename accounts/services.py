"""Account services: every door (admin, API, management command, profile page) calls these.

Writes that matter for security (provisioning, role and capability changes, passwords, tokens, global keys)
record an ``AuditEntry``; callers say who acts and from where with an ``AuditContext``.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import keys
from accounts.models import ApiToken, AuditEntry, GlobalKey, User
from accounts.preferences import preference_errors
from accounts.roles import CAPABILITIES, Role, capability_codename
from accounts.throttling import TooManyAttempts, client_ip, password_attempt_begin

TOKEN_PREFIX = "ent_"
KEY_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class AccountError(Exception):
    """A requested account change is not valid. ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class AccountThrottled(AccountError):
    """Too many failed password checks: refused without checking. ``wait`` is in seconds."""

    def __init__(self, message: str, *, field: str | None = None, wait: int = 0) -> None:
        super().__init__(message, field=field)
        self.wait = wait


class GuardRailError(AccountError):
    """A change that would lock administrators out: demoting or deactivating oneself or the last active admin."""


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Who performs a change and from where, for the audit trail."""

    user: User | None = None
    source: str = AuditEntry.Source.SYSTEM
    ip: str | None = None
    name: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, *, source: str) -> AuditContext:
        """The signed-in user of a web, admin or API request and the client's address."""
        user = request.user if request.user.is_authenticated else None
        return cls(user=user, source=source, ip=client_ip(request) or None)  # type: ignore[arg-type]

    @classmethod
    def cli(cls) -> AuditContext:
        """A management command: the operating-system account that ran it."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(source=AuditEntry.Source.CLI, name=f"cli:{who}")

    @property
    def actor_name(self) -> str:
        return self.user.username if self.user is not None else self.name


SYSTEM = AuditContext()


def audit_record(
    *, by: AuditContext | None, action: str, target: str = "", detail: dict[str, Any] | None = None
) -> None:
    """Write one audit entry. ``detail`` must never contain a secret."""
    by = by or SYSTEM
    AuditEntry.objects.create(
        actor=by.user,
        actor_name=by.actor_name,
        source=by.source,
        ip=by.ip,
        action=action,
        target=target,
        detail=detail or {},
    )


def token_hash(token: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def _password_check(password: str, *, user: User | None, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages), field=field) from None


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
            detail["tokens_revoked"] = user.tokens_revoked = _tokens_revoke_all(  # type: ignore[attr-defined]
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
    _password_check(password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    revoked = _tokens_revoke_all(user=user, by=by, reason="password_reset")
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
        revoked = _tokens_revoke_all(user=user, by=by, reason="password_change")
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


def api_token_create(
    *,
    user: User,
    label: str = "",
    expires: datetime | None = None,
    read_only: bool = False,
    by: AuditContext | None = None,
) -> tuple[ApiToken, str]:
    """Create a personal API token. The secret is returned once and only its hash is stored."""
    if expires is not None and expires <= timezone.now():
        raise AccountError("The expiry must be in the future.", field="expires")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        label=label,
        prefix=secret[: len(TOKEN_PREFIX) + 8],
        key_hash=token_hash(secret),
        expires=expires,
        read_only=read_only,
    )
    audit_record(
        by=by,
        action="token.create",
        target=f"token:{token.prefix}",
        detail={"owner": user.username, "label": label, "read_only": read_only},
    )
    return token, secret


def api_token_revoke(*, token: ApiToken, by: AuditContext | None = None) -> ApiToken:
    """Revoke a token now. Revoked tokens stay listed (for the record) and never authenticate again."""
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
        audit_record(
            by=by, action="token.revoke", target=f"token:{token.prefix}", detail={"owner": token.user.username}
        )
    return token


def _tokens_revoke_all(*, user: User, by: AuditContext | None, reason: str) -> int:
    """Revoke every usable token of ``user`` (credentials end together), one audit entry each; how many."""
    count = 0
    for token in ApiToken.objects.select_for_update().filter(user=user, revoked__isnull=True).order_by("pk"):
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
        audit_record(
            by=by,
            action="token.revoke",
            target=f"token:{token.prefix}",
            detail={"owner": user.username, "reason": reason},
        )
        count += 1
    return count


def global_key_name_check(name: str) -> None:
    """Raise ``AccountError`` unless ``name`` is a valid key name."""
    if not KEY_NAME_RE.match(name or ""):
        raise AccountError(
            "Key names are 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit.", field="name"
        )


@transaction.atomic
def global_key_set(
    *,
    name: str,
    value: str | None = None,
    label: str | None = None,
    url: str | None = None,
    by: AuditContext | None = None,
) -> GlobalKey:
    """Create or change a global key. ``value=None`` keeps the stored value (to change only the label or URL)."""
    global_key_name_check(name)
    key = GlobalKey.objects.select_for_update().filter(name=name).first()
    if key is None and not value:
        raise AccountError("A value is required for a new key.", field="value")
    if value is not None and not value:
        raise AccountError("The value cannot be empty; delete the key instead.", field="value")
    created = key is None
    key = key or GlobalKey(name=name)
    changed: list[str] = []
    if value is not None:
        try:
            key.value_encrypted = keys.encrypt(value)
        except keys.KeyUnavailable as exc:
            raise AccountError(str(exc), field="value") from None
        # Short values get no hint: four characters of an eight-character secret is half of it.
        key.hint = value[-4:] if len(value) >= 12 else ""
        changed.append("value")
    if label is not None and label != key.label:
        key.label = label
        changed.append("label")
    if url is not None and url != key.url:
        key.url = url
        changed.append("url")
    key.updated_by = by.user if by else None
    key.save()
    audit_record(
        by=by, action="key.create" if created else "key.update", target=f"key:{name}", detail={"fields": changed}
    )
    keys.key_change_notify(name=name, action="set")
    return key


@transaction.atomic
def global_key_delete(*, name: str, by: AuditContext | None = None) -> None:
    """Delete a global key: integrations fall back to the environment."""
    deleted, _ = GlobalKey.objects.filter(name=name).delete()
    if not deleted:
        raise AccountError(f"No global key named {name!r}.", field="name")
    audit_record(by=by, action="key.delete", target=f"key:{name}")
    keys.key_change_notify(name=name, action="delete")


@transaction.atomic
def global_keys_rotate(*, old_keys: list[str], by: AuditContext | None = None) -> int:
    """Re-encrypt every global key with the current encryption key; values may be under ``old_keys``.

    All or nothing: one value that no key decrypts aborts the rotation.
    """
    count = 0
    for key in GlobalKey.objects.select_for_update().order_by("pk"):
        try:
            key.value_encrypted = keys.rotate(key.value_encrypted, old_keys=old_keys)
        except keys.KeyUnavailable as exc:
            raise AccountError(f"{key.name}: {exc}") from None
        # update(), not save(): re-encrypting is not a change of the value, "updated" keeps its meaning.
        GlobalKey.objects.filter(pk=key.pk).update(value_encrypted=key.value_encrypted)
        count += 1
    audit_record(by=by, action="key.rotate", detail={"keys": count})
    return count
