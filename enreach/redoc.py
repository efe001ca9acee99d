"""ReDoc at /api/redoc/: the API reference as one long page, from drf-spectacular-sidecar's local bundle.

ReDoc's standalone bundle styles itself with styled-components, which injects ``<style>`` elements, and runs its
search index in a Web Worker made from a ``blob:`` URL. The site's self-only policy blocks both, so this one view
answers with the site's policy plus exactly those two allowances (``style-src 'unsafe-inline'``, ``worker-src
blob:``), and with ``style-src-attr 'none'`` so the inline allowance covers ``<style>`` elements but not
``style=""`` attributes (ReDoc sets element styles through the CSSOM, which a policy does not govern; a browser
without ``style-src-attr`` falls back to ``style-src``). Scripts stay self-only, and the middleware in
``enreach/security.py`` leaves a header a view set alone.
The page's script is a file (``static/js/redoc.js``) that reads the schema URL from a ``data-`` attribute.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView
from rest_framework.request import Request
from rest_framework.response import Response


def redoc_policy(site_policy: str) -> str:
    """The site's Content-Security-Policy with the two sources ReDoc needs added; empty if the site sends none."""
    directives: dict[str, list[str]] = {}
    for part in site_policy.split(";"):
        if part.strip():
            name, *sources = part.split()
            directives[name.lower()] = sources
    if not directives:
        return ""
    fallback = directives.get("default-src", ["'self'"])
    style = [s for s in directives.get("style-src", fallback) if s != "'none'"]
    directives["style-src"] = style + ([] if "'unsafe-inline'" in style else ["'unsafe-inline'"])
    directives["style-src-attr"] = ["'none'"]
    directives["worker-src"] = ["blob:"]
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


class RedocView(SpectacularRedocView):
    """drf-spectacular's ReDoc view with the app's template and the policy from ``redoc_policy``."""

    template_name = "api_docs/redoc.html"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        policy = redoc_policy(settings.CONTENT_SECURITY_POLICY or "")
        if policy:
            response["Content-Security-Policy"] = policy
        return response
