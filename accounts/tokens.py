"""API tokens: creating one (the secret shown once, only its hash stored), revoking one or all of a user's, each
recorded in the audit trail."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.errors import AccountError
from accounts.models import ApiToken, User

TOKEN_PREFIX = "ent_"


def token_hash(token: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(
    *,
    user: User,
    label: str = "",
    expires: datetime | None = None,
    read_only: bool = False,
    by: AuditContext | None = None,
) -> tuple[ApiToken, str]:
    """Create a personal API token. The secret is returned once and only its hash is stored."""
    if expires is not None and expires <= timezone.now():
        raise AccountError("The expiry must be in the future.", field="expires")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        label=label,
        prefix=secret[: len(TOKEN_PREFIX) + 8],
        key_hash=token_hash(secret),
        expires=expires,
        read_only=read_only,
    )
    audit_record(
        by=by,
        action="token.create",
        target=f"token:{token.prefix}",
        detail={"owner": user.username, "label": label, "read_only": read_only},
    )
    return token, secret


def api_token_revoke(*, token: ApiToken, by: AuditContext | None = None) -> ApiToken:
    """Revoke a token now. Revoked tokens stay listed (for the record) and never authenticate again."""
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
        audit_record(
            by=by, action="token.revoke", target=f"token:{token.prefix}", detail={"owner": token.user.username}
        )
    return token


def tokens_revoke_all(*, user: User, by: AuditContext | None, reason: str) -> int:
    """Revoke every usable token of ``user`` (credentials end together), one audit entry each; how many."""
    count = 0
    for token in ApiToken.objects.select_for_update().filter(user=user, revoked__isnull=True).order_by("pk"):
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
        audit_record(
            by=by,
            action="token.revoke",
            target=f"token:{token.prefix}",
            detail={"owner": user.username, "reason": reason},
        )
        count += 1
    return count
