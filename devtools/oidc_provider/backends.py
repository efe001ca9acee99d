"""The provider's users: ``users.json`` in its state folder, ``{username: {"password": ..., "claims": {...}}}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User


def _state() -> Path:
    return Path(getattr(settings, "STATE"))  # noqa: B009 (the provider's own setting, unknown to the type stubs)


def users() -> dict[str, Any]:
    path = _state() / "users.json"
    return json.loads(path.read_text()) if path.exists() else {}


def faults() -> dict[str, Any]:
    path = _state() / "faults.json"
    return json.loads(path.read_text()) if path.exists() else {}


class UsersFileBackend(ModelBackend):
    """Checks the password against users.json (read at every sign-in) and keeps a Django user of the same name."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kw: Any) -> Any:
        entry = users().get(username or "")
        if entry is None or entry.get("password") != password or entry.get("disabled"):
            return None
        user, _ = User.objects.get_or_create(username=username)
        return user

    def get_user(self, user_id: int) -> Any:
        return User.objects.filter(pk=user_id).first()
