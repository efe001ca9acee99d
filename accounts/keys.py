"""Global keys: encryption at rest, resolution for integrations, and change hooks.

Resolution order (``secret_get``): the global key stored in the database (set in the admin or through
``PUT /api/admin/keys/{name}/``), then the environment value the caller passes as the default (``NETBOX_TOKEN``...).

Encryption: Fernet (AES-128-CBC + HMAC-SHA256) with ``ENREACH_ENCRYPTION_KEY``, a comma-separated list of Fernet
keys: the first encrypts, all of them decrypt (so a new key can be put first while old values are still readable;
``manage.py keys_rotate`` then re-encrypts everything with it). With DEBUG on and no key configured a development
key is derived from ``SECRET_KEY``; with DEBUG off and no key, reading or writing a stored key refuses to run.

Change hooks: integrations that cache clients or tokens register a callback with ``key_change_hook_register``;
it is called with the key's name after the change is
committed, in the process that made the change. Other processes (workers) must not cache a secret for long.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

logger = logging.getLogger(__name__)

_hooks: list[Callable[[str], None]] = []
_rotators: list[Callable[[list[str]], int]] = []


class KeyUnavailable(ImproperlyConfigured):
    """Stored keys cannot be read or written: no encryption key configured, or the value does not decrypt."""


def key_change_hook_register(hook: Callable[[str], None]) -> Callable[[str], None]:
    """Call ``hook(name)`` after any global key changes (usable as a decorator). Registering twice is a no-op."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def key_rotator_register(rotator: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Have ``manage.py keys_rotate`` re-encrypt more values kept with these keys (other apps' secrets, such as
    notification webhooks): ``rotator(old_keys)`` runs in the rotation's transaction and returns how many values
    it re-encrypted. Registering twice is a no-op."""
    if rotator not in _rotators:
        _rotators.append(rotator)
    return rotator


def key_rotators() -> list[Callable[[list[str]], int]]:
    return list(_rotators)


def key_change_notify(*, name: str, action: str) -> None:
    """Run the hooks once the current transaction commits."""

    def notify() -> None:
        for hook in list(_hooks):
            try:
                hook(name)
            except Exception:  # a broken cache hook must not undo or hide the key change
                logger.exception("global key change hook %r failed for %s", hook, name)

    transaction.on_commit(notify)


def development_key(secret_key: str) -> str:
    """The Fernet key derived from ``SECRET_KEY`` when DEBUG is on and ``ENREACH_ENCRYPTION_KEY`` is unset."""
    digest = hashlib.sha256(b"enreach-global-keys:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def configured_keys() -> list[str]:
    """The Fernet keys in use, the encrypting one first."""
    keys = [k.strip() for k in str(settings.ENREACH_ENCRYPTION_KEY or "").split(",") if k.strip()]
    if keys:
        return keys
    if settings.ENREACH_ENCRYPTION_DEV_FALLBACK:  # DEBUG at start-up
        return [development_key(settings.SECRET_KEY)]
    raise KeyUnavailable(
        "ENREACH_ENCRYPTION_KEY must be set to read or store global keys when DEBUG is off (generate one with: "
        "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
    )


def _fernet(extra_keys: list[str] | None = None) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in [*configured_keys(), *(extra_keys or [])]])
    except ValueError as exc:
        raise KeyUnavailable(f"ENREACH_ENCRYPTION_KEY is not a valid Fernet key: {exc}") from None


def encrypt(value: str) -> str:
    """Encrypt with the current key."""
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str, *, extra_keys: list[str] | None = None) -> str:
    """Decrypt with any configured key (and ``extra_keys``). Raises ``KeyUnavailable`` when none fits."""
    try:
        return _fernet(extra_keys).decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyUnavailable(
            "A stored global key cannot be decrypted with ENREACH_ENCRYPTION_KEY: it was encrypted with another "
            "key (run manage.py keys_rotate --old-key=<previous key>)."
        ) from None


def rotate(token: str, *, old_keys: list[str]) -> str:
    """Re-encrypt a value with the current key, reading it with the current or one of ``old_keys``."""
    try:
        return _fernet(old_keys).rotate(token.encode()).decode()
    except InvalidToken:
        raise KeyUnavailable("A stored global key matches neither the current nor the old keys.") from None


def secret_get(name: str, default: str = "") -> str:
    """The secret called ``name``: the global key in the database when set, else ``default`` (the environment).

    Called on every use rather than cached, so a key changed in the admin is picked up by every process.
    """
    from accounts.models import GlobalKey

    stored = GlobalKey.objects.filter(name=name).values_list("value_encrypted", flat=True).first()
    return decrypt(stored) if stored else default


def secret_url_get(name: str, default: str = "") -> str:
    """The service address stored beside the global key ``name`` when set, else ``default`` (the environment)."""
    from accounts.models import GlobalKey

    return GlobalKey.objects.filter(name=name).values_list("url", flat=True).first() or default
