"""Accounts: users with a role, and hashed personal API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from accounts.roles import CAPABILITIES, Role, capability_codename, capability_perm


class User(AbstractUser):
    """A person using Enreach tools. Their ``role`` decides their group and so their capabilities."""

    display_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        verbose_name = "user"
        permissions = [(capability_codename(cap), label) for cap, label in CAPABILITIES.items()]

    def __str__(self) -> str:
        return self.display_name or self.username

    def has_capability(self, capability: str) -> bool:
        """Whether the user holds a capability (through their role's group, or as a superuser)."""
        return self.is_active and self.has_perm(capability_perm(capability))

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
