"""Directory-managed users: LDAP / Active Directory and OpenID Connect sign-in, without the vendor protocols.

The sign-in adapters in ``integrations/directory/`` speak LDAP and OIDC and hand over a ``DirectoryIdentity`` (who
the directory says this is, whether the account is enabled, and its groups or role claim values). Everything that
decides what that means here lives in this module, the same for both sources:

- **Roles from groups** (``role_groups_parse``, ``role_for_groups``): ``admin=<group>;member=<group>;…``; the highest
  role of the matching groups wins; no matching group gives the configured default role, or no access.
- **At every sign-in** (``directory_sign_in``): the user is created at the first one (without a local password),
  then their role, active flag, name and e-mail are set from the directory each time. A disabled user, or one the
  groups no longer give a role, is refused with a clear message, deactivated, and their API tokens revoked.
- **Synchronisation** (``directory_users_reconcile``): ``manage.py directory_sync`` and its daily schedule ask the
  directory about every user it manages and deactivate those it no longer grants a role.

Local accounts are never taken over by a directory: a directory sign-in under the username of a local account is
refused (the break-glass admin stays local whatever the directory says). Changes made by a directory are written
to the audit trail with the directory as their source (``AuditEntry.Source.LDAP`` / ``OIDC``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction

from accounts.audit import AuditContext, audit_record
from accounts.errors import AccountError
from accounts.models import AuditEntry, User
from accounts.roles import Role
from accounts.services import _role_apply, user_create
from accounts.tokens import tokens_revoke_all

logger = logging.getLogger(__name__)

# Highest first: the first role of this list that any of the user's groups gives wins.
ROLE_ORDER: tuple[str, ...] = (Role.ADMIN, Role.MEMBER, Role.OPERATOR, Role.VIEWER)

NO_ROLE_MESSAGE = (
    "Your {directory} account is not in any group that gives access to Enreach tools. "
    "Ask your administrator to add you to one of its groups."
)
DISABLED_MESSAGE = "Your {directory} account is disabled. Ask your administrator."
LOCAL_ACCOUNT_MESSAGE = (
    "The account {username!r} is a local account of Enreach tools: sign in with its own password. "
    "An administrator can rename or deactivate it to let the {directory} manage this username."
)
OTHER_SOURCE_MESSAGE = (
    "The account {username!r} already belongs to another sign-in method ({other}). Ask your administrator."
)
BAD_USERNAME_MESSAGE = "Your {directory} account's username {username!r} cannot be used here: {reason}"


class DirectoryRefused(Exception):
    """A directory sign-in that must not go on; ``message`` is for the person signing in, ``code`` for the record."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class DirectoryIdentity:
    """What a directory says about the person signing in (or about a user it is asked about)."""

    source: str  # User.Source.LDAP or User.Source.OIDC
    directory_id: str  # the LDAP entry's DN, or the OIDC subject
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    groups: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RoleMapping:
    """``role -> group names or DNs`` from ``AUTH_LDAP_ROLE_GROUPS`` / ``OIDC_ROLE_GROUPS``, and the default role."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_role: str = ""

    def role_for(self, groups: Iterable[str]) -> tuple[str | None, list[str]]:
        """The role the groups give (or the default role, or None), and the mapped groups that gave it."""
        return role_for_groups(groups=groups, mapping=self.groups, default=self.default_role)


def _directory_label(source: str) -> str:
    labels: dict[str, str] = {User.Source.LDAP.value: "directory", User.Source.OIDC.value: "single sign-on"}
    return labels.get(source, "directory")


def group_key(value: str) -> str:
    """A group's name or DN compared case-insensitively and without the spaces a DN may carry after , and =."""
    return re.sub(r"\s*([,=+])\s*", r"\1", value.strip()).casefold()


def role_groups_parse(value: str, *, setting: str = "role groups") -> dict[str, tuple[str, ...]]:
    """``admin=cn=admins,dc=x;member=cn=a,dc=x;member=cn=b,dc=x`` -> ``{"admin": (...), "member": (..., ...)}``.

    Entries are separated by ``;`` (DNs hold commas) and split on the first ``=``; a role may appear more than once.
    """
    mapping: dict[str, list[str]] = {}
    for entry in (part.strip() for part in (value or "").split(";")):
        if not entry:
            continue
        role, sep, group = (piece.strip() for piece in entry.partition("="))
        if not sep or not group:
            raise ImproperlyConfigured(
                f"{setting}: {entry!r} is not role=group (e.g. admin=cn=cmdb-admins,dc=example)."
            )
        if role not in Role.values:
            raise ImproperlyConfigured(f"{setting}: unknown role {role!r}; the roles are {', '.join(Role.values)}.")
        mapping.setdefault(role, []).append(group)
    return {role: tuple(groups) for role, groups in mapping.items()}


def default_role_check(value: str, *, setting: str) -> str:
    """An empty default role (no access without a mapped group) or one of the roles."""
    value = (value or "").strip()
    if value and value not in Role.values:
        raise ImproperlyConfigured(f"{setting}: unknown role {value!r}; the roles are {', '.join(Role.values)}.")
    return value


def role_for_groups(
    *, groups: Iterable[str], mapping: Mapping[str, Iterable[str]], default: str = ""
) -> tuple[str | None, list[str]]:
    """The highest role any of ``groups`` is mapped to, with the groups that gave it; else ``default`` or None."""
    have = {group_key(group): group for group in groups}
    for role in ROLE_ORDER:
        matched = [have[group_key(g)] for g in mapping.get(role, ()) if group_key(g) in have]
        if matched:
            return role, sorted(set(matched))
    return (default or None), []


def _directory_by(source: str, *, ip: str | None) -> AuditContext:
    return AuditContext(source=source, ip=ip, name=f"directory:{source}")


def _refuse_and_revoke(*, user: User | None, identity: DirectoryIdentity, code: str, by: AuditContext) -> None:
    """Deactivate a user the directory no longer grants access (committed, whatever the caller does next)."""
    if user is None or user.pk is None:
        return
    with transaction.atomic():
        revoked = 0
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
            revoked = tokens_revoke_all(user=user, by=by, reason=f"directory_{code}")
            audit_record(
                by=by,
                action="user.deactivate",
                target=f"user:{user.username}",
                detail={"reason": code, "tokens_revoked": revoked},
            )
        else:
            # Deactivated before (by hand, or by an earlier sync): tokens an admin created since still go.
            revoked = tokens_revoke_all(user=user, by=by, reason=f"directory_{code}")
        user.tokens_revoked = revoked  # type: ignore[attr-defined]


def _find(identity: DirectoryIdentity) -> User | None:
    """The user a directory identity belongs to: LDAP by username (an entry may move in the tree), OIDC by subject."""
    if identity.source == User.Source.OIDC:
        return User.objects.filter(source=User.Source.OIDC, directory_id=identity.directory_id).first()
    return User.objects.filter(username__iexact=identity.username).first()


def _check_owner(user: User | None, identity: DirectoryIdentity) -> None:
    label = _directory_label(identity.source)
    if user is not None and user.source != identity.source:
        if user.source == User.Source.LOCAL:
            message = LOCAL_ACCOUNT_MESSAGE.format(username=user.username, directory=label)
            raise DirectoryRefused(message, code="local_account")
        other = User.Source(user.source).label
        raise DirectoryRefused(OTHER_SOURCE_MESSAGE.format(username=user.username, other=other), code="other_source")


def _profile_fields(identity: DirectoryIdentity) -> dict[str, str]:
    values = {
        "email": identity.email,
        "first_name": identity.first_name[:150],
        "last_name": identity.last_name[:150],
        "display_name": (identity.display_name or " ".join(p for p in (identity.first_name, identity.last_name) if p))[
            :150
        ],
    }
    return {name: value for name, value in values.items() if value}


def directory_sign_in(*, identity: DirectoryIdentity, mapping: RoleMapping, ip: str | None = None) -> User:
    """Sign-in through a directory: the local user, created at the first sign-in, with role and active flag set from
    the directory. Raises ``DirectoryRefused`` (after deactivating the user and revoking their tokens) when the
    account is disabled or no mapped group gives it a role.

    The returned user carries ``directory_groups`` (the groups that gave the role) for the sign-in's audit entry.
    """
    by = _directory_by(identity.source, ip=ip)
    label = _directory_label(identity.source)
    user = _find(identity)
    if user is None and identity.source == User.Source.OIDC:
        # Not linked yet: the username may belong to someone else already.
        user = User.objects.filter(username__iexact=identity.username).first()
        if user is not None and user.source == User.Source.OIDC:
            raise DirectoryRefused(
                f"The username {identity.username!r} belongs to another single sign-on account. "
                "Ask your administrator.",
                code="username_taken",
            )
    _check_owner(user, identity)
    role, matched = mapping.role_for(identity.groups)
    if not identity.enabled:
        _refuse_and_revoke(user=user, identity=identity, code="disabled", by=by)
        raise DirectoryRefused(DISABLED_MESSAGE.format(directory=label), code="disabled")
    if role is None:
        _refuse_and_revoke(user=user, identity=identity, code="no_role", by=by)
        raise DirectoryRefused(NO_ROLE_MESSAGE.format(directory=label), code="no_role")
    with transaction.atomic():
        if user is None:
            user = _create(identity=identity, role=role, matched=matched, by=by)
        else:
            _update(user=user, identity=identity, role=role, matched=matched, by=by)
    user.directory_groups = matched  # type: ignore[attr-defined]
    user.sign_in_method = identity.source  # type: ignore[attr-defined]
    return user


def _create(*, identity: DirectoryIdentity, role: str, matched: list[str], by: AuditContext) -> User:
    label = _directory_label(identity.source)
    profile = _profile_fields(identity)
    try:
        User.username_validator(identity.username)
    except ValidationError as exc:
        reason = " ".join(exc.messages)
        raise DirectoryRefused(
            BAD_USERNAME_MESSAGE.format(directory=label, username=identity.username, reason=reason), code="username"
        ) from None
    try:
        user = user_create(
            username=identity.username,
            password=None,
            role=role,
            email=profile.get("email", ""),
            display_name=profile.get("display_name", ""),
            by=by,
        )
    except AccountError as exc:
        raise DirectoryRefused(
            BAD_USERNAME_MESSAGE.format(directory=label, username=identity.username, reason=exc.message),
            code="username",
        ) from None
    user.source = identity.source
    user.directory_id = identity.directory_id
    user.first_name = profile.get("first_name", "")
    user.last_name = profile.get("last_name", "")
    user.save(update_fields=["source", "directory_id", "first_name", "last_name"])
    audit_record(
        by=by,
        action="user.directory_link",
        target=f"user:{user.username}",
        detail={"directory": identity.source, "role": role, "groups": matched},
    )
    return user


def _update(*, user: User, identity: DirectoryIdentity, role: str, matched: list[str], by: AuditContext) -> None:
    changed = {name: value for name, value in _profile_fields(identity).items() if getattr(user, name) != value}
    if user.directory_id != identity.directory_id:
        changed["directory_id"] = identity.directory_id
    if changed:
        for name, value in changed.items():
            setattr(user, name, value)
        user.save(update_fields=list(changed))
        audit_record(by=by, action="user.update", target=f"user:{user.username}", detail={"fields": sorted(changed)})
    if user.role != role or not user.groups.filter(name=role).exists():
        previous = user.role
        # The directory decides, guard rails included: a break-glass admin is a local account, which no directory
        # touches.
        _role_apply(user, role)
        if previous != role:
            audit_record(
                by=by,
                action="user.role",
                target=f"user:{user.username}",
                detail={"from": previous, "to": role, "groups": matched},
            )
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(by=by, action="user.activate", target=f"user:{user.username}", detail={"groups": matched})


def directory_user_refuse(*, user: User, source: str, code: str, ip: str | None = None) -> User:
    """The directory no longer has ``user`` (removed, or disabled where it cannot be read): deactivate them and
    revoke their tokens (``user.tokens_revoked``). For the sign-in adapters and ``directory_sync``."""
    identity = DirectoryIdentity(source=source, directory_id=user.directory_id, username=user.username)
    _refuse_and_revoke(user=user, identity=identity, code=code, by=_directory_by(source, ip=ip))
    return user


@dataclass(slots=True)
class ReconcileResult:
    """What ``directory_users_reconcile`` did: usernames per outcome."""

    checked: int = 0
    deactivated: list[str] = field(default_factory=list)
    role_changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "deactivated": self.deactivated,
            "role_changed": self.role_changed,
            "unchanged": self.unchanged,
            "errors": self.errors,
        }


def directory_users_reconcile(
    *, source: str, lookup: Mapping[str, DirectoryIdentity | None], mapping: RoleMapping
) -> ReconcileResult:
    """Bring the active users of ``source`` in line with what the directory says of each (``lookup``: username ->
    identity, or None when the directory no longer has the account): deactivate and revoke those it no longer
    grants a role, and set the role of the others. Nobody is created or reactivated here: that waits for a sign-in.
    """
    result = ReconcileResult()
    by = _directory_by(source, ip=None)
    for user in User.objects.filter(source=source, is_active=True).order_by("username"):
        result.checked += 1
        if user.username not in lookup:
            result.unchanged += 1
            continue
        identity = lookup[user.username]
        role = mapping.role_for(identity.groups)[0] if identity is not None and identity.enabled else None
        if identity is None or role is None:
            code = "removed" if identity is None else ("disabled" if not identity.enabled else "no_role")
            _refuse_and_revoke(
                user=user, identity=identity or DirectoryIdentity(source, "", user.username), code=code, by=by
            )
            result.deactivated.append(user.username)
            continue
        if user.role != role:
            with transaction.atomic():
                previous = user.role
                _role_apply(user, role)
                audit_record(
                    by=by,
                    action="user.role",
                    target=f"user:{user.username}",
                    detail={"from": previous, "to": role, "groups": mapping.role_for(identity.groups)[1]},
                )
            result.role_changed.append(user.username)
        else:
            result.unchanged += 1
    return result


def sign_in_record(*, user: User, by: AuditContext) -> None:
    """The audit entry of one sign-in: how (local password, LDAP, OIDC), and the groups that gave the role."""
    method = getattr(user, "sign_in_method", None) or User.Source.LOCAL
    detail: dict[str, Any] = {"method": method, "role": user.role}
    if method != User.Source.LOCAL:
        detail["groups"] = list(getattr(user, "directory_groups", []) or [])
    audit_record(by=by, action="user.sign_in", target=f"user:{user.username}", detail=detail)


def sign_in_refused_record(*, username: str, source: str, code: str, ip: str | None) -> None:
    """The audit entry of a directory sign-in refused for a reason other than a wrong password."""
    audit_record(
        by=AuditContext(source=AuditEntry.Source.WEB, ip=ip, name=username[:150]),
        action="user.sign_in_refused",
        target=f"user:{username}"[:200],
        detail={"method": source, "reason": code},
    )
