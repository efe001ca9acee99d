"""DRF authentication with personal API tokens (``Authorization: Bearer <token>``)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiToken
from accounts.throttling import client_ip, token_failure_record
from accounts.tokens import TOKEN_PREFIX, token_hash
from enreach.logs import user_var

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The stored prefix of a token (``ent_`` and 8 characters): failures are also counted per prefix.
TOKEN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate ``Authorization: Bearer <token>`` (or ``Token <token>``) against hashed personal tokens."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected '<Bearer|Token> <token>'.")
        secret = parts[1].decode(errors="replace")
        # The token is looked up first: a valid token always works, whatever others sent from this address.
        token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(secret)).first()
        if token is None or not token.is_usable or not token.user.is_active:
            # Failures are counted per address and per token prefix; over the limit they answer 429, not 401.
            wait = token_failure_record(address=client_ip(request), prefix=secret[:TOKEN_PREFIX_LENGTH])
            if wait:
                raise exceptions.Throttled(wait=wait, detail="Too many failed token authentications.")
            if token is not None and token.is_usable:
                raise exceptions.AuthenticationFailed("User inactive.")
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        if token.read_only and request.method not in SAFE_METHODS:
            raise exceptions.PermissionDenied("This token is read-only.")
        # One write per minute at most: last_used is informational, not an audit trail.
        now = timezone.now()
        if token.last_used is None or (now - token.last_used).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        user_var.set(token.user.get_username())  # log lines of this request name the token's owner
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the personal token scheme in the OpenAPI schema."""

    target_class = ApiTokenAuthentication
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal API token: `Bearer <token>`."}
