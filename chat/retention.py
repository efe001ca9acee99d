"""Chat retention: sessions idle for longer than ``CHAT_RETENTION_DAYS`` are deleted, daily, by a django-q2
schedule kept in step with the setting."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from chat.models import ChatSession

logger = logging.getLogger(__name__)

RETENTION_SCHEDULE_NAME = "Chat retention"


def chat_sessions_purge(*, days: int | None = None) -> int:
    """Delete sessions without activity for ``days`` (``CHAT_RETENTION_DAYS``; 0 keeps all); returns how many."""
    days = settings.CHAT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    old = ChatSession.objects.filter(updated__lt=timezone.now() - timedelta(days=days))
    count = old.count()
    old.delete()
    if count:
        logger.info("chat retention: deleted %d sessions idle for more than %d days", count, days)
    return count


def chat_retention_schedule_sync() -> str:
    """Create or remove the daily retention schedule to match ``CHAT_RETENTION_DAYS``. Safe to call repeatedly."""
    from django_q.models import Schedule

    if settings.CHAT_RETENTION_DAYS <= 0:
        deleted, _ = Schedule.objects.filter(name=RETENTION_SCHEDULE_NAME).delete()
        return "removed" if deleted else "none"
    _, created = Schedule.objects.update_or_create(
        name=RETENTION_SCHEDULE_NAME,
        defaults={"func": "chat.tasks.chat_retention_task", "schedule_type": Schedule.DAILY, "repeats": -1},
    )
    return "created" if created else "updated"
