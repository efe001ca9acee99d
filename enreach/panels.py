"""Panels: pieces of a page that the apps provide and the page composes, without importing the apps.

A page names a *place* (``"home"``, ``"home-alerts"``, ``"home-actions"``, ``"export-run"``...) and renders the
panels registered there, in order; each app registers its panels from its own ``AppConfig.ready()``, the way NetBox's
apps fill ``netbox.registry``::

    from enreach import panels
    panels.register("home", "quality", template="quality/_panel.html", context=quality_panel, order=300)

``context(request, **subject)`` returns the panel's template context, or ``None`` to leave the panel out (a user who
may not see it, nothing to show); ``subject`` is what the page is about (the export run page passes ``run=``). A
panel is rendered with the request, so ``{% csrf_token %}`` and the context processors work in it. ``panels(place)``
is the registry as an ordered list you can print.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

logger = logging.getLogger(__name__)

PanelContext = Callable[..., "dict[str, Any] | None"]


@dataclass(frozen=True, slots=True)
class Panel:
    """A registered panel: where it goes, its name, its template and context, its place in the order."""

    place: str
    name: str
    template: str
    context: PanelContext
    order: int

    def __str__(self) -> str:
        return f"{self.place:<14} {self.order:>4}  {self.name:<16} {self.template}"


@dataclass(frozen=True, slots=True)
class RenderedPanel:
    """A panel rendered for one request."""

    name: str
    html: SafeString

    def __str__(self) -> str:
        return self.html


_registry: dict[tuple[str, str], Panel] = {}


def register(place: str, name: str, *, template: str, context: PanelContext, order: int) -> Panel:
    """Register (or replace, by place and name) a panel."""
    panel = Panel(place=place, name=name, template=template, context=context, order=order)
    _registry[place, name] = panel
    return panel


def unregister(place: str, name: str) -> Panel | None:
    """Remove a panel (tests); returns it, or ``None``."""
    return _registry.pop((place, name), None)


def panels(place: str) -> list[Panel]:
    """The panels of ``place`` in the order they are shown."""
    return sorted((p for p in _registry.values() if p.place == place), key=lambda p: (p.order, p.name))


def panels_render(place: str, request: HttpRequest, **subject: Any) -> list[RenderedPanel]:
    """The panels of ``place`` that have something to show to this request, rendered."""
    rendered = []
    for panel in panels(place):
        context = panel.context(request, **subject)
        if context is None:
            continue
        html = render_to_string(panel.template, context, request=request)
        rendered.append(RenderedPanel(name=panel.name, html=mark_safe(html)))  # noqa: S308 (a rendered template)
    return rendered
