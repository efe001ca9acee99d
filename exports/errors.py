"""The export pipeline's own error: an export cannot be requested or executed as asked."""

from __future__ import annotations


class ExportError(Exception):
    """An export cannot be requested or executed as asked."""


class ExportThrottled(ExportError):
    """Too many exports were started recently (per user or in all): refused, to be tried again in ``wait`` seconds."""

    def __init__(self, message: str, *, wait: int, scope: str) -> None:
        super().__init__(message)
        self.wait = wait
        self.scope = scope
