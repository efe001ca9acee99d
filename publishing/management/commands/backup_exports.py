"""Copy an export's files to the backup target (local directory or SFTP)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from publishing.models import ExportPublication
from publishing.selectors import export_run_to_publish
from publishing.services import PublishError, export_backup


class Command(BaseCommand):
    """Back up the newest successful export, or ``--run ID``; each copy is read back and its sha256 checked.

    ``--dry-run`` checks the files and connects to the target without writing. Exits non-zero, with one line per
    failed file on stderr, when the backup fails or no backup target is configured.
    """

    help = "Copy an export's files to the backup target, verify them and prune old backups."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--run", type=int, help="The export run to back up (default: the newest successful).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the files and the target; copy and remove nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        run, missing = export_run_to_publish(options["run"])
        if run is None:
            raise CommandError(missing)
        try:
            publication = export_backup(run=run, dry_run=options["dry_run"])
        except PublishError as exc:
            raise CommandError(str(exc)) from None
        what = "Dry run of the backup" if options["dry_run"] else "Backup"
        if publication.status == ExportPublication.Status.FAILED:
            raise CommandError(f"{what} of export #{run.pk} failed:\n{publication.detail}")
        if publication.status == ExportPublication.Status.SKIPPED:
            raise CommandError(f"{what} of export #{run.pk} skipped: {publication.detail}")
        self.stdout.write(f"{what} of export #{run.pk} {publication.status}: {publication.detail}")
