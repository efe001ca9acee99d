"""DRF permissions based on role capabilities."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

_classes: dict[tuple[str, str | None], type[BasePermission]] = {}


def capability_required(capability: str, *, unsafe: str | None = None) -> type[BasePermission]:
    """A permission class requiring ``capability`` (and ``unsafe`` instead for non-GET methods when given)."""
    key = (capability, unsafe)
    if key not in _classes:

        class HasCapability(BasePermission):
            message = f"You need the {capability!r} capability."

            def has_permission(self, request: Request, view: Any) -> bool:
                user = request.user
                if not (user and user.is_authenticated):
                    return False
                needed = capability if unsafe is None or request.method in ("GET", "HEAD", "OPTIONS") else unsafe
                self.message = f"You need the {needed!r} capability."
                return bool(user.has_capability(needed))

        HasCapability.__name__ = f"Has_{capability.replace('.', '_')}"
        _classes[key] = HasCapability
    return _classes[key]


class IsAdminRole(BasePermission):
    """Only active users with the admin role (user provisioning and roles)."""

    message = "Only admins can manage users and roles."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and getattr(user, "role", None) == "admin")
