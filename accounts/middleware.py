"""Request middleware of the accounts app."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.preferences import preferences_effective


class UserTimeZoneMiddleware:
    """Show every time in the signed-in user's time zone preference (templates, forms and the admin).

    Stored values stay UTC; only rendering changes. Anonymous requests and unknown zones use ``TIME_ZONE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        zone = None
        if user is not None and user.is_authenticated:
            name = preferences_effective(getattr(user, "preferences", None))["time_zone"]
            try:
                zone = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                zone = None
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
