"""Sign-in with a rate limit on failures (the sign-in page and the admin's both go through this backend)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.throttling import login_failures, wait_text


def login_ident(request: HttpRequest | None, username: str | None) -> str:
    """The identity failures are counted for: the username (case-insensitive) and the client's address."""
    ip = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    return f"{(username or '').strip().lower()}|{ip}"


class RateLimitedModelBackend(ModelBackend):
    """Django's username/password backend, refusing a username+address after too many failures."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get("username")
        ident = login_ident(request, username)
        wait = login_failures.blocked_for(ident)
        if wait:
            if request is not None:
                messages.error(
                    request,
                    f"Too many failed sign-ins for this account from your address. Try again in {wait_text(wait)}.",
                    fail_silently=True,
                )
            # PermissionDenied stops Django from trying other backends: the right password does not help now.
            raise PermissionDenied("Too many failed sign-ins.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            if username:
                login_failures.record(ident)
        else:
            login_failures.reset(ident)
        return user
