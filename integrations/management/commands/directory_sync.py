"""Reconcile the users an LDAP directory manages with what the directory says today."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.directory.sync import directory_sync
from integrations.exceptions import DirectoryError


class Command(BaseCommand):
    """Deactivate (and revoke the API tokens of) LDAP users who are gone, disabled or in no mapped group; set the
    others' roles from their groups. Exits non-zero, changing nobody, when the directory cannot be reached."""

    help = "Deactivate LDAP users the directory no longer grants a role; set the others' roles from their groups."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = directory_sync()
        except DirectoryError as exc:
            raise CommandError(f"Directory sync failed: {exc}") from None
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        self.stdout.write(f"Checked:      {result.checked} LDAP users")
        self.stdout.write(f"Deactivated:  {', '.join(result.deactivated) or 'nobody'}")
        self.stdout.write(f"Role changed: {', '.join(result.role_changed) or 'nobody'}")
        self.stdout.write(f"Unchanged:    {result.unchanged}")
