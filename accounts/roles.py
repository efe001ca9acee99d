"""Roles and capabilities.

A role is a Django group of the same name; a capability is a permission of the ``accounts`` app whose codename is
the capability with ``.`` replaced by ``_`` (``export.run`` -> ``accounts.export_run``). The four roles are seeded
once by a data migration, so an admin's later edits to a group are never re-applied behind their back.
"""

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


# capability -> human label
CAPABILITIES: dict[str, str] = {
    "export.run": "Run exports",
    "export.download": "Download exports",
    "chat.use": "Use the chat assistant",
    "suggestions.manage": "Manage suggestions",
    "keys.manage": "Manage global keys",
    "columns.manage": "Manage the CMDB column sets",
}

# Seed of each role's capabilities (the admin role also gets every model permission).
ROLE_CAPABILITIES: dict[str, tuple[str, ...]] = {
    Role.ADMIN: tuple(CAPABILITIES),
    Role.MEMBER: ("export.run", "export.download", "chat.use"),
    Role.OPERATOR: ("export.run", "export.download"),
    Role.VIEWER: ("export.download",),
}


def capability_codename(capability: str) -> str:
    """The permission codename of a capability."""
    return capability.replace(".", "_")


def capability_perm(capability: str) -> str:
    """The ``app_label.codename`` string to pass to ``user.has_perm``."""
    if capability not in CAPABILITIES:
        raise ValueError(f"Unknown capability {capability!r}")
    return f"accounts.{capability_codename(capability)}"
