"""LlmClient against an OpenAI-compatible server on loopback: requests sent, replies parsed, errors translated."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.llm import FakeLlm, error, malformed, text, tool_call, tool_calls
from integrations.exceptions import LlmAuthError, LlmBadResponse, LlmRateLimited, LlmTimeout, LlmUnavailable
from integrations.llm.client import LlmClient, LlmReply, LlmToolCall, LlmUsage, provider_name

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with FakeLlm() as server:
        yield server


@pytest.fixture
def client(llm: FakeLlm) -> Iterator[LlmClient]:
    with LlmClient(model="gpt-x", api_key=llm.api_key, base_url=llm.url, temperature=0.4, timeout=0.5,
                   max_retries=0) as made:  # fmt: skip
        yield made


def streamed(client: LlmClient, **kwargs) -> tuple[list[str], LlmReply]:
    items = list(client.stream(messages=MESSAGES, **kwargs))
    *pieces, reply = items
    assert isinstance(reply, LlmReply) and all(isinstance(p, str) for p in pieces)
    return pieces, reply


def test_complete_sends_model_messages_temperature_and_key(llm, client):
    llm.script(text("Hi there.", usage={"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}))
    reply = client.complete(messages=MESSAGES, tools=TOOLS)
    assert reply == LlmReply(
        content="Hi there.", tool_calls=(), usage=LlmUsage(11, 3, 14), model="gpt-x", finish_reason="stop"
    )
    [sent] = llm.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.authorization == f"Bearer {llm.api_key}"
    assert sent.body == {"model": "gpt-x", "messages": MESSAGES, "temperature": 0.4, "tools": TOOLS}


def test_complete_without_temperature_or_tools_omits_them(llm):
    with LlmClient(model="m", api_key=llm.api_key, base_url=llm.url, max_retries=0) as client:
        client.complete(messages=MESSAGES)
    assert set(llm.requests[0].body) == {"model", "messages"}


def test_complete_returns_tool_calls(llm, client):
    llm.script(tool_calls([("lookup", {"site": "FRA1"}), ("lookup", '{"site": "AMS1"}')], ids=["call_a", "call_b"]))
    reply = client.complete(messages=MESSAGES, tools=TOOLS)
    assert reply.tool_calls == (
        LlmToolCall(id="call_a", name="lookup", arguments='{"site":"FRA1"}'),
        LlmToolCall(id="call_b", name="lookup", arguments='{"site": "AMS1"}'),
    )
    assert reply.finish_reason == "tool_calls" and reply.content == ""


def test_stream_yields_text_pieces_then_the_assembled_reply_with_usage(llm, client):
    llm.script(text("Three servers run there."))
    pieces, reply = streamed(client)
    assert pieces == ["Three", " servers", " run", " there."]
    assert reply.content == "Three servers run there." and reply.finish_reason == "stop"
    assert (
        reply.usage is not None
        and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    )
    sent = llm.requests[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_stream_assembles_tool_call_fragments(llm, client):
    arguments = {"site": "FRA1", "status": "Active", "where": {"OOB IP": None}}
    llm.script(tool_call("lookup", arguments, call_id="call_xyz"))
    pieces, reply = streamed(client, tools=TOOLS)
    assert pieces == []
    [call] = reply.tool_calls
    assert call.id == "call_xyz" and call.name == "lookup"
    assert call.arguments == '{"site":"FRA1","status":"Active","where":{"OOB IP":null}}'


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("answer", "exception", "message"),
    [
        (error(401), LlmAuthError, "rejected the API key (HTTP 401)"),
        (error(403), LlmAuthError, "rejected the API key (HTTP 403)"),
        (error(429), LlmRateLimited, "rate limiting requests (HTTP 429): Rate limit reached"),
        (error(500), LlmUnavailable, "failed (HTTP 500)"),
        (error(404, "The model `gpt-x` does not exist"), LlmBadResponse, "refused the request (HTTP 404): The model"),
        (malformed(), LlmBadResponse, "malformed answer (not valid JSON)"),
        (text("late", delay=3), LlmTimeout, "did not answer within 0.5 s"),
    ],
    ids=["401", "403", "429", "500", "404", "malformed", "timeout"],
)
def test_failures_become_integration_errors(llm, client, streaming, answer, exception, message):
    llm.script(answer)
    with pytest.raises(exception) as caught:
        if streaming:
            list(client.stream(messages=MESSAGES))
        else:
            client.complete(messages=MESSAGES)
    assert message in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_wrong_key_error_does_not_repeat_any_part_of_the_key(llm):
    client = LlmClient(model="m", api_key="sk-wrong-secret-9876", base_url=llm.url, max_retries=0)
    with client, pytest.raises(LlmAuthError) as caught:
        client.complete(messages=MESSAGES)
    assert "9876" not in str(caught.value) and "sk-" not in str(caught.value)


def test_unreachable_provider_is_unavailable():
    with FakeLlm() as server:
        url = server.url
    client = LlmClient(model="m", api_key="k", base_url=url, timeout=1.0, max_retries=0)
    with client, pytest.raises(LlmUnavailable, match="could not be reached"):
        client.complete(messages=MESSAGES)


def test_retries_server_errors_when_asked(llm):
    llm.script(error(500), text("Recovered."))
    with LlmClient(model="m", api_key=llm.api_key, base_url=llm.url, max_retries=1) as client:
        assert client.complete(messages=MESSAGES).content == "Recovered."
    assert len(llm.requests) == 2


def test_provider_name_is_the_host_of_the_base_url():
    assert provider_name("") == "api.openai.com"
    assert provider_name("http://localhost:11434/v1") == "localhost"
