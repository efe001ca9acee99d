from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_schedule(sender: AppConfig, **kwargs: Any) -> None:
    from chat.retention import chat_retention_schedule_sync

    chat_retention_schedule_sync()


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Every `migrate` brings the daily retention schedule in line with CHAT_RETENTION_DAYS.
        post_migrate.connect(_sync_schedule, sender=self)
