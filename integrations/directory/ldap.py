"""Sign-in through LDAP / Active Directory with django-auth-ldap, configured from NetBox-style ``AUTH_LDAP_*`` settings.

django-auth-ldap finds the user (``AUTH_LDAP_USER_SEARCH_BASE`` + ``AUTH_LDAP_USER_SEARCH_FILTER``), checks the
password by binding as them, and reads their groups (``AUTH_LDAP_GROUP_SEARCH_BASE``, ``AUTH_LDAP_GROUP_TYPE``).
What that means here — the role, the active flag, refusing — is ``accounts.directory``: the backend hands it a
``DirectoryIdentity`` and never saves a user itself.

A failed bind for a user this directory manages makes the backend ask the directory (as the service account) about
the account: gone, disabled or without a mapped group, the user is deactivated and their API tokens revoked; the
person sees the usual "didn't match" message. A directory that cannot be reached is logged as a warning and the
next backend (local accounts: the break-glass admin) is tried; nobody is deactivated because the server is down.

The bind password is the global key ``ldap`` when set, else ``AUTH_LDAP_BIND_PASSWORD``; it goes to python-ldap
and nowhere else (django-auth-ldap logs the bind DN only, our log lines never the password).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import ldap
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest
from django_auth_ldap.backend import LDAPBackend, _LDAPUser, ldap_error
from django_auth_ldap.config import (
    GroupOfNamesType,
    GroupOfUniqueNamesType,
    LDAPGroupType,
    LDAPSearch,
    LDAPSettings,
    NestedActiveDirectoryGroupType,
    NestedGroupOfNamesType,
    PosixGroupType,
)

from accounts.backends import sign_in_attempt
from accounts.directory import (
    DirectoryIdentity,
    DirectoryRefused,
    directory_sign_in,
    directory_user_refuse,
    sign_in_refused_record,
)
from accounts.keys import secret_get
from accounts.models import User
from accounts.throttling import client_ip
from integrations.directory.config import ldap_configured, ldap_role_mapping
from integrations.exceptions import DirectoryUnavailable

logger = logging.getLogger(__name__)

# AUTH_LDAP_GROUP_TYPE -> (django-auth-ldap group type, the object class of the groups to search)
GROUP_TYPES: dict[str, tuple[type[LDAPGroupType], str]] = {
    "groupofnames": (GroupOfNamesType, "groupOfNames"),
    "nestedgroupofnames": (NestedGroupOfNamesType, "groupOfNames"),
    "groupofuniquenames": (GroupOfUniqueNamesType, "groupOfUniqueNames"),
    "posixgroup": (PosixGroupType, "posixGroup"),
    # Active Directory: "group" entries with "member"; groups in groups are followed (one search per level).
    "activedirectory": (NestedActiveDirectoryGroupType, "group"),
}
# userAccountControl's ACCOUNTDISABLE bit (Active Directory)
AD_ACCOUNTDISABLE = 0x2
# pwdAccountLockedTime of an account an administrator locked for good (OpenLDAP's password policy overlay)
PPOLICY_LOCKED_FOR_GOOD = "000001010000Z"
# Operational attributes that say an account is disabled, read with the user's entry.
_STATE_ATTRIBUTES = ["pwdAccountLockedTime", "nsAccountLock"]


def _connection_options() -> dict[int, Any]:
    timeout = float(settings.AUTH_LDAP_TIMEOUT)
    options: dict[int, Any] = {
        # Active Directory answers searches at the domain root with referrals python-ldap would chase anonymously.
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: timeout,
        ldap.OPT_TIMEOUT: timeout,
        ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
    }
    if settings.AUTH_LDAP_CA_FILE:
        options[ldap.OPT_X_TLS_CACERTFILE] = settings.AUTH_LDAP_CA_FILE
    # Last: a new TLS context with the options above (python-ldap applies options in this order).
    options[ldap.OPT_X_TLS_NEWCTX] = 0
    return options


def ldap_settings() -> LDAPSettings:
    """django-auth-ldap's settings object, built from the plain ``AUTH_LDAP_*`` strings of ``enreach.settings``."""
    config = LDAPSettings("AUTH_LDAP_", {})
    group_type_name = str(settings.AUTH_LDAP_GROUP_TYPE or "groupOfNames").replace("_", "").lower()
    if group_type_name not in GROUP_TYPES:
        raise ImproperlyConfigured(
            f"AUTH_LDAP_GROUP_TYPE: unknown {settings.AUTH_LDAP_GROUP_TYPE!r}; one of "
            "groupOfNames, nestedGroupOfNames, groupOfUniqueNames, posixGroup, activeDirectory."
        )
    group_type, group_class = GROUP_TYPES[group_type_name]
    config.SERVER_URI = settings.AUTH_LDAP_SERVER_URI
    config.BIND_DN = settings.AUTH_LDAP_BIND_DN
    config.BIND_PASSWORD = secret_get("ldap", settings.AUTH_LDAP_BIND_PASSWORD)
    config.START_TLS = bool(settings.AUTH_LDAP_START_TLS)
    config.CONNECTION_OPTIONS = _connection_options()
    config.USER_SEARCH = LDAPSearch(
        settings.AUTH_LDAP_USER_SEARCH_BASE,
        ldap.SCOPE_SUBTREE,
        settings.AUTH_LDAP_USER_SEARCH_FILTER,
        attrlist=["*", *_STATE_ATTRIBUTES],
    )
    if settings.AUTH_LDAP_GROUP_SEARCH_BASE:
        config.GROUP_SEARCH = LDAPSearch(
            settings.AUTH_LDAP_GROUP_SEARCH_BASE, ldap.SCOPE_SUBTREE, f"(objectClass={group_class})"
        )
        config.GROUP_TYPE = group_type()
    else:
        config.GROUP_SEARCH = None
        config.GROUP_TYPE = None
    # The user is created and updated by accounts.directory, never by django-auth-ldap itself.
    config.ALWAYS_UPDATE_USER = False
    config.USER_ATTR_MAP = {}
    config.MIRROR_GROUPS = None
    config.FIND_GROUP_PERMS = False
    config.CACHE_TIMEOUT = 0
    return config


def _first(attrs: dict[str, list[str]], name: str) -> str:
    for key, values in attrs.items():
        if key.lower() == name.lower() and values:
            return str(values[0])
    return ""


def entry_enabled(attrs: dict[str, list[str]]) -> bool:
    """Whether the directory entry is an enabled account: AD's ACCOUNTDISABLE bit, OpenLDAP's administrative lock
    (``pwdAccountLockedTime: 000001010000Z``) and 389-DS/FreeIPA's ``nsAccountLock`` say it is not."""
    control = _first(attrs, "userAccountControl")
    if control.lstrip("-").isdigit() and int(control) & AD_ACCOUNTDISABLE:
        return False
    if _first(attrs, "pwdAccountLockedTime") == PPOLICY_LOCKED_FOR_GOOD:
        return False
    return _first(attrs, "nsAccountLock").lower() != "true"


def identity_from_entry(
    *, username: str, dn: str, attrs: dict[str, list[str]], groups: Iterable[str]
) -> DirectoryIdentity:
    """A ``DirectoryIdentity`` from an LDAP entry (``AUTH_LDAP_USER_ATTR_MAP`` names the attributes)."""
    attr_map = {**{"first_name": "givenName", "last_name": "sn", "email": "mail"}, **settings.AUTH_LDAP_USER_ATTR_MAP}
    return DirectoryIdentity(
        source=User.Source.LDAP,
        directory_id=dn,
        username=username,
        email=_first(attrs, attr_map.get("email", "")),
        first_name=_first(attrs, attr_map.get("first_name", "")),
        last_name=_first(attrs, attr_map.get("last_name", "")),
        display_name=_first(attrs, attr_map.get("display_name", "displayName")),
        groups=tuple(sorted(groups)),
        enabled=entry_enabled(attrs),
    )


def _raise_unavailable(sender: Any, context: str, user: Any, request: Any, exception: Exception, **kwargs: Any) -> None:
    """django-auth-ldap reports every LDAPError through its ``ldap_error`` signal and carries on as if the user did
    not exist; raising here makes "the directory is down" distinct from "no such user"."""
    if isinstance(exception, ldap.INVALID_CREDENTIALS):
        raise DirectoryUnavailable("The LDAP service account was refused: check AUTH_LDAP_BIND_DN and its password.")
    description = exception.args[0].get("desc", "") if exception.args and isinstance(exception.args[0], dict) else ""
    raise DirectoryUnavailable(
        f"The LDAP directory failed while {context.replace('_', ' ')}: {description or type(exception).__name__}."
    )


class DirectoryLDAPBackend(LDAPBackend):
    """django-auth-ldap's backend with the role mapping, refusals and throttling of this app. Does nothing while
    ``AUTH_LDAP_SERVER_URI`` is empty."""

    _settings: LDAPSettings | None = None

    @property
    def settings(self) -> LDAPSettings:  # type: ignore[override]
        if self._settings is None:
            self._settings = ldap_settings()
        return self._settings

    @settings.setter
    def settings(self, value: LDAPSettings) -> None:
        self._settings = value

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if not ldap_configured() or not username or not password:
            return None
        username = username.strip()
        attempt = sign_in_attempt(request, username)
        self._request = request
        self._refusal: DirectoryRefused | None = None
        try:
            user = super().authenticate(request, username=username, password=password)
            if user is None and self._refusal is None:
                self._after_failed_bind(request, username)
        except DirectoryUnavailable as exc:
            logger.warning("LDAP sign-in unavailable, trying local accounts: %s", exc)
            return None
        if self._refusal is not None:
            sign_in_refused_record(
                username=username, source=User.Source.LDAP, code=self._refusal.code, ip=client_ip(request) or None
            )
            if request is not None:
                messages.error(request, self._refusal.message, fail_silently=True)
            # The password was right: no other backend should sign this person in.
            attempt.succeeded()
            raise PermissionDenied(self._refusal.message)
        if user is not None:
            attempt.succeeded()
        return user

    def get_or_build_user(self, username: str, ldap_user: _LDAPUser) -> tuple[User, bool]:
        """Called by django-auth-ldap once the password is right: the user as ``accounts.directory`` makes them."""
        groups = ldap_user.group_dns if self.settings.GROUP_TYPE is not None else set()
        identity = identity_from_entry(username=username, dn=ldap_user.dn, attrs=ldap_user.attrs or {}, groups=groups)
        try:
            user = directory_sign_in(
                identity=identity, mapping=ldap_role_mapping(), ip=client_ip(getattr(self, "_request", None)) or None
            )
        except DirectoryRefused as exc:
            self._refusal = exc
            raise ldap_user.AuthenticationFailed(exc.code) from None
        return user, False

    def get_user(self, user_id: int) -> User | None:
        """The signed-in user of a session; a deactivated user's sessions end at once."""
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    # Permissions come from the role's group through the local backend. django-auth-ldap's own answers would build
    # its settings (and read the "ldap" global key) for every permission check of every request.
    def has_perm(self, user: Any, perm: str, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, user: Any, app_label: str) -> bool:
        return False

    def get_all_permissions(self, user: Any, obj: Any = None) -> set[str]:
        return set()

    def get_group_permissions(self, user: Any, obj: Any = None) -> set[str]:
        return set()

    def _after_failed_bind(self, request: HttpRequest | None, username: str) -> None:
        """A wrong password, or an account the directory no longer grants: ask the directory which."""
        user = User.objects.filter(username__iexact=username, source=User.Source.LDAP, is_active=True).first()
        if user is None:
            return
        identity = self.lookup(username)
        if identity is None:
            code = "removed"
        elif not identity.enabled:
            code = "disabled"
        elif ldap_role_mapping().role_for(identity.groups)[0] is None:
            code = "no_role"
        else:
            return  # the account is fine: the password was wrong
        directory_user_refuse(user=user, source=User.Source.LDAP, code=code, ip=client_ip(request) or None)
        sign_in_refused_record(username=username, source=User.Source.LDAP, code=code, ip=client_ip(request) or None)

    def lookup(self, username: str) -> DirectoryIdentity | None:
        """What the directory says of ``username`` (as the service account), or None when it has no such account
        (or the search filter leaves it out: AD's disabled-account clause). Raises ``DirectoryUnavailable``."""
        ldap_user = _LDAPUser(self, username=username)
        try:
            dn = ldap_user.dn
            if dn is None:
                return None
            groups = ldap_user.group_dns if self.settings.GROUP_TYPE is not None else set()
        except ldap.LDAPError as exc:
            _raise_unavailable(type(self), "looking up a user", None, None, exc)
        return identity_from_entry(username=username, dn=dn, attrs=ldap_user.attrs or {}, groups=groups)


ldap_error.connect(_raise_unavailable, sender=DirectoryLDAPBackend, dispatch_uid="integrations.directory.ldap")


def ldap_users_lookup(*, usernames: Iterable[str]) -> dict[str, DirectoryIdentity | None]:
    """What the directory says of each username (None: no such account). Raises ``DirectoryUnavailable`` when
    the directory cannot be asked, so that nobody is deactivated because it is down."""
    if not ldap_configured():
        raise DirectoryUnavailable("LDAP is not configured (AUTH_LDAP_SERVER_URI is empty).")
    backend = DirectoryLDAPBackend()
    return {username: backend.lookup(username) for username in usernames}
