"""Limits on starting exports: at most ``EXPORT_START_LIMIT_USER`` new runs per user and ``EXPORT_START_LIMIT_GLOBAL``
in all within a window, for the doors people use (the API, the page, the admin).

Counted from the runs themselves (``ExportRun.created``), not from a cache: the same in every process, exact after
a restart, and still enforced while Redis is down. A start is a run that was queued and not refused: joining the run
already active is not one, nor is a retry the sweeper queues, nor a run the queue refused (its broker was down) or
no worker ever picked up. The schedule and ``manage.py netbox_update`` are never refused (their runs count towards
the global limit all the same).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, QuerySet
from django.utils import timezone

from exports.errors import ExportThrottled
from exports.models import ExportRun

# The doors a person starts exports from.
LIMITED_TRIGGERS = (ExportRun.Trigger.API, ExportRun.Trigger.WEB, ExportRun.Trigger.ADMIN)
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    """``count`` starts per ``seconds``."""

    count: int
    seconds: int
    text: str

    @property
    def window(self) -> str:
        """The window in words: "hour", "10 minutes"."""
        for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
            if self.seconds % size == 0:
                amount = self.seconds // size
                return unit if amount == 1 else f"{amount} {unit}s"
        return f"{self.seconds} seconds"


def rate_parse(text: str, *, setting: str = "") -> Rate | None:
    """``"10/hour"``, ``"3/10minutes"``, ``"1/day"`` -> a ``Rate``; empty -> None (no limit)."""
    if not text or not text.strip():
        return None
    match = _RATE.match(text)
    if match is None:
        raise ImproperlyConfigured(f"{setting or 'A rate'} must look like 10/hour or 3/10minutes, not {text!r}.")
    count, amount, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3).lower()
    return Rate(count=count, seconds=amount * _UNITS[unit], text=text.strip())


def export_start_check(*, user: Any = None, now: datetime | None = None) -> None:
    """Raise ``ExportThrottled`` when starting one more export would exceed a limit; the user's limit first."""
    now = now or timezone.now()
    starts = ExportRun.objects.filter(retry_of__isnull=True).filter(Q(active=True) | Q(started__isnull=False))
    if user is not None and getattr(user, "is_authenticated", False):
        rate = rate_parse(settings.EXPORT_START_LIMIT_USER, setting="EXPORT_START_LIMIT_USER")
        if rate is not None:
            wait = _wait(starts.filter(requested_by=user), rate, now)
            if wait:
                raise ExportThrottled(
                    f"Not started: you started {rate.count} exports in the last {rate.window}, the most allowed "
                    f"(EXPORT_START_LIMIT_USER={rate.text}). Try again in {_words(wait)}.",
                    wait=wait,
                    scope="user",
                )
    rate = rate_parse(settings.EXPORT_START_LIMIT_GLOBAL, setting="EXPORT_START_LIMIT_GLOBAL")
    if rate is not None:
        wait = _wait(starts, rate, now)
        if wait:
            raise ExportThrottled(
                f"Not started: {rate.count} exports were started in the last {rate.window}, the most allowed for "
                f"everyone together (EXPORT_START_LIMIT_GLOBAL={rate.text}). Try again in {_words(wait)}.",
                wait=wait,
                scope="global",
            )


def _wait(starts: QuerySet[ExportRun], rate: Rate, now: datetime) -> int:
    """Seconds until one more start fits within ``rate`` (0: it fits now)."""
    if rate.count == 0:
        return rate.seconds
    recent = list(
        starts.filter(created__gt=now - timedelta(seconds=rate.seconds))
        .order_by("-created")
        .values_list("created", flat=True)[: rate.count]
    )
    if len(recent) < rate.count:
        return 0
    # The rate.count-th newest start must leave the window before another one fits.
    return max(1, math.ceil((recent[-1] + timedelta(seconds=rate.seconds) - now).total_seconds()))


def _words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
