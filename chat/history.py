"""What the provider is sent of a session: the system prompt (the assistant's role, the export it answers from,
the session's context variables) and the newest whole turns that fit ``CHAT_HISTORY_TOKENS``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from chat import selectors
from chat.models import ChatMessage, ChatSession
from exports.selectors import export_run_last_success

# Per-message overhead of the chat format (role, separators), as OpenAI's own token counting adds.
MESSAGE_OVERHEAD_TOKENS = 4


def approx_tokens(text: str) -> int:
    """Tokens estimated as characters / 4 (rounded up): close enough for English and JSON with GPT tokenizers,
    and needs no tokenizer for whatever model the provider runs."""
    return (len(text) + 3) // 4


def _message_tokens(message: dict[str, Any]) -> int:
    tokens = MESSAGE_OVERHEAD_TOKENS + approx_tokens(message.get("content") or "")
    if message.get("tool_calls"):
        tokens += approx_tokens(json.dumps(message["tool_calls"]))
    return tokens


def as_provider_message(message: ChatMessage) -> dict[str, Any]:
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
        turns[-1].append(as_provider_message(message))
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
