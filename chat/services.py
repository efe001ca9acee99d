"""Chat: sessions and the assistant's turns (provider calls, tool calls, storage), and the chat page's state.

The provider and users' keys are ``chat.provider``, what the provider is sent ``chat.history``, retention
``chat.retention``.

A turn: the user's message is stored, the history (system prompt + the newest turns that fit
``CHAT_HISTORY_TOKENS``) goes to the provider with the CMDB tools; tool calls are run and stored (the assistant
message carrying ``tool_calls``, then one ``tool`` message per result) and sent back, until the provider answers
with text, which is stored and returned. The API's JSON and streaming doors both end here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import grounding, selectors, tools
from chat.errors import ChatError
from chat.history import as_provider_message, chat_history_for_provider
from chat.markdown import markdown_html
from chat.models import DEFAULT_TITLE, ChatMessage, ChatSession
from chat.provider import ChatProvider, chat_provider_problem, chat_provider_resolve, provider_error
from exports.selectors import export_run_last_success
from integrations.exceptions import LlmError
from integrations.llm.client import LlmReply, provider_name

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
MAX_CONTENT_CHARS = 20_000
MAX_CONTEXT_CHARS = 4_000
NO_ANSWER = "I could not finish looking this up. Please ask a narrower question."
STOPPED = "The reply was stopped before it was complete (the stop button, or the connection dropped)."


@dataclass(frozen=True)
class ChatEvent:
    """What a streamed turn yields: ``delta`` (a piece of text), ``tool`` (a tool being called) or ``message``
    (the stored final assistant message, in ``message``)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    message: ChatMessage | None = None


# --- Sessions ----------------------------------------------------------------------------------------------------


def _clean_title(title: str) -> str:
    cleaned = " ".join(str(title).split())
    if len(cleaned) > 200:
        raise ChatError("The title is longer than 200 characters.")
    return cleaned


def _clean_context(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise ChatError("The context must be a JSON object of variables.")
    if len(json.dumps(context)) > MAX_CONTEXT_CHARS:
        raise ChatError(f"The context is larger than {MAX_CONTEXT_CHARS} characters of JSON.")
    return context


def chat_session_create(*, owner: Any, title: str = "", context: dict[str, Any] | None = None) -> ChatSession:
    """Start a session for ``owner``. Without a title it is "New chat" until the first message names it."""
    return ChatSession.objects.create(
        owner=owner,
        title=_clean_title(title) or DEFAULT_TITLE,
        context=_clean_context(context),
        provider=provider_name(settings.CHAT_API_BASE_URL),
        model=settings.CHAT_MODEL,
    )


def chat_session_update(
    *, session: ChatSession, title: str | None = None, context: dict[str, Any] | None = None
) -> ChatSession:
    """Rename a session and/or replace its context variables."""
    if title is not None:
        cleaned = _clean_title(title)
        if not cleaned:
            raise ChatError("The title may not be blank.")
        session.title = cleaned
    if context is not None:
        session.context = _clean_context(context)
    session.save()
    return session


def chat_session_delete(*, session: ChatSession) -> None:
    """Delete a session and its messages."""
    session.delete()


# --- Turns -------------------------------------------------------------------------------------------------------


def _store_user_message(session: ChatSession, content: str, provider: ChatProvider) -> ChatMessage:
    content = str(content).strip()
    if not content:
        raise ChatError("The message is empty.")
    if len(content) > MAX_CONTENT_CHARS:
        raise ChatError(f"The message is longer than {MAX_CONTENT_CHARS} characters.")
    with transaction.atomic():
        last = selectors.chat_message_list(session=session).last()
        if last is not None and last.role == ChatMessage.Role.USER and last.content == content:
            # A retry of the question the provider failed to answer: ask it again rather than store it twice.
            message = last
        else:
            message = ChatMessage.objects.create(session=session, role=ChatMessage.Role.USER, content=content)
        if session.title == DEFAULT_TITLE and not session.messages.filter(role="user").exclude(pk=message.pk).exists():
            session.title = " ".join(content.split())[:TITLE_CHARS]
        session.provider, session.model = provider.provider, provider.model
        session.save()
    return message


def _store_reply(
    session: ChatSession,
    provider: ChatProvider,
    reply: LlmReply,
    *,
    final: bool,
    grounding: dict[str, Any] | None = None,
) -> ChatMessage:
    usage = reply.usage
    content = reply.content
    if final and not content.strip():
        content = NO_ANSWER
    return ChatMessage.objects.create(
        session=session,
        role=ChatMessage.Role.ASSISTANT,
        content=content,
        tool_calls=[] if final else [call.as_dict() for call in reply.tool_calls],
        provider=provider.provider,
        model=reply.model or provider.model,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        grounding=grounding or {},
    )


def _store_interrupted(
    session: ChatSession, provider: ChatProvider, content: str, grounding: dict[str, Any], reason: str
) -> ChatMessage:
    """What arrived of an answer that was cut short, with why, so history shows exactly that."""
    message = ChatMessage.objects.create(
        session=session,
        role=ChatMessage.Role.ASSISTANT,
        content=content,
        provider=provider.provider,
        model=provider.model,
        grounding=grounding,
        interrupted=reason[:500],
    )
    ChatSession.objects.filter(pk=session.pk).update(updated=timezone.now())
    return message


# While an answer streams, the Markdown so far is rendered and sanitised here (chat.markdown, as for the stored
# answer) at most this often and sent as an ``html`` event, so the page shows formatting as it arrives.
HTML_EVERY_SECONDS = 0.2


def _turn(session: ChatSession, provider: ChatProvider, *, stream: bool) -> Generator[ChatEvent, None, None]:
    """Provider calls and tool calls until a text answer; yields events, raises ``ChatProviderError``.

    Every look-up is recorded (``chat.grounding``) and stored with the answer. A turn cut short after something
    arrived (text or look-ups) stores an interrupted answer with what arrived: on a provider error (attached to the
    raised error as ``message``) and when the consumer stops reading (the browser's stop button, a dropped
    connection: the generator is closed).
    """
    messages = chat_history_for_provider(session=session)
    rounds = max(0, settings.CHAT_MAX_TOOL_ROUNDS)
    grounding_data: dict[str, Any] = {"export": grounding.grounding_export(), "lookups": []}
    parts: list[str] = []
    pending: Iterator[str | LlmReply] | None = None
    answered = False
    try:
        for round_ in range(rounds + 1):
            # The last round offers no tools, so the model has to answer with what it found.
            offered = tools.TOOL_DEFINITIONS if round_ < rounds else None
            reply: LlmReply | None = None
            parts = []
            if stream:
                pending = provider.client.stream(messages=messages, tools=offered)
                rendered_at = 0.0
                for item in pending:
                    if isinstance(item, str):
                        parts.append(item)
                        yield ChatEvent("delta", {"content": item})
                        if time.monotonic() - rendered_at >= HTML_EVERY_SECONDS:
                            rendered_at = time.monotonic()
                            yield ChatEvent("html", {"content_html": markdown_html("".join(parts))})
                    else:
                        reply = item
                pending = None
            else:
                reply = provider.client.complete(messages=messages, tools=offered)
            assert reply is not None  # the client's stream always ends with the reply
            if not (reply.tool_calls and offered):
                message = _store_reply(session, provider, reply, final=True, grounding=grounding_data)
                ChatSession.objects.filter(pk=session.pk).update(updated=timezone.now())
                answered = True
                yield ChatEvent("message", message=message)
                return
            calling = _store_reply(session, provider, reply, final=False)
            messages.append(as_provider_message(calling))
            parts = []
            for call in reply.tool_calls:
                yield ChatEvent("tool", {"name": call.name, "arguments": call.arguments})
                result = tools.tool_run(name=call.name, arguments=call.arguments)
                stored = ChatMessage.objects.create(
                    session=session,
                    role=ChatMessage.Role.TOOL,
                    content=result,
                    tool_call_id=call.id,
                    tool_name=call.name,
                    provider=provider.provider,
                    model=provider.model,
                )
                messages.append(as_provider_message(stored))
                record = grounding.lookup_record(tool=call.name, arguments=call.arguments, result=result)
                grounding_data["lookups"].append(record)
                yield ChatEvent("lookup", record)
    except LlmError as exc:
        logger.warning("chat provider failed for session %s: %s", session.pk, exc)
        error = provider_error(exc)
        if parts or grounding_data["lookups"]:
            error.message = _store_interrupted(session, provider, "".join(parts), grounding_data, str(exc))
        raise error from None
    except GeneratorExit:
        if not answered:
            logger.info("chat reply of session %s stopped by the client", session.pk)
            _store_interrupted(session, provider, "".join(parts), grounding_data, STOPPED)
        raise
    finally:
        close = getattr(pending, "close", None)
        if close is not None:
            close()
        provider.client.close()


def chat_message_post(*, session: ChatSession, content: str) -> ChatMessage:
    """Store the user's message, run the assistant's turn and return the stored answer.

    Raises ``ChatNotConfigured`` (nothing stored) or ``ChatProviderError`` (the user's message stays stored).
    """
    provider = chat_provider_resolve(user=session.owner)
    _store_user_message(session, content, provider)
    final: ChatMessage | None = None
    for event in _turn(session, provider, stream=False):
        if event.kind == "message":
            final = event.message
    assert final is not None
    return final


def chat_message_stream(*, session: ChatSession, content: str) -> Generator[ChatEvent, None, None]:
    """Like ``chat_message_post``, streaming: the checks and the user's message happen now, the turn as the
    returned iterator is consumed (text deltas, tool calls and their look-ups, then the stored answer). Closing the
    iterator early stores what had arrived as an interrupted answer."""
    provider = chat_provider_resolve(user=session.owner)
    _store_user_message(session, content, provider)
    return _turn(session, provider, stream=True)


# --- The chat page -----------------------------------------------------------------------------------------------


def chat_page_state(*, user: Any) -> dict[str, Any]:
    """What the chat page tells ``user`` before they ask: whether the assistant can answer (and what an admin must
    set when it cannot), the export run the answers would rest on (None before the first successful export), and
    the user's own key, masked."""
    run = export_run_last_success()
    key = selectors.chat_user_key_get(user=user)
    return {
        "provider_problem": chat_provider_problem(user=user),
        "export": run,
        "key_hint": key.masked if key else "",
    }
