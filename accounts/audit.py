"""The audit trail: who performs a change and from where (``AuditContext``), and writing one ``AuditEntry``."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from accounts.models import AuditEntry, User
from accounts.throttling import client_ip


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Who performs a change and from where, for the audit trail."""

    user: User | None = None
    source: str = AuditEntry.Source.SYSTEM
    ip: str | None = None
    name: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, *, source: str) -> AuditContext:
        """The signed-in user of a web, admin or API request and the client's address."""
        user = request.user if request.user.is_authenticated else None
        return cls(user=user, source=source, ip=client_ip(request) or None)  # type: ignore[arg-type]

    @classmethod
    def cli(cls) -> AuditContext:
        """A management command: the operating-system account that ran it."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(source=AuditEntry.Source.CLI, name=f"cli:{who}")

    @property
    def actor_name(self) -> str:
        return self.user.username if self.user is not None else self.name


SYSTEM = AuditContext()


def audit_record(
    *, by: AuditContext | None, action: str, target: str = "", detail: dict[str, Any] | None = None
) -> None:
    """Write one audit entry. ``detail`` must never contain a secret."""
    by = by or SYSTEM
    AuditEntry.objects.create(
        actor=by.user,
        actor_name=by.actor_name,
        source=by.source,
        ip=by.ip,
        action=action,
        target=target,
        detail=detail or {},
    )
