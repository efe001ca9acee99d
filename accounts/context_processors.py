"""Template context of the accounts app."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.preferences import preference_defaults, preferences_effective


def preferences(request: HttpRequest) -> dict[str, Any]:
    """``user_preferences`` (time zone, theme, export dataset, defaults filled in) and ``export_dataset``.

    ``export_dataset`` is the artifact kind (devices, vms, merged) a page offers first; with the
    ``preferred_first`` filter of ``{% load preferences %}``: ``{% for f in files|preferred_first:export_dataset %}``.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        values = preferences_effective(getattr(user, "preferences", None))
    else:
        values = preference_defaults()
    return {"user_preferences": values, "export_dataset": values["export_dataset"]}
