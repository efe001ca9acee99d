"""Chat: sessions, the assistant's turns (provider calls, tool calls, storage), users' keys and retention.

A turn: the user's message is stored, the history (system prompt + the newest turns that fit
``CHAT_HISTORY_TOKENS``) goes to the provider with the CMDB tools; tool calls are run and stored (the assistant
message carrying ``tool_calls``, then one ``tool`` message per result) and sent back, until the provider answers
with text, which is stored and returned. The API's JSON and streaming doors both end here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import grounding, selectors, tools
from chat.models import DEFAULT_TITLE, ChatMessage, ChatSession, ChatUserKey
from exports.selectors import export_run_last_success
from integrations.exceptions import LlmError, LlmRateLimited, LlmTimeout
from integrations.llm.client import LlmClient, LlmReply, provider_name

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
MAX_CONTENT_CHARS = 20_000
MAX_CONTEXT_CHARS = 4_000
# Per-message overhead of the chat format (role, separators), as OpenAI's own token counting adds.
MESSAGE_OVERHEAD_TOKENS = 4
RETENTION_SCHEDULE_NAME = "Chat retention"
NO_ANSWER = "I could not finish looking this up. Please ask a narrower question."
STOPPED = "The reply was stopped before it was complete (the stop button, or the connection dropped)."


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


@dataclass
class ChatProvider:
    """The provider a user's turn goes to: a ready client plus the labels stored on messages."""

    client: LlmClient
    provider: str
    model: str


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


# --- Provider ----------------------------------------------------------------------------------------------------


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


def _provider_error(exc: LlmError) -> ChatProviderError:
    # 504 when the provider was too slow, 503 when it asks us to slow down, 502 for anything else it got wrong.
    if isinstance(exc, LlmTimeout):
        status = 504
    elif isinstance(exc, LlmRateLimited):
        status = 503
    else:
        status = 502
    return ChatProviderError(f"{exc} Your message was kept.", status)


# --- History -----------------------------------------------------------------------------------------------------


def approx_tokens(text: str) -> int:
    """Tokens estimated as characters / 4 (rounded up): close enough for English and JSON with GPT tokenizers,
    and needs no tokenizer for whatever model the provider runs."""
    return (len(text) + 3) // 4


def _message_tokens(message: dict[str, Any]) -> int:
    tokens = MESSAGE_OVERHEAD_TOKENS + approx_tokens(message.get("content") or "")
    if message.get("tool_calls"):
        tokens += approx_tokens(json.dumps(message["tool_calls"]))
    return tokens


def _as_provider_message(message: ChatMessage) -> dict[str, Any]:
    if message.role == ChatMessage.Role.TOOL:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    result: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        result["tool_calls"] = message.tool_calls
    return result


def _turns(messages: Sequence[ChatMessage]) -> list[list[dict[str, Any]]]:
    """Stored messages as provider messages grouped in turns (a user message and what followed it).

    Tool calls whose results are not all stored (a turn that failed half-way) are left out with their results:
    providers reject an assistant ``tool_calls`` message that is not answered by a tool message per call.
    """
    answered = {m.tool_call_id for m in messages if m.role == ChatMessage.Role.TOOL}
    complete_calls: set[str] = set()
    turns: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.role == ChatMessage.Role.SYSTEM:
            continue
        if message.role == ChatMessage.Role.ASSISTANT and not message.content and not message.tool_calls:
            continue  # an answer interrupted before any text arrived: nothing to resend
        if message.role == ChatMessage.Role.USER or not turns:
            turns.append([])
        if message.tool_calls:
            ids = {call.get("id") for call in message.tool_calls}
            if not ids <= answered:
                if message.content:
                    turns[-1].append({"role": "assistant", "content": message.content})
                continue
            complete_calls |= ids
        if message.role == ChatMessage.Role.TOOL and message.tool_call_id not in complete_calls:
            continue
        turns[-1].append(_as_provider_message(message))
    return turns


def chat_history_for_provider(*, session: ChatSession, budget: int | None = None) -> list[dict[str, Any]]:
    """The messages sent to the provider: the system prompt, then the newest whole turns that fit ``budget``
    approximate tokens (``CHAT_HISTORY_TOKENS``). The system prompt and the latest turn are always sent."""
    budget = settings.CHAT_HISTORY_TOKENS if budget is None else budget
    system = {"role": "system", "content": chat_system_prompt(session=session)}
    used = _message_tokens(system)
    kept: list[list[dict[str, Any]]] = []
    for turn in reversed(_turns(list(selectors.chat_message_list(session=session)))):
        cost = sum(_message_tokens(m) for m in turn)
        if kept and used + cost > budget:
            break
        kept.append(turn)
        used += cost
    return [system, *(m for turn in reversed(kept) for m in turn)]


def chat_system_prompt(*, session: ChatSession) -> str:
    """Who the assistant is, what data it has (which export) and the session's context variables."""
    lines = [
        "You are the Enreach tools assistant. You answer questions about the IT inventory (devices and virtual "
        "machines exported from NetBox into the CMDB) with the tools search_inventory, count_inventory and "
        "show_object. Use the tools for every fact; never invent names, counts or addresses. When the tools find "
        "nothing, say so. Answer briefly; use a list or a table for several objects.",
    ]
    run = export_run_last_success()
    if run is None:
        lines.append("There is no successful export yet: the CMDB is empty; tell the user to run an export.")
    else:
        finished = run.finished.strftime("%Y-%m-%d %H:%M UTC") if run.finished else "unknown"
        lines.append(
            f"Data: the CMDB of export #{run.pk} finished {finished}, with {run.devices or 0} devices and "
            f"{run.vms or 0} virtual machines. Columns include Name, Status, Tenant, Site, Cluster, Role, Platform, "
            "IP Address, IPv4 Address, IPv6 Address, OOB IP, Tags, Device (the host of a VM), Serial number, "
            "Rack, Contacts, DTAP state, Backup, Server Group, Description."
        )
    if session.context:
        lines.append(f"Context variables the user set for this conversation: {json.dumps(session.context)}")
    lines.append(f"Today is {timezone.now():%Y-%m-%d}.")
    return "\n".join(lines)


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
                for item in pending:
                    if isinstance(item, str):
                        parts.append(item)
                        yield ChatEvent("delta", {"content": item})
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
            messages.append(_as_provider_message(calling))
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
                messages.append(_as_provider_message(stored))
                record = grounding.lookup_record(tool=call.name, arguments=call.arguments, result=result)
                grounding_data["lookups"].append(record)
                yield ChatEvent("lookup", record)
    except LlmError as exc:
        logger.warning("chat provider failed for session %s: %s", session.pk, exc)
        error = _provider_error(exc)
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


# --- Users' keys -------------------------------------------------------------------------------------------------


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


# --- Retention ---------------------------------------------------------------------------------------------------


def chat_sessions_purge(*, days: int | None = None) -> int:
    """Delete sessions without activity for ``days`` (``CHAT_RETENTION_DAYS``; 0 keeps all); returns how many."""
    days = settings.CHAT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    old = ChatSession.objects.filter(updated__lt=timezone.now() - timedelta(days=days))
    count = old.count()
    old.delete()
    if count:
        logger.info("chat retention: deleted %d sessions idle for more than %d days", count, days)
    return count


def chat_retention_schedule_sync() -> str:
    """Create or remove the daily retention schedule to match ``CHAT_RETENTION_DAYS``. Safe to call repeatedly."""
    from django_q.models import Schedule

    if settings.CHAT_RETENTION_DAYS <= 0:
        deleted, _ = Schedule.objects.filter(name=RETENTION_SCHEDULE_NAME).delete()
        return "removed" if deleted else "none"
    _, created = Schedule.objects.update_or_create(
        name=RETENTION_SCHEDULE_NAME,
        defaults={"func": "chat.tasks.chat_retention_task", "schedule_type": Schedule.DAILY, "repeats": -1},
    )
    return "created" if created else "updated"


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
