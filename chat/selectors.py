"""Reads of chat sessions and messages. Every read is scoped to its owner: nobody reads anybody else's chats."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from chat.models import ChatMessage, ChatSession, ChatUserKey


def chat_session_list(*, owner: Any) -> QuerySet[ChatSession]:
    """The owner's sessions, most recently active first, with their message counts."""
    return ChatSession.objects.filter(owner=owner).annotate(message_count=Count("messages")).order_by("-updated", "-id")


def chat_session_get(*, owner: Any, session_id: int) -> ChatSession | None:
    """One of the owner's sessions, or None (also when it exists but belongs to someone else)."""
    return chat_session_list(owner=owner).filter(pk=session_id).first()


def chat_message_list(*, session: ChatSession) -> QuerySet[ChatMessage]:
    """A session's messages in the order they were written."""
    return ChatMessage.objects.filter(session=session).order_by("created", "id")


def chat_user_key_get(*, user: Any) -> ChatUserKey | None:
    """The user's own provider key row, if they set one."""
    return ChatUserKey.objects.filter(user=user).first()
