"""Publish an export's files to Confluence: the CMDB workbook, and the devices and VMs table pages."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from publishing.selectors import export_run_to_publish
from publishing.services import PARTS, PublishError, confluence_publish


class Command(BaseCommand):
    """Publish the newest successful export (or ``--run ID``); without part flags, every configured part.

    Only what changed is written (``--force`` writes new versions anyway). ``--dry-run`` reads the pages and
    prints what would change without writing. Prints one line per part; exits non-zero, with one line per failed
    part on stderr, when any part failed (dry runs included) or when no part is configured.
    """

    help = "Publish an export to Confluence (CMDB workbook attachment, devices and VMs pages)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cmdb", action="store_true", help="Attach the CMDB workbook.")
        parser.add_argument("--devices", action="store_true", help="Update the devices page and its CSV.")
        parser.add_argument("--vms", action="store_true", help="Update the VMs page and its CSV.")
        parser.add_argument("--run", type=int, help="The export run to publish (default: the newest successful).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")
        parser.add_argument(
            "--force", action="store_true", help="Write a new page and attachment version even when nothing changed."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        parts = [part for part in PARTS if options[part]] or list(PARTS)
        run, missing = export_run_to_publish(options["run"])
        if run is None:
            raise CommandError(missing)
        try:
            _, results = confluence_publish(run=run, parts=parts, dry_run=options["dry_run"], force=options["force"])
        except PublishError as exc:
            raise CommandError(str(exc)) from None
        for result in results:
            self.stdout.write(result.line)
        what = "Dry run of publishing" if options["dry_run"] else "Publishing"
        failed = [r for r in results if r.action == "failed"]
        if failed:
            lines = "\n".join(f"{r.part}: {r.detail}" for r in failed)
            raise CommandError(f"{what} export #{run.pk} failed for {len(failed)} of {len(results)} parts:\n{lines}")
        if all(r.action == "skipped" for r in results):
            raise CommandError(f"{what} export #{run.pk}: no page configured (set CONFLUENCE_*_PAGE_ID).")
