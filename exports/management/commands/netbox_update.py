"""Export NetBox devices and virtual machines to the CMDB files."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports.models import ExportRun
from exports.runs import QueueUnavailable
from exports.services import export_run_enqueue, export_run_execute, export_run_request


class Command(BaseCommand):
    """Run an export inline (default) or through the task queue (``--queue``), showing progress and a summary.

    Exits non-zero with a one-line reason when the export fails.
    """

    help = "Export NetBox devices and virtual machines to the CMDB CSV files and workbook."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Fetch everything instead of only what changed.")
        parser.add_argument("--queue", action="store_true", help="Hand the run to the django-q2 workers and wait.")
        parser.add_argument("--no-publish", action="store_true", help="Do not publish the files afterwards.")
        parser.add_argument(
            "--timeout", type=float, default=0, help="With --queue: stop waiting after this many seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        run, created = export_run_request(
            trigger=ExportRun.Trigger.COMMAND, force=options["force"], publish=not options["no_publish"]
        )
        if not created:
            self.stdout.write(f"Export #{run.pk} is already {run.status}; following it.")
            run = self._wait(run, options["timeout"])
        elif options["queue"]:
            try:
                export_run_enqueue(run=run)
            except QueueUnavailable as exc:
                raise CommandError(f"Export #{run.pk} failed: {exc} (or run it inline, without --queue).") from None
            self.stdout.write(f"Export #{run.pk} queued.")
            run = self._wait(run, options["timeout"])
        else:
            self.stdout.write(f"Export #{run.pk} started.")
            run = export_run_execute(run=run, on_progress=self._progress)
        self._summary(run)

    def _progress(self, run: ExportRun) -> None:
        progress = run.progress or {}
        parts = [f"[{run.step or run.status}]"]
        for key, label in (("devices_fetched", "devices"), ("vms_fetched", "VMs"), ("rows_written", "rows written")):
            if key in progress:
                parts.append(f"{progress[key]} {label}")
        line = " ".join(parts)
        if line != getattr(self, "_last_line", None):
            self._last_line = line
            self.stdout.write(line)

    def _wait(self, run: ExportRun, timeout: float) -> ExportRun:
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while run.is_active:
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(f"Export #{run.pk} is still {run.status} after {timeout:g} s.")
                time.sleep(1)
                run.refresh_from_db()
                self._progress(run)
        except KeyboardInterrupt:
            raise CommandError(f"Stopped waiting; export #{run.pk} goes on in the background.") from None
        return run

    def _summary(self, run: ExportRun) -> None:
        if run.status != ExportRun.Status.SUCCEEDED:
            raise CommandError(f"Export #{run.pk} failed: {run.error or run.status}")
        timings = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in run.timings.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Export #{run.pk} succeeded ({run.mode}, {run.duration or 0:.1f} s: {timings}). "
                f"{run.devices} devices, {run.vms} VMs; {run.added} added, {run.changed} changed, "
                f"{run.removed} removed."
            )
        )
        for artifact in run.artifacts.all():
            self.stdout.write(
                f"  {artifact.name}: {artifact.rows} rows, {artifact.size} bytes, sha256 {artifact.sha256}"
            )
