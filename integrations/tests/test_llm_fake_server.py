"""The fake provider speaks the chat-completions wire format (checked with plain HTTP, not our client)."""

from __future__ import annotations

import json

import pytest
import requests

from devtools.llm import FakeLlm, text, tool_call


@pytest.fixture
def llm():
    with FakeLlm() as server:
        yield server


def post(llm: FakeLlm, body: dict, key: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {key or llm.api_key}"}
    return requests.post(f"{llm.url}/chat/completions", json=body, headers=headers, timeout=5, **kwargs)


def events(response: requests.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.text.split("\n\n") if line.startswith("data: ")]


USER = [{"role": "user", "content": "hi"}]


def test_plain_completion_has_the_chat_completion_shape(llm):
    llm.script(text("Hello."))
    body = post(llm, {"model": "m", "messages": USER}).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "m"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_stream_is_sse_chunks_with_deltas_usage_and_done(llm):
    llm.script(tool_call("lookup", {"a": 1}, call_id="call_1"))
    body = {"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    response = post(llm, body, stream=True)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    data = events(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    head = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert head == {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for c in chunks[2:]
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    )
    assert arguments == '{"a":1}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_rejects_a_wrong_key_like_openai(llm):
    response = post(llm, {"model": "m", "messages": USER}, key="sk-nope-1234")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_rejects_tool_messages_that_answer_no_tool_call(llm):
    messages = [*USER, {"role": "tool", "tool_call_id": "call_9", "content": "{}"}]
    response = post(llm, {"model": "m", "messages": messages})
    assert response.status_code == 400
    assert "must be a response to a preceeding message with 'tool_calls'" in response.json()["error"]["message"]


def test_rejects_unanswered_tool_calls(llm):
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": [call]}, *USER]
    assert post(llm, {"model": "m", "messages": messages}).status_code == 400


def test_records_every_request_and_echoes_when_nothing_is_scripted(llm):
    body = post(llm, {"model": "m", "messages": USER}).json()
    assert body["choices"][0]["message"]["content"] == "You said: hi"
    assert [r.messages for r in llm.requests] == [USER]


def test_callable_script_sees_the_request(llm):
    llm.script(lambda request: text(f"{len(request.messages)} messages, model {request.model}"))
    body = post(llm, {"model": "m2", "messages": USER * 3}).json()
    assert body["choices"][0]["message"]["content"] == "3 messages, model m2"
