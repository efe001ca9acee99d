"""Accounts: users with a role and preferences, hashed personal API tokens, encrypted global keys, audit entries."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.db import models
from django.utils import timezone

from accounts.roles import CAPABILITIES, Role, capability_codename, capability_perm


class User(AbstractUser):
    """A person using Enreach tools. Their ``role`` decides their group and so their capabilities.

    ``source`` says who manages the account: ``local`` accounts are created here and sign in with a password kept
    here; ``ldap`` and ``oidc`` accounts are created at their first sign-in through the directory, which sets their
    role and active flag again at every sign-in (``accounts.directory``).
    """

    class Source(models.TextChoices):
        LOCAL = "local", "Local"
        LDAP = "ldap", "LDAP directory"
        OIDC = "oidc", "Single sign-on (OIDC)"

    display_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    preferences = models.JSONField(
        default=dict, blank=True, help_text="Time zone, theme, default export dataset (see accounts.preferences)."
    )
    source = models.CharField(
        max_length=8, choices=Source.choices, default=Source.LOCAL, help_text="Who manages this account."
    )
    directory_id = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="The account in the directory: the LDAP entry's DN, or the OpenID provider's subject (sub).",
    )

    class Meta:
        verbose_name = "user"
        constraints = [
            models.UniqueConstraint(
                fields=["source", "directory_id"],
                condition=~models.Q(directory_id=""),
                name="accounts_user_one_account_per_directory_entry",
            )
        ]
        permissions = [(capability_codename(cap), label) for cap, label in CAPABILITIES.items()]

    def __str__(self) -> str:
        return self.display_name or self.username

    def has_capability(self, capability: str) -> bool:
        """Whether the user holds a capability (through their role's group, or as a superuser)."""
        return self.is_active and self.has_perm(capability_perm(capability))

    @property
    def is_directory_managed(self) -> bool:
        """Whether a directory (LDAP or OIDC) sets this user's role and active flag at every sign-in."""
        return self.source != self.Source.LOCAL

    @property
    def capabilities(self) -> list[str]:
        """The sorted capabilities this user holds."""
        return sorted(cap for cap in CAPABILITIES if self.has_capability(cap))


class ApiToken(models.Model):
    """A personal API token. Only a SHA-256 of the secret is stored: a database dump reveals no usable token."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    label = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True, help_text="The first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    read_only = models.BooleanField(default=False, help_text="Limit the token to safe methods (GET, HEAD).")
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.label or 'no label'})"

    @property
    def is_usable(self) -> bool:
        return self.revoked is None and (self.expires is None or self.expires > timezone.now())


class GlobalKey(models.Model):
    """A named secret used by an integration (``netbox``, ``atlassian``, ``backup``, chat providers...).

    The value is stored encrypted with Fernet (see ``accounts.keys``); only its last four characters are kept in
    clear, to show a hint like ``••••abcd``. Integrations read it through ``accounts.keys.secret_get``.
    """

    name = models.SlugField(max_length=64, unique=True, help_text="How integrations look the key up, e.g. netbox.")
    label = models.CharField(max_length=150, blank=True)
    url = models.CharField(
        "URL",
        max_length=500,
        blank=True,
        help_text="Optional address of the service (not secret), e.g. the NetBox URL.",
    )
    value_encrypted = models.TextField(editable=False)
    hint = models.CharField(max_length=4, blank=True, editable=False, help_text="Last characters of the value.")
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "global key"

    def __str__(self) -> str:
        return self.name

    @property
    def masked(self) -> str:
        """The only form of the value ever shown: ``••••abcd`` (or ``••••`` for short values)."""
        return "••••" + self.hint


class AuditEntry(models.Model):
    """Who did what to accounts, roles, tokens and keys, when, and from where. Never holds a secret."""

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin"
        CLI = "cli", "Command line"
        WEB = "web", "Web page"
        SYSTEM = "system", "System"
        # Changes a directory made at a sign-in or a directory_sync (roles, active flag, profile).
        LDAP = "ldap", "LDAP directory"
        OIDC = "oidc", "Single sign-on (OIDC)"

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept when the actor is gone.")
    source = models.CharField(max_length=16, choices=Source.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action} {self.target}"


class RoleGroup(Group):
    """A role as the admin shows it: the group of one of the four built-in roles, edited by capability."""

    class Meta:
        proxy = True
        verbose_name = "role"
        ordering = ["name"]

    def __str__(self) -> str:
        return Role(self.name).label if self.name in Role.values else self.name
