"""django-q2 entry points of directory sign-in: one service call each."""

from __future__ import annotations

from integrations.directory.sync import directory_sync


def directory_sync_task() -> str:
    """Daily while LDAP is configured: deactivate the users the directory no longer grants a role."""
    result = directory_sync()
    return f"checked {result.checked}, deactivated {len(result.deactivated)}, role changes {len(result.role_changed)}"
