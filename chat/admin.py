"""Chat history in the Django admin: read-only, for administrators reviewing conversations."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from chat.models import ChatMessage, ChatSession
from enreach.admin import ReadOnlyAdmin


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    fields = ("created", "role", "content", "interrupted", "tool_name", "model", "total_tokens")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyAdmin):
    list_display = ["id", "title", "owner", "provider", "model", "messages_count", "created", "updated"]
    list_filter = ["provider", "model"]
    list_select_related = ["owner"]
    search_fields = ["title", "owner__username"]
    date_hierarchy = "updated"
    readonly_fields = ["owner", "title", "context", "provider", "model", "created", "updated"]
    inlines = [ChatMessageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChatSession]:
        return super().get_queryset(request).annotate(messages_total=Count("messages"))

    @admin.display(description="Messages", ordering="messages_total")
    def messages_count(self, session: ChatSession) -> int:
        return session.messages_total  # type: ignore[attr-defined]


@admin.register(ChatMessage)
class ChatMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "session", "role", "short_content", "tool_name", "provider", "model", "total_tokens",
                    "created"]  # fmt: skip
    list_filter = ["role", "provider", "model"]
    list_select_related = ["session", "session__owner"]
    search_fields = ["content", "session__title", "session__owner__username"]
    date_hierarchy = "created"
    readonly_fields = [f.name for f in ChatMessage._meta.fields]

    @admin.display(description="Content")
    def short_content(self, message: ChatMessage) -> str:
        return message.content[:80]
