"""``{% quality_panel %}``: the data-quality panel (``quality/_panel.html``) wherever a page wants it."""

from __future__ import annotations

from typing import Any

from django import template

from quality.selectors import quality_panel as quality_panel_context

register = template.Library()


@register.inclusion_tag("quality/_panel.html")
def quality_panel() -> dict[str, Any]:
    """The newest report's counts per rule, their change since the previous run and a small trend chart."""
    return quality_panel_context()
