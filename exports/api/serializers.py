"""Export API shapes."""

from __future__ import annotations

from urllib.parse import quote

from rest_framework import serializers

from exports.models import ExportArtifact, ExportChange, ExportRun


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

    class Meta(ExportRunSerializer.Meta):
        fields = [*ExportRunSerializer.Meta.fields, "log", "after_run"]
        read_only_fields = fields


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
