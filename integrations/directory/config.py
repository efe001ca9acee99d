"""Whether each sign-in directory is configured, and its role mapping: plain settings, no vendor library (the
sign-in page and the URLconf read these without loading python-ldap or Authlib)."""

from __future__ import annotations

from django.conf import settings

from accounts.directory import RoleMapping, default_role_check, role_groups_parse


def ldap_configured() -> bool:
    """LDAP sign-in is on when ``AUTH_LDAP_SERVER_URI`` is set."""
    return bool(getattr(settings, "AUTH_LDAP_SERVER_URI", ""))


def oidc_configured() -> bool:
    """Single sign-on is on when ``OIDC_DISCOVERY_URL`` and ``OIDC_CLIENT_ID`` are set."""
    return bool(getattr(settings, "OIDC_DISCOVERY_URL", "") and getattr(settings, "OIDC_CLIENT_ID", ""))


def ldap_role_mapping() -> RoleMapping:
    """``AUTH_LDAP_ROLE_GROUPS`` and ``AUTH_LDAP_DEFAULT_ROLE``, checked."""
    return RoleMapping(
        groups=role_groups_parse(settings.AUTH_LDAP_ROLE_GROUPS, setting="AUTH_LDAP_ROLE_GROUPS"),
        default_role=default_role_check(settings.AUTH_LDAP_DEFAULT_ROLE, setting="AUTH_LDAP_DEFAULT_ROLE"),
    )


def oidc_role_mapping() -> RoleMapping:
    """``OIDC_ROLE_GROUPS`` and ``OIDC_DEFAULT_ROLE``, checked."""
    return RoleMapping(
        groups=role_groups_parse(settings.OIDC_ROLE_GROUPS, setting="OIDC_ROLE_GROUPS"),
        default_role=default_role_check(settings.OIDC_DEFAULT_ROLE, setting="OIDC_DEFAULT_ROLE"),
    )


def provider_name() -> str:
    """The provider's name on the button and in messages (``OIDC_NAME``)."""
    return str(getattr(settings, "OIDC_NAME", "") or "single sign-on")
