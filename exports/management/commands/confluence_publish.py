"""Publish an export's files to Confluence: the CMDB workbook, and the devices and VMs table pages."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports import selectors
from exports.models import ExportPublication, ExportRun
from exports.publishing import PARTS, PublishError, confluence_publish


class Command(BaseCommand):
    """Publish the newest successful export (or ``--run ID``); without part flags, every configured part.

    ``--dry-run`` reads the pages and prints what would change without writing. Exits non-zero when a part fails.
    """

    help = "Publish an export to Confluence (CMDB workbook attachment, devices and VMs pages)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cmdb", action="store_true", help="Attach the CMDB workbook.")
        parser.add_argument("--devices", action="store_true", help="Update the devices page and its CSV.")
        parser.add_argument("--vms", action="store_true", help="Update the VMs page and its CSV.")
        parser.add_argument("--run", type=int, help="The export run to publish (default: the newest successful).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        parts = [part for part in PARTS if options[part]] or list(PARTS)
        if options["run"]:
            run = ExportRun.objects.filter(pk=options["run"]).first()
            if run is None:
                raise CommandError(f"No export run #{options['run']}.")
        else:
            run = selectors.export_run_last_success()
            if run is None:
                raise CommandError("No successful export yet: run `manage.py netbox_update` first.")
        try:
            publication, results = confluence_publish(run=run, parts=parts, dry_run=options["dry_run"])
        except PublishError as exc:
            raise CommandError(str(exc)) from None
        for result in results:
            self.stdout.write(f"{result.part}: {result.action}" + (f" ({result.detail})" if result.detail else ""))
        if publication is not None and publication.status == ExportPublication.Status.FAILED:
            raise CommandError(f"Publishing export #{run.pk} failed: {publication.detail}")
