"""The chat app's errors, each carrying the HTTP status the API answers with."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chat.models import ChatMessage


class ChatError(Exception):
    """A chat request cannot be served; ``status_code`` is the HTTP status the API answers with."""

    status_code = 400


class ChatNotConfigured(ChatError):
    """No chat provider is configured (no key and no base URL)."""

    status_code = 503


class ChatProviderError(ChatError):
    """The provider failed; the message says why, readably, without secrets."""

    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code
        # The interrupted answer stored with what had arrived before the failure, if anything had.
        self.message: ChatMessage | None = None
