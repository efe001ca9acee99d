"""Export API shapes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exports.columns import COLUMN_TYPES, ColumnSet
from exports.models import ExportArtifact, ExportChange, ExportRun


class ColumnSerializer(serializers.Serializer):
    """One column: its header in the files, its source (``contract:<Header>``, ``cf:<custom field>``,
    ``field:<dot.path>``), its type (a custom field's comes from NetBox) and whether the files show it."""

    header = serializers.CharField(max_length=255)
    source = serializers.CharField(max_length=300)  # type: ignore[assignment]
    type = serializers.ChoiceField(choices=list(COLUMN_TYPES), required=False)  # type: ignore[assignment]
    visible = serializers.BooleanField(default=True)


class ColumnSetSerializer(serializers.Serializer):
    """The column sets of devices and VMs, in file order. A ``PUT`` may give one dataset or both; each given one is
    replaced as a whole."""

    devices = ColumnSerializer(many=True, required=False)
    vms = ColumnSerializer(many=True, required=False)


class ColumnSetResponseSerializer(serializers.Serializer):
    """Both datasets' column sets."""

    devices = ColumnSerializer(many=True)
    vms = ColumnSerializer(many=True)


class ExportArtifactSerializer(serializers.ModelSerializer):
    """A file of a run, with its download URL."""

    url = serializers.SerializerMethodField()

    class Meta:
        model = ExportArtifact
        fields = ["name", "kind", "size", "sha256", "rows", "created", "url"]

    def get_url(self, artifact: ExportArtifact) -> str:
        return f"/api/exports/runs/{artifact.run_id}/artifacts/{quote(artifact.name)}"


class ExportRunSerializer(serializers.ModelSerializer):
    """An export run: status, counts, changes, timings and files."""

    requested_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)
    # Empty until the run starts and knows whether it fetches everything (DRF drops allow_blank from read-only
    # fields, so the schema would allow only the two modes).
    mode = serializers.ChoiceField(
        choices=ExportRun.Mode.choices,
        allow_blank=True,
        read_only=True,
        help_text="full or incremental; empty while the run is queued.",
    )
    duration = serializers.FloatField(read_only=True, allow_null=True)
    artifacts = ExportArtifactSerializer(many=True, read_only=True)

    class Meta:
        model = ExportRun
        fields = [
            "id", "status", "trigger", "mode", "force", "publish", "requested_by", "created", "started",
            "finished", "duration", "step", "progress", "devices", "vms", "added", "changed", "removed",
            "netbox_requests", "reused_files", "timings", "changes", "compared", "netbox_url", "error", "artifacts",
        ]  # fmt: skip
        read_only_fields = fields


class AfterRunStepSerializer(serializers.Serializer):
    """One after-run step's outcome on a finished run (``exports.afterrun``)."""

    step = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["succeeded", "failed", "skipped"])
    seconds = serializers.FloatField()
    error = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True, required=False)


class ExportRunDetailSerializer(ExportRunSerializer):
    """A run with its log and the outcomes of the steps that followed it."""

    after_run = AfterRunStepSerializer(many=True, read_only=True)
    columns = serializers.SerializerMethodField(help_text="The column set its files were written with.")

    class Meta(ExportRunSerializer.Meta):
        fields = [*ExportRunSerializer.Meta.fields, "log", "after_run", "columns"]
        read_only_fields = fields

    @extend_schema_field(ColumnSetResponseSerializer)
    def get_columns(self, run: ExportRun) -> dict[str, Any]:
        return ColumnSet.from_dict(run.columns or {}).as_dict()


class ExportRunRequestSerializer(serializers.Serializer):
    """What a client may ask for when requesting a run."""

    force = serializers.BooleanField(default=False, help_text="Fetch everything instead of only what changed.")
    publish = serializers.BooleanField(default=True, help_text="Publish the files after a successful export.")


class ExportChangeSerializer(serializers.ModelSerializer):
    """A device or VM a run added, changed or removed, with each changed column's old and new value."""

    # Plain text: the artifacts' "kind" enum already has the schema name KindEnum.
    kind = serializers.CharField(read_only=True, help_text="device or vm")
    columns = serializers.DictField(
        source="fields",
        child=serializers.ListField(child=serializers.CharField(allow_blank=True), min_length=2, max_length=2),
        read_only=True,
        help_text="Column name -> [old value, new value], for changed objects; empty for added and removed ones.",
    )

    class Meta:
        model = ExportChange
        fields = ["kind", "change", "netbox_id", "name", "columns"]
        read_only_fields = fields


class ExportChangePageSerializer(serializers.Serializer):
    """One page of a run's changes."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ExportChangeSerializer(many=True)


class ExportChangeQuerySerializer(serializers.Serializer):
    """The filters of a run's changes."""

    kind = serializers.ChoiceField(choices=ExportChange.Kind.values, required=False)
    change = serializers.ChoiceField(choices=ExportChange.Change.choices, required=False)
    q = serializers.CharField(required=False, allow_blank=True, max_length=200)


class QueueUnavailableSerializer(serializers.Serializer):
    """Why an export could not start: the task queue's broker is down."""

    detail = serializers.CharField()
    id = serializers.IntegerField(help_text="The run, recorded as failed with the reason.")
    reason = serializers.CharField(help_text="queue_unavailable")


class ColumnSetProblemsSerializer(serializers.Serializer):
    """A column set that cannot be used: every problem, each naming its column (and, for an unknown custom
    field, the names NetBox has)."""

    detail = serializers.CharField()
    problems = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Every problem of the set (not for a body that is no JSON).",
    )


class DatasetPreviewSerializer(serializers.Serializer):
    """A dataset's first rows under the proposed set: its header row and rows of cells (text or numbers)."""

    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField(child=serializers.JSONField()))


class ColumnSetPreviewSerializer(serializers.Serializer):
    """The first rows of each dataset, from the stored snapshots."""

    devices = DatasetPreviewSerializer()
    vms = DatasetPreviewSerializer()
