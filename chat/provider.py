"""The provider a user's chat turns go to: which key and base URL (the user's own key, the global key, the
settings), a ready ``LlmClient``, provider errors as API statuses, and the users' own keys (stored encrypted)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat import selectors
from chat.errors import ChatError, ChatNotConfigured, ChatProviderError
from chat.models import ChatUserKey
from integrations.exceptions import LlmError, LlmRateLimited, LlmTimeout
from integrations.llm.client import LlmClient


@dataclass
class ChatProvider:
    """The provider a user's turn goes to: a ready client plus the labels stored on messages."""

    client: LlmClient
    provider: str
    model: str


def _provider_settings(user: Any) -> tuple[str, str]:
    """The key and base URL for ``user``'s turns; raises ``ChatNotConfigured`` when there is neither."""
    from accounts.keys import KeyUnavailable, secret_get, secret_url_get

    try:
        key = chat_user_key_value(user=user) or secret_get("chat", settings.CHAT_API_KEY)
        base_url = secret_url_get("chat", settings.CHAT_API_BASE_URL)
    except KeyUnavailable as exc:
        raise ChatNotConfigured(f"The chat provider key cannot be read: {exc}") from None
    if not key and not base_url:
        raise ChatNotConfigured(
            "The chat assistant is not configured: an administrator must set CHAT_API_KEY (or the global key "
            '"chat", or CHAT_API_BASE_URL for a local server), or you can set your own key. History still works.'
        )
    return key, base_url


def chat_provider_problem(*, user: Any) -> str:
    """Why ``user`` cannot chat now (no provider configured, an unreadable key), or "" when they can."""
    try:
        _provider_settings(user)
    except ChatNotConfigured as exc:
        return str(exc)
    return ""


def chat_provider_resolve(*, user: Any) -> ChatProvider:
    """The provider for ``user``'s turns. Key: the user's own, then the global key ``chat``, then ``CHAT_API_KEY``;
    base URL: the global key's URL, then ``CHAT_API_BASE_URL``. Raises ``ChatNotConfigured`` when neither a key nor
    a base URL (a keyless local server) is set."""
    key, base_url = _provider_settings(user)
    client = LlmClient(
        model=settings.CHAT_MODEL,
        api_key=key,
        base_url=base_url,
        temperature=settings.CHAT_TEMPERATURE,
        timeout=settings.CHAT_TIMEOUT,
        max_retries=settings.CHAT_MAX_RETRIES,
    )
    return ChatProvider(client=client, provider=client.provider, model=settings.CHAT_MODEL)


def provider_error(exc: LlmError) -> ChatProviderError:
    # 504 when the provider was too slow, 503 when it asks us to slow down, 502 for anything else it got wrong.
    if isinstance(exc, LlmTimeout):
        status = 504
    elif isinstance(exc, LlmRateLimited):
        status = 503
    else:
        status = 502
    return ChatProviderError(f"{exc} Your message was kept.", status)


def chat_user_key_set(*, user: Any, value: str) -> ChatUserKey:
    """Store (encrypted) the user's own provider key, replacing any previous one."""
    from accounts.keys import KeyUnavailable, encrypt

    value = str(value).strip()
    if not value:
        raise ChatError("The key may not be blank.")
    if len(value) > 500:
        raise ChatError("The key is longer than 500 characters.")
    try:
        encrypted = encrypt(value)
    except KeyUnavailable as exc:
        raise ChatNotConfigured(str(exc)) from None
    hint = value[-4:] if len(value) >= 12 else ""
    key, _ = ChatUserKey.objects.update_or_create(user=user, defaults={"value_encrypted": encrypted, "hint": hint})
    return key


def chat_user_key_delete(*, user: Any) -> bool:
    """Forget the user's own key; True when there was one."""
    deleted, _ = ChatUserKey.objects.filter(user=user).delete()
    return bool(deleted)


def chat_user_key_value(*, user: Any) -> str:
    """The user's own key in clear, or ""."""
    from accounts.keys import decrypt

    stored = selectors.chat_user_key_get(user=user)
    return decrypt(stored.value_encrypted) if stored else ""
