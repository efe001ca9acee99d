"""Suggestion API shapes.

Output serializers read the annotations of ``suggestions.selectors`` (``like_count``, ``liked_by_me``) and the
prefetched comments. Input serializers only check types: the services validate values, so the API, the pages and
the admin answer with the same messages.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from accounts.models import User
from suggestions.models import Suggestion, SuggestionComment


class AuthorSerializer(serializers.Serializer):
    """Who wrote a suggestion or a comment."""

    username = serializers.CharField(read_only=True)
    display_name = serializers.SerializerMethodField()

    def get_display_name(self, user: User) -> str:
        return user.display_name or user.username


class CommentSerializer(serializers.ModelSerializer):
    """A comment: id, text, author, created."""

    author = AuthorSerializer(read_only=True, allow_null=True)

    class Meta:
        model = SuggestionComment
        fields = ["id", "text", "author", "created"]
        read_only_fields = fields


class SuggestionSerializer(serializers.ModelSerializer):
    """A suggestion with its classification style, status label, likes and comments."""

    classification_color = serializers.CharField(read_only=True)
    classification_letter = serializers.CharField(read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    likes = serializers.IntegerField(source="like_count", read_only=True)
    liked_by_me = serializers.BooleanField(read_only=True)
    author = AuthorSerializer(read_only=True, allow_null=True)
    comments = CommentSerializer(many=True, read_only=True)

    class Meta:
        model = Suggestion
        fields = [
            "id", "title", "summary", "classification", "classification_color", "classification_letter", "status",
            "status_label", "likes", "liked_by_me", "author", "created", "updated", "comments",
        ]  # fmt: skip
        read_only_fields = fields


class ClassificationMetaSerializer(serializers.Serializer):
    name = serializers.CharField()
    color = serializers.CharField()
    letter = serializers.CharField()


class StatusMetaSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label


class MetaSerializer(serializers.Serializer):
    """The classifications and statuses, to draw the board."""

    classifications = ClassificationMetaSerializer(many=True)
    statuses = StatusMetaSerializer(many=True)


# One object (items, total, meta), not a list: the list action must not wrap it in an array in the schema.
@extend_schema_serializer(many=False)
class SuggestionListSerializer(serializers.Serializer):
    items = SuggestionSerializer(many=True)
    total = serializers.IntegerField(help_text="How many suggestions match the filters, across all pages.")
    meta = MetaSerializer()


class SuggestionDetailSerializer(serializers.Serializer):
    item = SuggestionSerializer()
    meta = MetaSerializer()


class SuggestionItemSerializer(serializers.Serializer):
    item = SuggestionSerializer()


class CommentCreatedSerializer(serializers.Serializer):
    item = SuggestionSerializer()
    comment = CommentSerializer()


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo ("titel") is a 400 rather than silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field; allowed: {', '.join(self.fields)}."] for name in unknown}
                )
        return super().to_internal_value(data)


def _text(required: bool = False, **kwargs: Any) -> serializers.CharField:
    # Blank and whitespace-only values reach the services, which explain what is wrong with them.
    return serializers.CharField(required=required, allow_blank=True, trim_whitespace=False, **kwargs)


class SuggestionCreateSerializer(StrictSerializer):
    """What a client sends to propose a suggestion."""

    title = _text(required=True, help_text="Required, at most 200 characters.")
    summary = _text()
    classification = _text(help_text="A classification name, any case (default 'Could have').")
    status = _text(help_text="A status value; anything but 'new' needs suggestions.manage.")


class SuggestionUpdateSerializer(StrictSerializer):
    """What a client sends to change a suggestion; every field is optional."""

    title = _text()
    summary = _text()
    classification = _text()
    status = _text(help_text="Changing the status needs suggestions.manage.")


class CommentInputSerializer(StrictSerializer):
    """A comment's text."""

    text = _text(required=True, help_text="Required.")
