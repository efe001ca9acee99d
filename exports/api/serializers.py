"""Export API shapes."""

from __future__ import annotations

from urllib.parse import quote

from rest_framework import serializers

from exports.models import ExportArtifact, ExportRun


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
    duration = serializers.FloatField(read_only=True, allow_null=True)
    artifacts = ExportArtifactSerializer(many=True, read_only=True)

    class Meta:
        model = ExportRun
        fields = [
            "id", "status", "trigger", "mode", "force", "publish", "requested_by", "created", "started",
            "finished", "duration", "step", "progress", "devices", "vms", "added", "changed", "removed",
            "netbox_requests", "reused_files", "timings", "changes", "error", "artifacts",
        ]  # fmt: skip
        read_only_fields = fields


class ExportRunDetailSerializer(ExportRunSerializer):
    """A run with its log."""

    class Meta(ExportRunSerializer.Meta):
        fields = [*ExportRunSerializer.Meta.fields, "log"]
        read_only_fields = fields


class ExportRunRequestSerializer(serializers.Serializer):
    """What a client may ask for when requesting a run."""

    force = serializers.BooleanField(default=False, help_text="Fetch everything instead of only what changed.")
    publish = serializers.BooleanField(default=True, help_text="Publish the files after a successful export.")
