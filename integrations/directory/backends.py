"""The single sign-on authentication backend (no vendor library: the protocol is ``integrations.directory.oidc``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.directory import DirectoryIdentity, directory_sign_in
from accounts.models import User
from accounts.throttling import client_ip
from integrations.directory.config import oidc_configured, oidc_role_mapping


class OIDCBackend:
    """Signs in the person a validated ID token names (``authenticate(request, oidc_identity=...)``) through
    ``accounts.directory``, and keeps their session only while they are active. Does nothing without an identity
    (so never for a username and password)."""

    def authenticate(
        self, request: HttpRequest | None, oidc_identity: DirectoryIdentity | None = None, **kwargs: Any
    ) -> User | None:
        if oidc_identity is None or not oidc_configured():
            return None
        return directory_sign_in(identity=oidc_identity, mapping=oidc_role_mapping(), ip=client_ip(request) or None)

    def get_user(self, user_id: int) -> User | None:
        user = User.objects.filter(pk=user_id).first()
        return user if user is not None and user.is_active else None
