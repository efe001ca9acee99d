"""Check the connection to NetBox."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.exceptions import IntegrationError
from integrations.services import netbox_status_get


class Command(BaseCommand):
    """Print NetBox's version, token validity and device/VM counts; exit non-zero with the reason on failure."""

    help = "Check the connection to NetBox: version, token, device and VM counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            status = netbox_status_get()
        except IntegrationError as exc:
            raise CommandError(f"NetBox check failed: {exc}") from None
        if options["json"]:
            self.stdout.write(json.dumps(status, indent=2))
            return
        demo = " (demo)" if status["demo"] else ""
        self.stdout.write(f"NetBox:           {status['url']}{demo}")
        self.stdout.write(f"Version:          {status['netbox_version']}")
        self.stdout.write(f"Token:            {status['token']}")
        self.stdout.write(f"Devices:          {status['devices']}")
        self.stdout.write(f"Virtual machines: {status['virtual_machines']}")
