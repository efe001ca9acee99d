"""Re-encrypt every global key with the current ENREACH_ENCRYPTION_KEY."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import AuditContext
from accounts.errors import AccountError
from accounts.global_keys import global_keys_rotate
from accounts.keys import KeyUnavailable


class Command(BaseCommand):
    """Rotate the encryption key of the global keys.

    Set ``ENREACH_ENCRYPTION_KEY`` to the new key, then run ``keys_rotate --old-key=<previous key>``
    (with ``=``: a key may start with ``-``): every value
    is decrypted with the new or the old key(s) and encrypted with the new one, in one transaction.
    """

    help = "Re-encrypt all global keys with the current ENREACH_ENCRYPTION_KEY (reading them with --old-key)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--old-key",
            action="append",
            default=[],
            help="A previous Fernet key the values may be encrypted with (repeatable; write --old-key=KEY).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = global_keys_rotate(old_keys=options["old_key"], by=AuditContext.cli())
        except (AccountError, KeyUnavailable) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} global key{'s' if count != 1 else ''}."))
