"""Global keys: named secrets (provider keys and URLs) stored encrypted, set, deleted and re-encrypted after a
change of ``ENREACH_SECRET_KEY``, each recorded in the audit trail without its value."""

from __future__ import annotations

import re

from django.db import transaction

from accounts import keys
from accounts.audit import AuditContext, audit_record
from accounts.errors import AccountError
from accounts.models import GlobalKey

KEY_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def global_key_name_check(name: str) -> None:
    """Raise ``AccountError`` unless ``name`` is a valid key name."""
    if not KEY_NAME_RE.match(name or ""):
        raise AccountError(
            "Key names are 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit.", field="name"
        )


@transaction.atomic
def global_key_set(
    *,
    name: str,
    value: str | None = None,
    label: str | None = None,
    url: str | None = None,
    by: AuditContext | None = None,
) -> GlobalKey:
    """Create or change a global key. ``value=None`` keeps the stored value (to change only the label or URL)."""
    global_key_name_check(name)
    key = GlobalKey.objects.select_for_update().filter(name=name).first()
    if key is None and not value:
        raise AccountError("A value is required for a new key.", field="value")
    if value is not None and not value:
        raise AccountError("The value cannot be empty; delete the key instead.", field="value")
    created = key is None
    key = key or GlobalKey(name=name)
    changed: list[str] = []
    if value is not None:
        try:
            key.value_encrypted = keys.encrypt(value)
        except keys.KeyUnavailable as exc:
            raise AccountError(str(exc), field="value") from None
        # Short values get no hint: four characters of an eight-character secret is half of it.
        key.hint = value[-4:] if len(value) >= 12 else ""
        changed.append("value")
    if label is not None and label != key.label:
        key.label = label
        changed.append("label")
    if url is not None and url != key.url:
        key.url = url
        changed.append("url")
    key.updated_by = by.user if by else None
    key.save()
    audit_record(
        by=by, action="key.create" if created else "key.update", target=f"key:{name}", detail={"fields": changed}
    )
    keys.key_change_notify(name=name, action="set")
    return key


@transaction.atomic
def global_key_delete(*, name: str, by: AuditContext | None = None) -> None:
    """Delete a global key: integrations fall back to the environment."""
    deleted, _ = GlobalKey.objects.filter(name=name).delete()
    if not deleted:
        raise AccountError(f"No global key named {name!r}.", field="name")
    audit_record(by=by, action="key.delete", target=f"key:{name}")
    keys.key_change_notify(name=name, action="delete")


@transaction.atomic
def global_keys_rotate(*, old_keys: list[str], by: AuditContext | None = None) -> int:
    """Re-encrypt every global key with the current encryption key; values may be under ``old_keys``.

    All or nothing: one value that no key decrypts aborts the rotation.
    """
    count = 0
    for key in GlobalKey.objects.select_for_update().order_by("pk"):
        try:
            key.value_encrypted = keys.rotate(key.value_encrypted, old_keys=old_keys)
        except keys.KeyUnavailable as exc:
            raise AccountError(f"{key.name}: {exc}") from None
        # update(), not save(): re-encrypting is not a change of the value, "updated" keeps its meaning.
        GlobalKey.objects.filter(pk=key.pk).update(value_encrypted=key.value_encrypted)
        count += 1
    for rotator in keys.key_rotators():  # other apps' encrypted values (notification webhooks...)
        try:
            count += rotator(old_keys)
        except keys.KeyUnavailable as exc:
            raise AccountError(str(exc)) from None
    audit_record(by=by, action="key.rotate", detail={"keys": count})
    return count
