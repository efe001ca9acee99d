"""Sign-in with a rate limit on attempts (the sign-in page and the admin's both go through these backends).

One sign-in is one attempt, whichever backends look at the password: the LDAP backend
(``integrations.directory.ldap``) runs first and the local one after it, and both take the attempt from
``sign_in_attempt`` (counted once, kept on the request).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.services import local_password_allowed
from accounts.throttling import PasswordAttempt, TooManyAttempts, client_ip, password_attempt_begin

_ATTEMPTS = "_enreach_sign_in_attempts"


def sign_in_attempt(request: HttpRequest | None, username: str) -> PasswordAttempt:
    """The counted attempt of this sign-in (counted at the first call for ``username`` in this request).

    Over the limit, the error is shown on the page and ``PermissionDenied`` stops Django from trying the other
    backends: the right password does not help now.
    """
    cache: dict[str, PasswordAttempt] = {}
    if request is not None:
        cache = getattr(request, _ATTEMPTS, None) or {}
        setattr(request, _ATTEMPTS, cache)
    key = username.strip().lower()
    if key in cache:
        return cache[key]
    try:
        attempt = password_attempt_begin(account=username, address=client_ip(request))
    except TooManyAttempts as exc:
        if request is not None:
            messages.error(request, exc.message, fail_silently=True)
        raise PermissionDenied("Too many failed sign-ins.") from None
    cache[key] = attempt
    return attempt


class RateLimitedModelBackend(ModelBackend):
    """Django's username/password backend, refusing a username at an address (or an address) after too many
    failures; see ``accounts.throttling`` for what is counted. Users managed by a directory only sign in here when
    ``DIRECTORY_ALLOW_LOCAL_PASSWORDS`` is on."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get("username")
        if not username or password is None:
            return None
        attempt = sign_in_attempt(request, username)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            if not local_password_allowed(user):
                return None
            attempt.succeeded()
        return user
