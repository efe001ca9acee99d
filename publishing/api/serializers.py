"""Publishing API shapes."""

from __future__ import annotations

from rest_framework import serializers

from publishing.models import ExportPublication


class ExportPublicationSerializer(serializers.ModelSerializer):
    """One publish or backup attempt of a run."""

    # Plain text: one enum for the targets in the schema is the request's (drf-spectacular warns on two names).
    target = serializers.CharField(read_only=True, help_text="confluence or backup")

    class Meta:
        model = ExportPublication
        fields = ["id", "run", "target", "status", "detail", "outcome", "started", "finished"]
        read_only_fields = fields


class ExportPublishRequestSerializer(serializers.Serializer):
    """What to publish again: Confluence, the backup, or both (default)."""

    targets = serializers.ListField(
        child=serializers.ChoiceField(choices=ExportPublication.Target.choices),
        default=list(ExportPublication.Target.values),
        allow_empty=False,
    )
    force = serializers.BooleanField(
        default=False, help_text="Write new Confluence page and attachment versions even where nothing changed."
    )
