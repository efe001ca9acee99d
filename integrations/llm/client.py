"""LlmClient: the one way this project talks to a chat-completions provider.

Any OpenAI-compatible endpoint works (OpenAI, Azure OpenAI's v1 endpoint, OpenRouter, Ollama, vLLM): the client is
the official ``openai`` package pointed at a configurable base URL. Replies become the plain dataclasses below, and
every failure leaves this module as an ``integrations.exceptions.LlmError`` whose message names the provider's
address, never the key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from integrations.exceptions import (
    LlmAuthError,
    LlmBadResponse,
    LlmError,
    LlmRateLimited,
    LlmTimeout,
    LlmUnavailable,
)

if TYPE_CHECKING:
    import openai

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Keyless local servers (Ollama, vLLM without --api-key) ignore the key, but the openai client insists on one.
NO_KEY = "no-key"
MAX_ERROR_CHARS = 300

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LlmToolCall:
    """A function the model asks us to call; ``arguments`` is the JSON text exactly as the model wrote it."""

    id: str
    name: str
    arguments: str

    def as_dict(self) -> dict[str, Any]:
        """The call as it goes back to the provider inside the assistant message's ``tool_calls``."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class LlmUsage:
    """Token counts as the provider reported them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class LlmReply:
    """One complete answer: text, or tool calls (or, rarely, both)."""

    content: str
    tool_calls: tuple[LlmToolCall, ...]
    usage: LlmUsage | None
    model: str
    finish_reason: str


def provider_name(base_url: str) -> str:
    """A short label for the provider behind ``base_url`` (its host name), stored on sessions and messages."""
    return urlsplit(base_url or DEFAULT_BASE_URL).hostname or "unknown"


class LlmClient:
    """A chat-completions client for one provider, model and temperature.

    ``max_retries`` is the openai client's own retry of connection errors, 408, 409, 429 and 5xx with backoff.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str = "",
        base_url: str = "",
        temperature: float | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.temperature = temperature
        self.timeout = timeout
        self.provider = provider_name(self.base_url)
        import openai  # on first use: the chat page and commands that never ask the model skip its 0.8 s import

        self._client = openai.OpenAI(
            api_key=api_key or NO_KEY, base_url=self.base_url, timeout=timeout, max_retries=max_retries
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LlmClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _arguments(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if self.temperature is not None:
            arguments["temperature"] = self.temperature
        if tools:
            arguments["tools"] = list(tools)
        return arguments

    def complete(self, *, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None) -> LlmReply:
        """Ask for one complete answer."""
        import openai

        try:
            completion = self._client.chat.completions.create(**self._arguments(messages, tools))
            return self._reply(completion)
        except openai.APIError as exc:
            raise self._translate(exc) from None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # A body that is not JSON, or JSON that is not a chat completion.
            raise self._malformed(exc) from None

    def stream(
        self, *, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None
    ) -> Iterator[str | LlmReply]:
        """Ask for a streamed answer: yields text pieces as they arrive, then the assembled ``LlmReply``.

        Tool-call fragments are assembled by their ``index``; usage comes from the final chunk
        (``stream_options.include_usage``).
        """
        import openai

        arguments = self._arguments(messages, tools)
        try:
            stream = self._client.chat.completions.create(
                **arguments, stream=True, stream_options={"include_usage": True}
            )
            with stream:
                parts: list[str] = []
                calls: dict[int, dict[str, str]] = {}
                usage: LlmUsage | None = None
                model = ""
                finish_reason = ""
                for chunk in stream:
                    model = getattr(chunk, "model", None) or model
                    if getattr(chunk, "usage", None):
                        usage = _usage(chunk.usage)
                    for choice in getattr(chunk, "choices", None) or []:
                        delta = choice.delta
                        if delta is not None and delta.content:
                            parts.append(delta.content)
                            yield delta.content
                        for fragment in (delta.tool_calls if delta is not None else None) or []:
                            slot = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                            slot["id"] = fragment.id or slot["id"]
                            if fragment.function is not None:
                                slot["name"] += fragment.function.name or ""
                                slot["arguments"] += fragment.function.arguments or ""
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
        except openai.APIError as exc:
            raise self._translate(exc) from None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise self._malformed(exc) from None
        if not parts and not calls and not finish_reason:
            raise LlmBadResponse(f"The chat provider at {self.provider} ended the stream without an answer.")
        tool_calls = tuple(
            LlmToolCall(id=slot["id"] or f"call_{index}", name=slot["name"], arguments=slot["arguments"] or "{}")
            for index, slot in sorted(calls.items())
        )
        yield LlmReply(
            content="".join(parts),
            tool_calls=tool_calls,
            usage=usage,
            model=model or self.model,
            finish_reason=finish_reason,
        )

    # -- translation --------------------------------------------------------------------------------------------

    def _reply(self, completion: Any) -> LlmReply:
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise LlmBadResponse(f"The chat provider at {self.provider} answered without any choice.")
        message = choices[0].message
        if message is None:
            raise LlmBadResponse(f"The chat provider at {self.provider} answered a choice without a message.")
        tool_calls = tuple(
            LlmToolCall(id=call.id or f"call_{i}", name=call.function.name, arguments=call.function.arguments or "{}")
            for i, call in enumerate(message.tool_calls or [])
        )
        return LlmReply(
            content=message.content or "",
            tool_calls=tool_calls,
            usage=_usage(completion.usage) if getattr(completion, "usage", None) else None,
            model=getattr(completion, "model", None) or self.model,
            finish_reason=choices[0].finish_reason or "",
        )

    def _malformed(self, exc: Exception) -> LlmError:
        what = "not valid JSON" if isinstance(exc, json.JSONDecodeError) else "not a chat completion"
        return LlmBadResponse(f"The chat provider at {self.provider} sent a malformed answer ({what}).")

    def _translate(self, exc: openai.APIError) -> LlmError:
        import openai

        where = self.provider
        if isinstance(exc, openai.APITimeoutError):
            return LlmTimeout(f"The chat provider at {where} did not answer within {self.timeout:g} s.")
        if isinstance(exc, openai.APIConnectionError):
            return LlmUnavailable(f"The chat provider at {where} could not be reached.")
        status = getattr(exc, "status_code", None)
        # The provider's own words help ("model not found", "quota exceeded"), except on 401/403 where they may
        # quote part of the key.
        detail = _provider_message(exc)
        suffix = f": {detail}" if detail else "."
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return LlmAuthError(f"The chat provider at {where} rejected the API key (HTTP {status}).")
        if isinstance(exc, openai.RateLimitError):
            return LlmRateLimited(f"The chat provider at {where} is rate limiting requests (HTTP 429){suffix}")
        if isinstance(exc, openai.APIStatusError) and status is not None and status >= 500:
            return LlmUnavailable(f"The chat provider at {where} failed (HTTP {status}){suffix}")
        if isinstance(exc, openai.APIStatusError):
            return LlmBadResponse(f"The chat provider at {where} refused the request (HTTP {status}){suffix}")
        # APIResponseValidationError, or an error event inside a stream.
        return LlmBadResponse(f"The chat provider at {where} sent an unusable answer{suffix}")


def _usage(usage: Any) -> LlmUsage:
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion
    return LlmUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _provider_message(exc: openai.APIError) -> str:
    body = exc.body
    message: Any = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
    elif isinstance(body, str):
        message = body
    if not message:
        return ""
    text = message if isinstance(message, str) else json.dumps(message)
    text = " ".join(text.split())
    return text[:MAX_ERROR_CHARS] + ("…" if len(text) > MAX_ERROR_CHARS else "")
