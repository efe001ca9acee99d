"""User preferences stored server-side on ``User.preferences``: the known keys, their defaults and validation."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django.conf import settings

THEMES = ("system", "light", "dark")
EXPORT_DATASETS = ("devices", "vms", "merged")
# Stored as given and read by their own app, not part of preferences_effective: the CMDB page's saved views
# (an object, validated by cmdb.services).
APP_PREFERENCES = ("cmdb",)


@cache
def time_zones() -> frozenset[str]:
    """Every IANA time zone name this Python knows."""
    return frozenset(zoneinfo.available_timezones())


def preference_defaults() -> dict[str, Any]:
    """The value of each preference a user has not set."""
    return {"time_zone": settings.TIME_ZONE, "theme": "system", "export_dataset": "merged"}


def preference_errors(changes: dict[str, Any]) -> dict[str, str]:
    """Field -> message for every invalid entry of ``changes`` (``None`` means "back to the default")."""
    errors: dict[str, str] = {}
    known = preference_defaults()
    for key, value in changes.items():
        if key in APP_PREFERENCES:
            if value is not None and not isinstance(value, dict):
                errors[key] = "Must be an object."
            continue
        if key not in known:
            errors[key] = f"Unknown preference; choose among: {', '.join(sorted(known))}."
        elif value is None:
            continue
        elif key == "time_zone" and (not isinstance(value, str) or value not in time_zones()):
            errors[key] = "Not a known time zone (use an IANA name such as Europe/Amsterdam)."
        elif key == "theme" and value not in THEMES:
            errors[key] = f"Choose one of: {', '.join(THEMES)}."
        elif key == "export_dataset" and value not in EXPORT_DATASETS:
            errors[key] = f"Choose one of: {', '.join(EXPORT_DATASETS)}."
    return errors


def preferences_effective(stored: dict[str, Any] | None) -> dict[str, Any]:
    """The user's preferences with defaults filled in (unknown stored keys are dropped)."""
    values = preference_defaults()
    values.update({k: v for k, v in (stored or {}).items() if k in values and v is not None})
    return values
