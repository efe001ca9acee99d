from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in


def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Every sign-in (page, admin, single sign-on) goes to the audit trail, with how the user signed in."""
    from accounts.audit import AuditContext
    from accounts.directory import sign_in_record
    from accounts.models import AuditEntry
    from accounts.throttling import client_ip

    path = getattr(request, "path", "") or ""
    source = AuditEntry.Source.ADMIN if path.startswith("/admin/") else AuditEntry.Source.WEB
    sign_in_record(user=user, by=AuditContext(user=user, source=source, ip=client_ip(request) or None))


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import checks  # noqa: F401  (registers the system checks)
        from enreach import panels

        panels.register("home-actions", "profile", template="accounts/_home_action.html",
                        context=lambda request: {}, order=400)  # fmt: skip

        user_logged_in.connect(_signed_in, dispatch_uid="accounts.sign_in_audit")
