"""Security headers on every response: a strict Content-Security-Policy, Referrer-Policy and nosniff.

The policy (``CONTENT_SECURITY_POLICY``) allows only the app's own origin: no inline script, no inline style
(``<style>`` or ``style=""``), no eval, no other hosts. Pages keep their JavaScript and CSS under ``static/`` and
pass data through ``data-*`` attributes or ``json_script``. ``img-src`` also allows ``data:`` URLs (the admin's and
Swagger UI's icons). A view may send its own header, which this middleware keeps: only ReDoc does
(``enreach/redoc.py``, the site's policy plus inline ``<style>`` elements and ``blob:`` workers).

With ``DEBUG`` on, Django's own error pages (the yellow 404 and 500 pages) keep their look: their inline ``<style>``
elements are allowed by hash on that response only (``'sha256-…'`` in ``style-src``), nothing else is loosened.

A small middleware rather than django-csp: the policy is one fixed header with no nonces and one per-view variant, and
Django 6.0 brings its own CSP support that this will give way to.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class SecurityHeadersMiddleware:
    """Adds ``Content-Security-Policy``, ``Referrer-Policy`` and ``X-Content-Type-Options`` unless a view set them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy:
            if settings.DEBUG and response.status_code >= 400:
                policy = debug_page_policy(policy, response)
            response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


_STYLE = re.compile(rb"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)


def debug_page_policy(policy: str, response: HttpResponse) -> str:
    """The policy plus the hashes of an HTML error page's inline ``<style>`` elements (Django's debug pages)."""
    if getattr(response, "streaming", False) or "html" not in response.headers.get("Content-Type", ""):
        return policy
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"
        for block in _STYLE.findall(response.content)
    ]
    if not hashes:
        return policy
    directives = [part.strip() for part in policy.split(";") if part.strip()]
    names = [part.split()[0] for part in directives]
    if "style-src" in names:
        at = names.index("style-src")
        directives[at] = " ".join([directives[at], *hashes])
    else:
        default = next((d.split()[1:] for d in directives if d.split()[0] == "default-src"), ["'self'"])
        directives.append(" ".join(["style-src", *default, *hashes]))
    return "; ".join(directives)
