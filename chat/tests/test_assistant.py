"""The assistant end to end: API -> services -> LlmClient -> a chat-completions server on loopback -> tools -> DB."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from chat import tools
from chat.models import ChatMessage
from chat.provider import chat_user_key_set
from chat.services import chat_message_stream, chat_session_create
from devtools.llm import RecordedRequest, error, malformed, text, tool_call


@pytest.fixture
def alice(make_user):
    return make_user(Role.MEMBER, username="alice")


@pytest.fixture
def client(alice) -> APIClient:
    client = APIClient()
    client.force_login(alice)
    return client


@pytest.fixture
def session(alice):
    return chat_session_create(owner=alice)


def post(client: APIClient, session, content: str, *, stream: bool = False):
    extra = {"HTTP_ACCEPT": "text/event-stream"} if stream else {}
    return client.post(f"/api/chat/sessions/{session.pk}/messages/", {"content": content}, format="json", **extra)


def sse(response) -> list[tuple[str, dict]]:
    body = b"".join(response.streaming_content).decode()
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def roles(session) -> list[str]:
    return list(session.messages.values_list("role", flat=True))


# --- plain --------------------------------------------------------------------------------------------------------


def test_plain_answer_is_stored_and_returned(client, session, llm):
    llm.script(text("Nothing runs there.", usage={"prompt_tokens": 120, "completion_tokens": 5, "total_tokens": 125}))
    question = "Which VMs run on esx-ams1-07, and since when have they been running on that particular host?"
    response = post(client, session, question)

    assert response.status_code == 201
    body = response.json()
    stored = ChatMessage.objects.get(pk=body["id"])
    assert body["role"] == "assistant" and body["content"] == "Nothing runs there." == stored.content
    assert body["provider"] == "127.0.0.1" and body["model"] == "gpt-test"
    assert body["usage"] == {"prompt_tokens": 120, "completion_tokens": 5, "total_tokens": 125}
    assert (stored.prompt_tokens, stored.completion_tokens, stored.total_tokens) == (120, 5, 125)
    assert roles(session) == ["user", "assistant"]

    [sent] = llm.requests
    assert sent.model == "gpt-test" and sent.temperature == 0.3 and not sent.stream
    assert sent.authorization == f"Bearer {llm.api_key}"
    assert [m["role"] for m in sent.messages] == ["system", "user"]
    assert sent.messages[1] == {"role": "user", "content": question}
    assert "search_inventory" in sent.messages[0]["content"]
    assert sent.tool_names == ["search_inventory", "count_inventory", "show_object", "data_quality"]

    session.refresh_from_db()
    assert session.title == question[:60]
    assert (session.provider, session.model) == ("127.0.0.1", "gpt-test")


def test_second_message_sends_the_history_and_keeps_the_title(client, session, llm):
    llm.script(text("First answer."), text("Second answer."))
    post(client, session, "First question")
    post(client, session, "Second question")
    sent = llm.requests[1].messages
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "First question"), ("assistant", "First answer."), ("user", "Second question")
    ]  # fmt: skip
    session.refresh_from_db()
    assert session.title == "First question"


def test_context_variables_reach_the_system_prompt(client, alice, llm):
    session = chat_session_create(owner=alice, context={"site": "FRA1", "team": "storage"})
    post(client, session, "hi")
    assert '{"site": "FRA1", "team": "storage"}' in llm.requests[0].messages[0]["content"]


def test_blank_message_is_400_and_nothing_is_sent(client, session, llm):
    response = post(client, session, "   ")
    assert response.status_code == 400 and "content" in response.json()
    assert llm.requests == [] and roles(session) == []


# --- streamed -----------------------------------------------------------------------------------------------------


def test_streamed_answer_arrives_token_by_token_and_is_stored_complete(client, session, llm):
    llm.script(text("Two hypervisors in FRA1 are active."))
    response = post(client, session, "Hypervisors in FRA1?", stream=True)

    assert response.status_code == 201
    assert response["Content-Type"] == "text/event-stream"
    events = sse(response)
    deltas = [data["content"] for kind, data in events if kind == "delta"]
    assert deltas == ["Two", " hypervisors", " in", " FRA1", " are", " active."]
    kind, final = events[-1]
    assert kind == "message" and final["content"] == "Two hypervisors in FRA1 are active."
    assert ChatMessage.objects.get(pk=final["id"]).content == "Two hypervisors in FRA1 are active."
    assert final["usage"]["total_tokens"] > 0
    assert roles(session) == ["user", "assistant"]
    assert llm.requests[0].stream is True


# --- tools --------------------------------------------------------------------------------------------------------


def _answer_from_tool_result(request: RecordedRequest):
    result = json.loads(request.messages[-1]["content"])
    return text(f"There are {result['total']} matching devices.")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_call_runs_on_the_latest_export_and_the_answer_uses_its_result(client, session, llm, export, stream):
    arguments = {"type": "device", "status": "Active", "site": "FRA1", "where": {"OOB IP": None}}
    llm.script(tool_call("count_inventory", arguments, call_id="call_count1"), _answer_from_tool_result)
    expected = tools.tool_run(name="count_inventory", arguments=json.dumps(arguments))
    total = json.loads(expected)["total"]
    assert total > 0

    response = post(client, session, "How many active devices in FRA1 have no OOB IP?", stream=stream)
    assert response.status_code == 201
    if stream:
        events = sse(response)
        assert (
            "tool",
            {"name": "count_inventory", "arguments": json.dumps(arguments, separators=(",", ":"))},
        ) in events
        final = events[-1][1]
    else:
        final = response.json()
    assert final["content"] == f"There are {total} matching devices."

    # Stored: the question, the assistant's tool call, the tool's result, the answer.
    user, calling, result, answer = session.messages.all()
    assert [m.role for m in (user, calling, result, answer)] == ["user", "assistant", "tool", "assistant"]
    assert calling.tool_calls == [
        {"id": "call_count1", "type": "function",
         "function": {"name": "count_inventory", "arguments": json.dumps(arguments, separators=(",", ":"))}}
    ]  # fmt: skip
    assert (result.tool_call_id, result.tool_name, result.content) == ("call_count1", "count_inventory", expected)
    assert answer.pk == final["id"]

    # Sent back to the provider: the call and its result, right after the question.
    first, second = llm.requests
    assert second.messages[:2] == first.messages
    assert second.messages[2] == {"role": "assistant", "content": "", "tool_calls": calling.tool_calls}
    assert second.messages[3] == {"role": "tool", "tool_call_id": "call_count1", "content": expected}
    assert f"export #{export.pk}" in first.messages[0]["content"]

    listed = client.get(f"/api/chat/sessions/{session.pk}/messages/").json()["results"]
    assert [m["role"] for m in listed] == ["user", "assistant", "tool", "assistant"]
    assert listed[2]["tool_call_id"] == "call_count1"


def test_tool_calls_are_resent_with_history_on_the_next_question(client, session, llm, export):
    llm.script(tool_call("show_object", {"name": "fra1-hv001"}), text("It is a Dell."), text("Yes."))
    post(client, session, "What is fra1-hv001?")
    post(client, session, "Sure?")
    roles_sent = [m["role"] for m in llm.requests[2].messages]
    assert roles_sent == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_tool_rounds_are_limited_then_the_model_must_answer(client, session, llm, export, settings):
    settings.CHAT_MAX_TOOL_ROUNDS = 2
    llm.script(tool_call("search_inventory", {"site": "FRA1"}), tool_call("search_inventory", {"site": "AMS1"}))
    response = post(client, session, "Everything, please")
    assert response.status_code == 201
    assert [bool(r.tools) for r in llm.requests] == [True, True, False]
    assert roles(session) == ["user", "assistant", "tool", "assistant", "tool", "assistant"]


# --- provider errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        (error(401), 502, "rejected the API key"),
        (error(429), 503, "rate limiting"),
        (error(500), 502, "failed (HTTP 500)"),
        (malformed(), 502, "malformed answer"),
        (text("too late", delay=3), 504, "did not answer within"),
    ],
    ids=["401", "429", "500", "malformed", "timeout"],
)
def test_provider_errors_give_a_readable_error_and_keep_the_user_message(
    client, session, llm, settings, stream, answer, status, message
):
    settings.CHAT_TIMEOUT = 0.5
    llm.script(answer)
    response = post(client, session, "Hello?", stream=stream)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert message in detail and "Your message was kept." in detail
    assert llm.api_key not in detail
    assert list(session.messages.values_list("role", "content")) == [("user", "Hello?")]


def test_retrying_an_unanswered_question_asks_it_again_without_storing_it_twice(client, session, llm):
    llm.script(error(429), text("Yes."), text("Still yes."))
    assert post(client, session, "Up?").status_code == 503
    assert post(client, session, "Up?").status_code == 201
    assert list(session.messages.values_list("role", "content")) == [("user", "Up?"), ("assistant", "Yes.")]
    assert [m["role"] for m in llm.requests[1].messages] == ["system", "user"]
    # Once answered, the same question again is a new question.
    assert post(client, session, "Up?").status_code == 201
    assert roles(session) == ["user", "assistant", "user", "assistant"]


def test_stream_failing_after_it_began_ends_with_an_error_event(client, session, llm, export):
    llm.script(tool_call("search_inventory", {"site": "FRA1"}), error(500))
    response = post(client, session, "FRA1?", stream=True)
    assert response.status_code == 201
    events = sse(response)
    assert events[0][0] == "tool"
    kind, data = events[-1]
    assert kind == "error" and data["status"] == 502 and "failed (HTTP 500)" in data["detail"]
    # The look-up had arrived: an interrupted answer keeps it and says why.
    assert roles(session) == ["user", "assistant", "tool", "assistant"]
    stored = session.messages.last()
    assert data["message"]["id"] == stored.pk and "failed (HTTP 500)" in stored.interrupted
    assert [lookup["tool"] for lookup in stored.grounding["lookups"]] == ["search_inventory"]


def test_stream_failing_mid_answer_keeps_the_tokens_that_arrived_and_says_so(client, session, llm):
    llm.script(text("Three servers run in FRA1 today.", fail_after=3))
    events = sse(post(client, session, "FRA1?", stream=True))
    assert [data["content"] for kind, data in events if kind == "delta"] == ["Three", " servers", " run"]
    kind, data = events[-1]
    assert kind == "error" and data["status"] == 502
    assert data["message"]["content"] == "Three servers run" and data["message"]["interrupted"]
    listed = client.get(f"/api/chat/sessions/{session.pk}/messages/").json()["results"]
    assert (listed[-1]["content"], listed[-1]["interrupted"]) == ("Three servers run", data["message"]["interrupted"])


def test_a_turn_closed_early_stores_what_was_sent_as_interrupted(session, llm):
    llm.script(text("one two three four five six seven eight", chunk_delay=0.01))
    events = chat_message_stream(session=session, content="Count")
    received = []  # three deltas (and the HTML of the Markdown so far), then the reader goes away (the stop button)
    while sum(event.kind == "delta" for event in received) < 3:
        received.append(next(events))
    events.close()  # what the streamed response does when the WSGI server sees the client disconnect
    assert [event.kind for event in received if event.kind != "html"] == ["delta", "delta", "delta"]
    assert received[1].kind == "html" and received[1].data == {"content_html": "<p>one</p>\n"}
    assert roles(session) == ["user", "assistant"]
    stopped = session.messages.last()
    assert stopped.content == "one two three" and "stopped" in stopped.interrupted


def test_interrupted_answers_are_resent_with_what_arrived_and_empty_ones_are_not(client, session, llm):
    ChatMessage.objects.create(session=session, role="user", content="First")
    ChatMessage.objects.create(session=session, role="assistant", content="Partly", interrupted="stopped")
    ChatMessage.objects.create(session=session, role="user", content="Second")
    ChatMessage.objects.create(session=session, role="assistant", content="", interrupted="stopped")
    llm.script(text("Fine."))
    assert post(client, session, "Third").status_code == 201
    sent = [(m["role"], m["content"]) for m in llm.requests[0].messages[1:]]
    assert sent == [("user", "First"), ("assistant", "Partly"), ("user", "Second"), ("user", "Third")]


def test_a_half_finished_tool_call_is_not_resent(client, session, llm, export):
    # The first turn fails after the tool call was stored but before its result: history must stay valid.
    ChatMessage.objects.create(session=session, role="user", content="Earlier")
    call = {"id": "call_lost", "type": "function", "function": {"name": "search_inventory", "arguments": "{}"}}
    ChatMessage.objects.create(session=session, role="assistant", content="", tool_calls=[call])
    llm.script(text("Fine."))
    assert post(client, session, "Again").status_code == 201  # the fake answers 400 to unanswered tool calls
    assert [m["role"] for m in llm.requests[0].messages] == ["system", "user", "user"]


# --- configuration ------------------------------------------------------------------------------------------------


def test_without_provider_posting_is_503_and_history_still_works(client, session, no_provider):
    ChatMessage.objects.create(session=session, role="user", content="old question")
    response = post(client, session, "Hello?")
    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]
    streamed = post(client, session, "Hello?", stream=True)
    assert streamed.status_code == 503 and streamed["Content-Type"] == "application/json"
    listed = client.get(f"/api/chat/sessions/{session.pk}/messages/")
    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert client.get("/api/chat/sessions/").status_code == 200


def test_users_own_key_comes_first(client, session, alice, llm):
    chat_user_key_set(user=alice, value="sk-alice-own-key-1234")
    llm.api_key = "sk-alice-own-key-1234"
    post(client, session, "hi")
    assert llm.requests[0].authorization == "Bearer sk-alice-own-key-1234"


def test_global_key_comes_before_the_environment(client, session, llm):
    from accounts.global_keys import global_key_set

    global_key_set(name="chat", value="sk-global-chat-key-5678")
    llm.api_key = "sk-global-chat-key-5678"
    response = post(client, session, "hi")
    assert response.status_code == 201
    assert llm.requests[0].authorization == "Bearer sk-global-chat-key-5678"


def test_keyless_local_server_needs_only_the_base_url(client, session, llm, settings):
    settings.CHAT_API_KEY = ""
    llm.api_key = ""  # like Ollama: any key or none
    assert post(client, session, "hi").status_code == 201
