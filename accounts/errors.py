"""The accounts app's errors: an invalid change (naming the input at fault), a throttled password check, and a
change that would lock administrators out."""

from __future__ import annotations


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
