"""Chat API shapes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat.markdown import markdown_html
from chat.models import ChatMessage, ChatSession


@extend_schema_field(OpenApiTypes.OBJECT)
class ContextField(serializers.JSONField):
    """Context variables: a JSON object (typed as one in the schema, so Swagger's "Try it out" sends one)."""


class ChatSessionSerializer(serializers.ModelSerializer):
    """A session as its owner sees it."""

    message_count = serializers.IntegerField(read_only=True, default=0)
    context = ContextField(read_only=True)  # type: ignore[assignment]

    class Meta:
        model = ChatSession
        fields = ["id", "title", "context", "provider", "model", "message_count", "created", "updated"]
        read_only_fields = ["id", "provider", "model", "message_count", "created", "updated"]


class ChatSessionWriteSerializer(serializers.Serializer):
    """What a client may set on a session: its title and context variables."""

    title = serializers.CharField(required=False, allow_blank=True, max_length=200, trim_whitespace=True)
    # Declared fields leave the class body (DRF's metaclass), so this does not shadow ``Serializer.context``.
    context = ContextField(  # type: ignore[assignment]
        required=False, help_text="An object of variables given to the assistant."
    )

    def validate_context(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class ChatUsageSerializer(serializers.Serializer):
    """Token counts of one provider call, as the provider reported them."""

    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)


@extend_schema_field(ChatUsageSerializer(allow_null=True))
class UsageField(serializers.Field):
    """Token usage as one object, or null when the provider reported none."""

    def to_representation(self, message: ChatMessage) -> dict[str, int | None] | None:
        if message.total_tokens is None and message.prompt_tokens is None:
            return None
        return {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "total_tokens": message.total_tokens,
        }


class ChatGroundingExportSerializer(serializers.Serializer):
    """The export run whose CMDB the look-ups read."""

    id = serializers.IntegerField()
    finished = serializers.DateTimeField(allow_null=True)


class ChatGroundingRowSerializer(serializers.Serializer):
    """One row a look-up matched, linked to its object in NetBox when its id and type are known."""

    name = serializers.CharField()
    type = serializers.CharField(help_text='"device", "vm", or "" when unknown.')
    netbox_id = serializers.IntegerField(allow_null=True)
    netbox_url = serializers.CharField(help_text='The object\'s page in NetBox, or "".')
    columns = serializers.DictField(child=serializers.JSONField(), help_text="The row's columns as the tool gave them.")


class ChatGroundingGroupSerializer(serializers.Serializer):
    """One group of a grouped count."""

    value = serializers.CharField()
    count = serializers.IntegerField(allow_null=True)


class ChatGroundingLookupSerializer(serializers.Serializer):
    """One CMDB look-up the assistant made: the tool, its arguments, how many rows matched and the rows returned."""

    tool = serializers.CharField()
    arguments = serializers.DictField(child=serializers.JSONField())
    total = serializers.IntegerField(allow_null=True, help_text="Rows matched (null when the tool did not say).")
    returned = serializers.IntegerField(help_text="Rows returned to the assistant (and listed in rows).")
    truncated = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True, help_text='The tool\'s error, or "".')
    rows = ChatGroundingRowSerializer(many=True)
    group_by = serializers.CharField(required=False, help_text="Grouped counts only: the column.")
    groups = ChatGroundingGroupSerializer(many=True, required=False, help_text="Grouped counts only.")


class ChatGroundingSerializer(serializers.Serializer):
    """What an assistant answer rests on; empty (``{}``) on other messages."""

    export = ChatGroundingExportSerializer(allow_null=True, required=False)
    lookups = ChatGroundingLookupSerializer(many=True, required=False)

    def to_representation(self, instance: Any) -> Any:
        return super().to_representation(instance) if instance else {}


class ChatMessageSerializer(serializers.ModelSerializer):
    """A stored message. Assistant messages calling tools carry ``tool_calls``; tool results carry
    ``tool_call_id`` and ``tool_name``. Assistant answers carry ``grounding`` (the export and look-ups they rest
    on) and, when cut short, ``interrupted`` (why; ``content`` is what had arrived). ``content_html`` is the
    content rendered from Markdown and sanitised (no raw HTML, links only http(s))."""

    usage = UsageField(source="*", read_only=True)
    # A plain string in the schema: an enum would collide with the user's "role" enum.
    role = serializers.CharField(read_only=True, help_text="user, assistant, system or tool.")
    grounding = ChatGroundingSerializer(read_only=True)
    content_html = serializers.SerializerMethodField()

    class Meta:
        model = ChatMessage
        fields = ["id", "role", "content", "content_html", "tool_calls", "tool_call_id", "tool_name", "provider",
                  "model", "usage", "grounding", "interrupted", "created"]  # fmt: skip
        read_only_fields = fields

    def get_content_html(self, message: ChatMessage) -> str:
        return markdown_html(message.content) if message.role == ChatMessage.Role.ASSISTANT else ""


class ChatMessagePostSerializer(serializers.Serializer):
    """A user's message."""

    content = serializers.CharField(max_length=20_000, trim_whitespace=True)


class ChatUserKeySerializer(serializers.Serializer):
    """The user's own provider key: set it (write-only), see only whether one is set and its hint."""

    value = serializers.CharField(write_only=True, max_length=500, trim_whitespace=True)
    configured = serializers.BooleanField(read_only=True)
    hint = serializers.CharField(read_only=True, allow_null=True)
