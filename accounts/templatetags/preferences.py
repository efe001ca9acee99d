"""Template filters that apply a user's preferences."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template

register = template.Library()


@register.filter
def preferred_first(items: Iterable[Any], kind: str) -> list[Any]:
    """The items with those whose ``kind`` is ``kind`` first, the others in their order (a stable sort)."""
    return sorted(items, key=lambda item: getattr(item, "kind", None) != kind)
