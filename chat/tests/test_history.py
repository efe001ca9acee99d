"""The history sent to the provider: trimmed to a token budget, oldest turns first, the system prompt kept."""

from __future__ import annotations

import pytest

from accounts.roles import Role
from chat.history import approx_tokens, chat_history_for_provider
from chat.models import ChatMessage
from chat.services import chat_session_create


@pytest.fixture
def session(make_user):
    return chat_session_create(owner=make_user(Role.MEMBER))


def add_turn(session, n: int, size: int = 400) -> None:
    ChatMessage.objects.create(session=session, role="user", content=f"q{n} " + "x" * size)
    ChatMessage.objects.create(session=session, role="assistant", content=f"a{n} " + "y" * size)


def test_approx_tokens_is_characters_over_four_rounded_up():
    assert (approx_tokens(""), approx_tokens("abcd"), approx_tokens("abcde")) == (0, 1, 2)


def test_everything_fits_in_a_large_budget(session):
    for n in range(3):
        add_turn(session, n)
    history = chat_history_for_provider(session=session, budget=100_000)
    assert [m["role"] for m in history] == ["system"] + ["user", "assistant"] * 3


def test_oldest_turns_are_dropped_first_and_the_system_prompt_is_kept(session):
    for n in range(10):
        add_turn(session, n)  # each turn: about 2 * (101 + 4) = 210 tokens
    system_tokens = approx_tokens(chat_history_for_provider(session=session, budget=0)[0]["content"]) + 4
    history = chat_history_for_provider(session=session, budget=system_tokens + 3 * 212)
    assert history[0]["role"] == "system"
    assert [m["content"][:2] for m in history[1:]] == ["q7", "a7", "q8", "a8", "q9", "a9"]


def test_the_latest_turn_is_sent_even_when_it_alone_exceeds_the_budget(session):
    add_turn(session, 0)
    ChatMessage.objects.create(session=session, role="user", content="q1 " + "z" * 10_000)
    history = chat_history_for_provider(session=session, budget=50)
    assert [m["role"] for m in history] == ["system", "user"]
    assert history[1]["content"].startswith("q1")


def test_a_turn_with_tool_calls_is_kept_or_dropped_whole(session):
    call = {"id": "call_1", "type": "function", "function": {"name": "search_inventory", "arguments": "{}"}}
    ChatMessage.objects.create(session=session, role="user", content="old " + "x" * 2000)
    ChatMessage.objects.create(session=session, role="assistant", content="", tool_calls=[call])
    ChatMessage.objects.create(session=session, role="tool", tool_call_id="call_1", content='{"total": 0}')
    ChatMessage.objects.create(session=session, role="assistant", content="None.")
    ChatMessage.objects.create(session=session, role="user", content="new")
    full = chat_history_for_provider(session=session, budget=100_000)
    assert [m["role"] for m in full] == ["system", "user", "assistant", "tool", "assistant", "user"]
    trimmed = chat_history_for_provider(session=session, budget=len(full[0]["content"]) // 4 + 20)
    assert [m["role"] for m in trimmed] == ["system", "user"]


def test_trimming_applies_to_what_the_provider_receives(session, llm, settings, client_for):
    for n in range(6):
        add_turn(session, n, size=4000)  # about 2,000 tokens per turn
    settings.CHAT_HISTORY_TOKENS = 5000
    client = client_for(Role.MEMBER)
    client.force_login(session.owner)
    response = client.post(f"/api/chat/sessions/{session.pk}/messages/", {"content": "latest"}, format="json")
    assert response.status_code == 201
    sent = llm.requests[0].messages
    assert [m["content"][:2] for m in sent[1:]] == ["q4", "a4", "q5", "a5", "la"]
    assert sum(approx_tokens(m["content"]) + 4 for m in sent) <= 5000
    assert session.messages.count() == 6 * 2 + 2  # trimming never deletes stored history
