"""Template filters of the exports pages."""

from __future__ import annotations

from typing import Any

from django import template

from exports.steps import step_label

register = template.Library()


@register.filter
def thousands(value: Any) -> Any:
    """``14300`` as ``14,300``; anything that is not a whole number as it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return f"{value:,}"


@register.filter
def plain_step(name: str) -> str:
    """A step's plain name (``write`` → "Writing the files")."""
    return step_label(name) if name else ""
