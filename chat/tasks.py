"""django-q2 entry points: one service call each."""

from __future__ import annotations

from chat.retention import chat_sessions_purge


def chat_retention_task() -> str:
    """The daily retention run: delete sessions idle for longer than ``CHAT_RETENTION_DAYS``."""
    return f"deleted {chat_sessions_purge()} chat sessions"
