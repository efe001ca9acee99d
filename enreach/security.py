"""Security headers on every response: a strict Content-Security-Policy, Referrer-Policy and nosniff.

The policy (``CONTENT_SECURITY_POLICY``) allows only the app's own origin: no inline script, no inline style
(``<style>`` or ``style=""``), no eval, no other hosts. Pages keep their JavaScript and CSS under ``static/`` and
pass data through ``data-*`` attributes or ``json_script``. ``img-src`` also allows ``data:`` URLs (the admin's and
Swagger UI's icons). A view may send its own header, which this middleware keeps: only ReDoc does
(``enreach/redoc.py``, the site's policy plus inline ``<style>`` elements and ``blob:`` workers).

A small middleware rather than django-csp: the policy is one fixed header with no nonces and one per-view variant, and
Django 6.0 brings its own CSP support that this will give way to.
"""

from __future__ import annotations

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
            response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
