"""Named views of the CMDB grid: a dataset's columns, filters, sort and search under a name, personal or shared."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class CmdbNamedView(models.Model):
    """A grid view saved under a name. Its owner sees it; with ``shared`` everyone who may browse the CMDB does.

    ``state`` is a view as ``cmdb.services.cmdb_view_clean`` stores it (columns, hidden, widths, ordering, filters,
    q, density, page_size). Only the owner or an admin changes or deletes it (``cmdb.services``).
    """

    class Dataset(models.TextChoices):
        DEVICES = "devices", "Devices"
        VMS = "vms", "Virtual machines"
        MERGED = "merged", "Merged"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cmdb_views")
    name = models.CharField(max_length=100)
    dataset = models.CharField(max_length=8, choices=Dataset.choices)
    shared = models.BooleanField(default=False, help_text="Everyone who may browse the CMDB sees it.")
    state = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "dataset", "name"], name="cmdb_named_view_unique_name"),
        ]
        verbose_name = "CMDB named view"

    def __str__(self) -> str:
        return f"{self.name} ({self.dataset}, {self.owner})"
