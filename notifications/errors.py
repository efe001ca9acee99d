"""The notifications app's error: an invalid channel or subscription, naming the input at fault."""

from __future__ import annotations


class NotificationError(Exception):
    """A requested change is not valid. ``field`` names the input at fault (``filter.site``), when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
