"""System checks for account settings: a malformed encryption key is reported at start-up, not at first use."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def encryption_key_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for position, key in enumerate(k.strip() for k in settings.ENREACH_ENCRYPTION_KEY.split(",") if k.strip()):
        try:
            Fernet(key)
        except ValueError:
            errors.append(
                Error(
                    f"ENREACH_ENCRYPTION_KEY: key #{position + 1} is not a Fernet key (32 url-safe base64 bytes).",
                    hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                    id="accounts.E001",
                )
            )
    return errors
