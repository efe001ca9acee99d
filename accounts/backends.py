"""Sign-in with a rate limit on attempts (the sign-in page and the admin's both go through this backend)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.throttling import TooManyAttempts, client_ip, password_attempt_begin


class RateLimitedModelBackend(ModelBackend):
    """Django's username/password backend, refusing a username at an address (or an address) after too many
    failures; see ``accounts.throttling`` for what is counted."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get("username")
        if not username or password is None:
            return None
        try:
            attempt = password_attempt_begin(account=username, address=client_ip(request))
        except TooManyAttempts as exc:
            if request is not None:
                messages.error(request, exc.message, fail_silently=True)
            # PermissionDenied stops Django from trying other backends: the right password does not help now.
            raise PermissionDenied("Too many failed sign-ins.") from None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            attempt.succeeded()
        return user
