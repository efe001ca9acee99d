"""The export pipeline's own error: an export cannot be requested or executed as asked."""

from __future__ import annotations


class ExportError(Exception):
    """An export cannot be requested or executed as asked."""
