"""The export schedule: ``EXPORT_SCHEDULE`` parsed into django-q2 schedule fields, and the schedule kept in step
with it."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from exports.errors import ExportError

SCHEDULE_NAME = "NetBox export"


def export_schedule_parse(value: str) -> tuple[str, dict[str, Any]]:
    """``EXPORT_SCHEDULE`` as django-q2 schedule fields: a number of minutes, or a cron expression."""
    from croniter import croniter
    from django_q.models import Schedule

    value = value.strip()
    if value.isdigit() and int(value) > 0:
        return Schedule.MINUTES, {"minutes": int(value), "cron": None}
    if croniter.is_valid(value):
        return Schedule.CRON, {"cron": value, "minutes": None}
    raise ExportError(f"EXPORT_SCHEDULE={value!r} is neither a number of minutes nor a cron expression.")


def export_schedule_sync() -> str:
    """Create, update or remove the export schedule to match ``EXPORT_SCHEDULE``. Safe to call repeatedly."""
    from django_q.models import Schedule

    if not settings.EXPORT_SCHEDULE:
        deleted, _ = Schedule.objects.filter(name=SCHEDULE_NAME).delete()
        return "removed" if deleted else "none"
    schedule_type, fields = export_schedule_parse(settings.EXPORT_SCHEDULE)
    _, created = Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "exports.tasks.export_scheduled_task",
            "schedule_type": schedule_type,
            "repeats": -1,
            **fields,
        },
    )
    return "created" if created else "updated"
