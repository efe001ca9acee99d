"""Publications: each attempt to publish a run's files to Confluence or back them up."""

from __future__ import annotations

from django.db import models

from exports.models import ExportRun


class ExportPublication(models.Model):
    """One attempt to publish a run's files to Confluence or copy them to the backup target.

    Kept apart from the run: a failed publication never changes the export's own status.
    """

    class Target(models.TextChoices):
        CONFLUENCE = "confluence", "Confluence"
        BACKUP = "backup", "Backup"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    run = models.ForeignKey(ExportRun, on_delete=models.CASCADE, related_name="publications")
    target = models.CharField(max_length=16, choices=Target.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    detail = models.TextField(blank=True, help_text="What was done, or why it failed.")
    outcome = models.JSONField(default=dict, blank=True, help_text="Per page / per file results.")
    started = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "exports_exportpublication"  # the table it had in exports, kept when the model moved here
        ordering = ["-started", "-id"]

    def __str__(self) -> str:
        return f"{self.get_target_display()} of export #{self.run_id} ({self.status})"
