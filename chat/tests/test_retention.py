"""Retention: sessions idle for longer than CHAT_RETENTION_DAYS go, through a daily django-q2 schedule."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_q.models import Schedule

from accounts.roles import Role
from chat.models import ChatMessage, ChatSession
from chat.retention import RETENTION_SCHEDULE_NAME, chat_retention_schedule_sync, chat_sessions_purge
from chat.services import chat_session_create
from chat.tasks import chat_retention_task


def aged(session: ChatSession, days: float) -> ChatSession:
    ChatSession.objects.filter(pk=session.pk).update(updated=timezone.now() - timedelta(days=days))
    return session


def test_purge_deletes_sessions_idle_for_longer_than_the_retention(make_user, settings):
    settings.CHAT_RETENTION_DAYS = 30
    user = make_user(Role.MEMBER)
    old = aged(chat_session_create(owner=user, title="old"), 31)
    ChatMessage.objects.create(session=old, role="user", content="bye")
    aged(chat_session_create(owner=user, title="recent"), 29)
    chat_session_create(owner=user, title="new")
    assert chat_sessions_purge() == 1
    assert sorted(ChatSession.objects.values_list("title", flat=True)) == ["new", "recent"]
    assert not ChatMessage.objects.exists()


def test_purge_with_zero_days_keeps_everything(make_user, settings):
    settings.CHAT_RETENTION_DAYS = 0
    aged(chat_session_create(owner=make_user(Role.MEMBER)), 3650)
    assert chat_sessions_purge() == 0 and ChatSession.objects.count() == 1


def test_new_messages_count_as_activity(make_user, settings, llm):
    settings.CHAT_RETENTION_DAYS = 30
    from chat.services import chat_message_post

    session = aged(chat_session_create(owner=make_user(Role.MEMBER)), 31)
    session.refresh_from_db()
    chat_message_post(session=session, content="still here")
    assert chat_sessions_purge() == 0


def test_the_daily_task_runs_the_purge(make_user, settings):
    settings.CHAT_RETENTION_DAYS = 1
    aged(chat_session_create(owner=make_user(Role.MEMBER)), 2)
    assert chat_retention_task() == "deleted 1 chat sessions"


def test_schedule_is_created_once_daily_and_removed_when_retention_is_off(db, settings):
    settings.CHAT_RETENTION_DAYS = 90
    Schedule.objects.filter(name=RETENTION_SCHEDULE_NAME).delete()
    assert chat_retention_schedule_sync() == "created"
    assert chat_retention_schedule_sync() == "updated"
    schedule = Schedule.objects.get(name=RETENTION_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "chat.tasks.chat_retention_task", Schedule.DAILY, -1
    )  # fmt: skip
    settings.CHAT_RETENTION_DAYS = 0
    assert chat_retention_schedule_sync() == "removed"
    assert not Schedule.objects.filter(name=RETENTION_SCHEDULE_NAME).exists()


def test_migrate_syncs_the_schedule(db, settings):
    # The test database was built by `migrate`, whose post_migrate hook synced the schedule.
    expected = 1 if settings.CHAT_RETENTION_DAYS > 0 else 0
    assert (
        Schedule.objects.filter(name=RETENTION_SCHEDULE_NAME, func="chat.tasks.chat_retention_task").count() == expected
    )
