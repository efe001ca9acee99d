"""Export runs, the files they wrote, and the NetBox snapshots incremental runs reuse."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExportRun(models.Model):
    """One NetBox → CMDB export: who asked, how it went step by step, what changed, and the files it wrote."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        COMMAND = "command", "Command"
        SCHEDULE = "schedule", "Schedule"
        API = "api", "API"
        WEB = "web", "Web"
        ADMIN = "admin", "Admin"

    class Mode(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="export_runs"
    )
    force = models.BooleanField(default=False, help_text="Fetch everything instead of only what changed.")
    publish = models.BooleanField(default=True, help_text="Publish the files after a successful export.")
    mode = models.CharField(max_length=16, choices=Mode.choices, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the executing worker.")
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process executing the run.")
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        help_text="The abandoned run this one repeats.",
    )
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1, or 2 and more for retries of abandoned runs.")
    devices = models.PositiveIntegerField(null=True, blank=True)
    vms = models.PositiveIntegerField("VMs", null=True, blank=True)
    added = models.PositiveIntegerField(null=True, blank=True)
    changed = models.PositiveIntegerField(null=True, blank=True)
    removed = models.PositiveIntegerField(null=True, blank=True)
    netbox_requests = models.PositiveIntegerField(null=True, blank=True)
    reused_files = models.BooleanField(
        default=False, help_text="Nothing changed in NetBox: the previous run's files were reused."
    )
    step = models.CharField(max_length=32, blank=True, help_text="The step being executed.")
    progress = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent per step.")
    changes = models.JSONField(default=dict, blank=True, help_text="Names added, changed and removed (capped).")
    lookups_digest = models.CharField(max_length=64, blank=True)
    files_digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="What shaped its files beyond the rows: settings, data-quality rules, day.",
    )
    netbox_url = models.CharField(
        "NetBox URL", max_length=500, blank=True, help_text="The NetBox this run exported from."
    )
    columns = models.JSONField(
        default=dict,
        blank=True,
        help_text="The column set its files were written with ({} for the default, today's contract).",
    )
    compared = models.BooleanField(
        default=False, help_text="Its rows were compared with the previous export's, column by column."
    )
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    after_run = models.JSONField(
        default=list,
        blank=True,
        help_text="The after-run steps' outcomes, in order: step, outcome, seconds, error, note (exports.afterrun).",
    )
    # True while queued or running, NULL otherwise: the unique index lets only one run be active at a time.
    active = models.BooleanField(null=True, default=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"Export #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def duration(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None


class ExportArtifact(models.Model):
    """A file written by a run, under ``ENREACH_DATA_DIR``, with its checksum."""

    class Kind(models.TextChoices):
        DEVICES = "devices", "Devices CSV"
        VMS = "vms", "VMs CSV"
        MERGED = "merged", "Merged CSV"
        WORKBOOK = "workbook", "Workbook"
        QUALITY = "quality", "Data quality CSV"

    run = models.ForeignKey(ExportRun, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500, help_text="Relative to ENREACH_DATA_DIR.")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "kind"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="exports_artifact_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} (run {self.run_id})"


class ExportChange(models.Model):
    """A device or VM a run added, removed or changed, with the columns that changed (old → new).

    Computed at export time from the previous export's rows and the new ones (``exports.changes``).
    """

    class Kind(models.TextChoices):
        DEVICE = "device", "Device"
        VM = "vm", "Virtual machine"

    class Change(models.TextChoices):
        ADDED = "added", "Added"
        CHANGED = "changed", "Changed"
        REMOVED = "removed", "Removed"

    run = models.ForeignKey(ExportRun, on_delete=models.CASCADE, related_name="object_changes")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    change = models.CharField(max_length=8, choices=Change.choices)
    netbox_id = models.PositiveBigIntegerField()
    name = models.CharField(max_length=255, blank=True)
    columns = models.TextField(blank=True, help_text="The names of the changed columns, comma separated.")
    fields = models.JSONField(default=dict, blank=True, help_text="Column -> [old, new] of each changed column.")

    class Meta:
        ordering = ["run", "kind", "change", "name", "netbox_id"]
        indexes = [models.Index(fields=["run", "kind", "change"], name="exports_change_run_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.name or self.netbox_id} {self.change} (run {self.run_id})"


class NetboxSnapshot(models.Model):
    """The last exported state of one NetBox device or VM, reused by incremental runs for unchanged objects."""

    class Kind(models.TextChoices):
        DEVICE = "device", "Device"
        VM = "vm", "Virtual machine"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    netbox_id = models.PositiveBigIntegerField()
    name = models.CharField(max_length=255, blank=True)
    last_updated = models.CharField(max_length=40)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the stored record, to skip unchanged writes.")
    data = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "netbox_id"], name="exports_snapshot_unique_object")]
        # Covers what an incremental run reads of every stored object (``exports.snapshots.snapshots_state``): the
        # ids and times come from the index alone, not from each row beside its JSON.
        indexes = [models.Index(fields=["kind", "netbox_id", "last_updated"], name="exports_snapshot_state")]
        verbose_name = "NetBox snapshot"

    def __str__(self) -> str:
        return f"{self.kind} {self.netbox_id} {self.name}"


class ContactSnapshot(models.Model):
    """The contacts of the last export, kept (as one row) so incremental runs need not list every assignment.

    ``contacts`` holds the rendered Contacts cell per ``"<object type>:<object id>"``; ``state`` the
    ``id -> last_updated`` of the NetBox listings it came from (device and VM contact assignments, contacts,
    contact roles): while those are the same, the contacts are too. ``assignments`` holds the object of every
    assignment (``{"device_contacts": {"<assignment id>": <device id>}, "vm_contacts": …}``): when only some
    assignments changed, the cells of their objects are rendered again (a deleted assignment's object is known only
    from here), not every cell.
    """

    state = models.JSONField()
    contacts = models.JSONField()
    assignments = models.JSONField(default=dict, blank=True, help_text="The object id of every contact assignment.")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the rendered contacts.")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"contacts of {len(self.contacts)} objects"


class ColumnSet(models.Model):
    """The operator's columns of one dataset (devices or VMs): ordered ``{"header", "source", "type", "visible"}``
    entries (``exports.columns.Column``). No row: the default set, the contract. Changed only through
    ``exports.column_sets.column_set_replace``, which checks it against NetBox and audits it."""

    class Dataset(models.TextChoices):
        DEVICES = "devices", "Devices"
        VMS = "vms", "Virtual machines"

    dataset = models.CharField(max_length=16, choices=Dataset.choices, unique=True)
    columns = models.JSONField(default=list, blank=True)
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["dataset"]
        verbose_name = verbose_name_plural = "CMDB columns"

    def __str__(self) -> str:
        return f"{self.get_dataset_display()} columns"
