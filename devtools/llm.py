"""An OpenAI-compatible chat-completions server on loopback: the test provider (and a keyless demo provider).

It speaks the wire protocol of ``POST /v1/chat/completions``: a JSON ``chat.completion`` or, with
``"stream": true``, server-sent events of ``chat.completion.chunk`` objects (``choices[].delta``) ending with
``data: [DONE]``, a usage-only chunk when ``stream_options.include_usage`` is set, tool calls (an assistant message
with ``tool_calls``; fragments by ``index`` when streamed), OpenAI's error bodies
(``{"error": {"message", "type", "param", "code"}}``) and its checks on the bearer key and on ``tool`` messages
answering a preceding ``tool_calls``.

Tests script it per request and read back what our code sent::

    with FakeLlm() as llm:
        llm.script(tool_call("search_inventory", {"site": "FRA1"}), text("Two servers."))
        ...
        assert llm.requests[1].messages[-1]["role"] == "tool"

Faults: ``error(401|429|500)``, ``malformed()`` (a 200 whose JSON is cut), ``text(..., delay=5)`` (slow: a client
with a shorter timeout gives up), ``text(..., chunk_delay=0.1)`` (slow tokens), ``text(..., fail_after=3)`` (a
stream that fails after three tokens with an error event). With an empty script it echoes the
last user message; ``handler = demo`` (``--demo``, what ``make run`` starts) looks up what a question names and
answers from the look-up. Standard library only::

    python -m devtools.llm --port 8766 --demo     # then CHAT_API_BASE_URL=http://127.0.0.1:8766/v1
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

DEFAULT_KEY = "sk-fake-0123456789abcdefghijklmnopqrstuvwxyz"
COMPLETIONS_PATH = "/v1/chat/completions"
_TOKENS = re.compile(r"\s*\S+|\s+")


@dataclass
class Scripted:
    """One scripted answer. Build it with ``text``, ``tool_call``, ``tool_calls``, ``error`` or ``malformed``."""

    kind: str  # "text", "tool_calls", "error", "malformed"
    content: str = ""
    calls: list[dict[str, str]] = field(default_factory=list)  # {"id", "name", "arguments" (JSON text)}
    status: int = 200
    error: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    finish_reason: str | None = None
    fail_after: int | None = None  # streamed: send this many tokens, then an error event


def text(
    content: str,
    *,
    usage: dict[str, int] | None = None,
    delay: float = 0.0,
    chunk_delay: float = 0.0,
    finish_reason: str = "stop",
    fail_after: int | None = None,
) -> Scripted:
    """Answer ``content`` (streamed word by word when the request streams). ``fail_after=N``: a streamed answer
    sends N tokens, then an error event (``data: {"error": {...}}``, as OpenAI does when a stream fails)."""
    return Scripted(
        "text",
        content=content,
        usage=usage,
        delay=delay,
        chunk_delay=chunk_delay,
        finish_reason=finish_reason,
        fail_after=fail_after,
    )


def tool_call(
    name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None, delay: float = 0.0
) -> Scripted:
    """Ask the client to call one function."""
    return tool_calls([(name, arguments)], ids=[call_id] if call_id else None, delay=delay)


def tool_calls(
    calls: list[tuple[str, dict[str, Any] | str]], *, ids: list[str] | None = None, delay: float = 0.0
) -> Scripted:
    """Ask the client to call several functions at once (parallel tool calls)."""
    made = []
    for i, (name, arguments) in enumerate(calls):
        call_id = ids[i] if ids else f"call_{next(_call_ids):06d}"
        made.append({"id": call_id, "name": name, "arguments": _arguments_text(arguments)})
    return Scripted("tool_calls", calls=made, delay=delay, finish_reason="tool_calls")


def error(status: int, message: str | None = None, *, type: str | None = None, code: str | None = None) -> Scripted:
    """Fail with OpenAI's error body. 401 without a message gives OpenAI's "Incorrect API key" text."""
    defaults = {
        400: ("Invalid request.", "invalid_request_error", None),
        401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        403: ("You are not allowed to use this model.", "invalid_request_error", None),
        404: ("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
        429: ("Rate limit reached for requests. Please try again in 20s.", "requests", "rate_limit_exceeded"),
        500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    }
    text_default, type_default, code_default = defaults.get(status, ("Error.", "server_error", None))
    body = {
        "message": message or text_default,
        "type": type or type_default,
        "param": None,
        "code": code or code_default,
    }
    return Scripted("error", status=status, error=body)


def malformed(*, delay: float = 0.0) -> Scripted:
    """A 200 ``application/json`` (or event stream) whose JSON is cut in half."""
    return Scripted("malformed", delay=delay)


_call_ids = itertools.count(1)
_completion_ids = itertools.count(1)


def _arguments_text(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, separators=(",", ":"))


def estimate_tokens(value: Any) -> int:
    """What the fake reports as token counts: about four characters per token."""
    raw = value if isinstance(value, str) else json.dumps(value)
    return max(1, len(raw) // 4)


class RecordedRequest(NamedTuple):
    """One request as the server received it (``body`` is the parsed JSON, or None when it was not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]

    @property
    def model(self) -> str | None:
        return (self.body or {}).get("model")

    @property
    def temperature(self) -> float | None:
        return (self.body or {}).get("temperature")

    @property
    def stream(self) -> bool:
        return bool((self.body or {}).get("stream"))


Handler = Callable[[RecordedRequest], Scripted]


def echo(request: RecordedRequest) -> Scripted:
    """The default answer: repeat the last user message."""
    users = [m for m in request.messages if m.get("role") == "user"]
    return text(f"You said: {users[-1].get('content', '')}" if users else "Hello.")


# A word that names something in a CMDB: letters and digits together (FRA1, ams1-srv001, vm-db-02), or an address.
_NAMED = re.compile(r"\b(?:\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?|[A-Za-z][\w.-]*\d[\w.-]*|\d[\w.-]*[A-Za-z][\w.-]*)\b")
_SITE = re.compile(r"^[A-Za-z]{3}\d$")
_ADDRESS = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?$")


def demo(request: RecordedRequest) -> Scripted:
    """The demo provider of ``make run``: a real look-up when the question names something, then an answer from it.

    A question naming a site (FRA1), a device or VM (ams1-srv001) or an address makes it call ``search_inventory``
    with that site, name or IP, as a model would; the tool's result then becomes a short Markdown answer with a
    table of the first matches. Anything else gets a hint. It reads only what the app sends: no CMDB of its own.
    """
    messages = request.messages
    last = messages[-1] if messages else {}
    tools = request.tool_names
    if last.get("role") == "tool":
        return text(_demo_answer(last.get("content") or ""))
    question = str(last.get("content") or "") if last.get("role") == "user" else ""
    named = _NAMED.findall(question)
    if named and "search_inventory" in tools:
        word = named[0]
        arguments: dict[str, Any]
        if _ADDRESS.match(word):
            arguments = {"ip": word}
        elif _SITE.match(word):
            arguments = {"site": word}
        else:
            arguments = {"name": word}
        if re.search(r"\b(vms?|virtual machines?)\b", question, re.IGNORECASE):
            arguments["type"] = "vm"
        elif re.search(r"\b(devices?|servers?|switch(es)?)\b", question, re.IGNORECASE):
            arguments["type"] = "device"
        return tool_call("search_inventory", arguments)
    return text(
        "I am the demo assistant of `make run`: name a site, a device or a VM and I look it up in the CMDB, "
        "e.g. *Which VMs run in FRA1?*"
    )


def _demo_answer(result: str) -> str:
    try:
        data = json.loads(result)
    except ValueError:
        return "The look-up failed."
    if not isinstance(data, dict) or data.get("error"):
        return f"The look-up failed: {data.get('error') if isinstance(data, dict) else result}"
    rows = [row for row in data.get("results") or [] if isinstance(row, dict)]
    total = data.get("total", len(rows))
    if not rows:
        return "Nothing in the CMDB matches that."
    columns = [c for c in ("Name", "Status", "Site", "Cluster", "Tenant") if any(row.get(c) for row in rows)]
    lines = [f"I found **{total}** {'match' if total == 1 else 'matches'} in the CMDB:", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows[:10]:
        lines.append("| " + " | ".join(str(row.get(c) or "").replace("|", "/") for c in columns) + " |")
    if total > 10:
        lines.append("")
        lines.append(f"…and {total - 10} more: the look-up below lists what it returned.")
    return "\n".join(lines)


class FakeLlm:
    """An OpenAI-compatible chat-completions provider on loopback.

    ``script(...)`` queues answers used one per request, in order; when the queue is empty ``handler`` answers
    (``echo`` by default). ``requests`` records every request, failed ones included. ``api_key=""`` accepts any
    key or none (like a local Ollama).
    """

    def __init__(
        self, *, api_key: str = DEFAULT_KEY, model: str = "fake-gpt", host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.api_key = api_key
        self.model = model
        self.host = host
        self.port = port
        self.handler: Handler = echo
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Scripted | Handler] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is None:
            server = _Server((self.host, self.port), _Handler)
            server.fake = self
            self.port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-llm", daemon=True
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeLlm:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to configure (``…/v1``), as for OpenAI."""
        return f"http://{self.host}:{self.port}/v1"

    # -- scripting ---------------------------------------------------------------------------------------------

    def script(self, *answers: Scripted | Handler) -> None:
        """Queue answers (or callables taking the request and returning one) for the next requests."""
        with self._lock:
            self._queue.extend(answers)

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        with self._lock:
            return len(self._queue)

    def _next(self, request: RecordedRequest) -> Scripted:
        with self._lock:
            answer = self._queue.popleft() if self._queue else self.handler
        return answer if isinstance(answer, Scripted) else answer(request)

    def _wait(self, seconds: float) -> bool:
        """Sleep, waking early when the server stops; False when stopping."""
        return not self._stopping.wait(seconds) if seconds > 0 else True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeLlm


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            # The client gave up (its timeout) while we were slow on purpose.
            self.close_connection = True

    # -- routing -------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": fake.model, "object": "model", "owned_by": "fake"}]})
        else:
            self._error(404, f"Unknown request URL: GET {self.path}.", "invalid_request_error", "unknown_url")

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {key.lower(): value for key, value in self.headers.items()}
        request = RecordedRequest("POST", self.path, headers, body if isinstance(body, dict) else None)
        with fake._lock:
            fake.requests.append(request)

        if self.path.split("?")[0].rstrip("/") != COMPLETIONS_PATH:
            return self._error(404, f"Unknown request URL: POST {self.path}.", "invalid_request_error", "unknown_url")
        if fake.api_key and headers.get("authorization") != f"Bearer {fake.api_key}":
            sent = (headers.get("authorization") or "").removeprefix("Bearer ")
            if not sent:
                message = "You didn't provide an API key."
            else:
                # OpenAI quotes a masked part of the wrong key: our client must not pass it on.
                message = f"Incorrect API key provided: {sent[:3]}***{sent[-4:]}."
            return self._error(401, message, "invalid_request_error", "invalid_api_key")
        if request.body is None:
            return self._error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        problem = _validate(request.body)
        if problem:
            return self._error(400, problem, "invalid_request_error")

        answer = fake._next(request)
        if not fake._wait(answer.delay):
            return
        if answer.kind == "error":
            return self._json(answer.status, {"error": answer.error})
        if request.stream:
            self._stream(request, answer)
        else:
            self._complete(request, answer)

    # -- answers -------------------------------------------------------------------------------------------------

    def _complete(self, request: RecordedRequest, answer: Scripted) -> None:
        if answer.kind == "malformed":
            return self._raw(200, "application/json", b'{"id": "chatcmpl-broken", "object": "chat.comp')
        message: dict[str, Any] = {"role": "assistant", "content": answer.content or None, "refusal": None}
        if answer.calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in answer.calls
            ]
        payload = {
            **self._envelope(request, "chat.completion"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
            "usage": self._usage(request, answer),
        }
        self._json(200, payload)

    def _stream(self, request: RecordedRequest, answer: Scripted) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        envelope = self._envelope(request, "chat.completion.chunk")
        include_usage = bool(((request.body or {}).get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                **envelope,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                data["usage"] = None
            return data

        if answer.kind == "malformed":
            self._event(chunk({"role": "assistant", "content": ""}))
            self._chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"cont\n\n')
            return self._chunk(b"")
        self._event(chunk({"role": "assistant", "content": "" if not answer.calls else None}))
        for sent, piece in enumerate(_TOKENS.findall(answer.content)):
            if answer.fail_after is not None and sent >= answer.fail_after:
                failure = error(500, "The server had an error while generating the response.").error
                self._event({"error": failure})
                return self._chunk(b"")
            if not fake._wait(answer.chunk_delay):
                return
            self._event(chunk({"content": piece}))
        for index, call in enumerate(answer.calls):
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}  # fmt: skip
            self._event(chunk({"tool_calls": [head]}))
            arguments = call["arguments"]
            for start in range(0, len(arguments), 8):
                part = {"index": index, "function": {"arguments": arguments[start : start + 8]}}
                self._event(chunk({"tool_calls": [part]}))
        self._event(chunk({}, answer.finish_reason))
        if include_usage:
            self._event({**envelope, "choices": [], "usage": self._usage(request, answer)})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _envelope(self, request: RecordedRequest, kind: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{next(_completion_ids):06d}",
            "object": kind,
            "created": int(time.time()),
            "model": request.model or self.server.fake.model,
            "system_fingerprint": "fp_fake",
        }

    @staticmethod
    def _usage(request: RecordedRequest, answer: Scripted) -> dict[str, int]:
        if answer.usage is not None:
            return answer.usage
        prompt = estimate_tokens(request.messages)
        completion = estimate_tokens(answer.content or [c["arguments"] for c in answer.calls])
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    # -- writing -------------------------------------------------------------------------------------------------

    def _event(self, data: dict[str, Any]) -> None:
        self._chunk(b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._raw(status, "application/json", json.dumps(payload).encode())

    def _raw(self, status: int, content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _error(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": type_, "param": None, "code": code}})


def _validate(body: dict[str, Any]) -> str:
    """The request checks OpenAI makes that our code could get wrong; the problem, or "" when fine."""
    if not body.get("model"):
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array."
    open_calls: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return f"Invalid value for 'messages[{i}].role'."
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    f"'tool_calls' (messages[{i}])."
                )
            open_calls.discard(message["tool_call_id"])
            continue
        if open_calls:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(open_calls)}"
            )
        if role == "assistant":
            open_calls = {call.get("id") for call in message.get("tool_calls") or []}
    if open_calls:
        return f"The following tool_call_ids did not have response messages: {sorted(open_calls)}"
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            return f"Invalid value for 'tools[{i}]': expected a function with a name."
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description="An OpenAI-compatible chat-completions server that echoes.")
    parser.add_argument(
        "--demo", action="store_true", help="look up what a question names (search_inventory), then answer from it"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--api-key", default="", help="require this bearer key (default: accept any)")
    args = parser.parse_args()
    llm = FakeLlm(api_key=args.api_key, host=args.host, port=args.port)
    if args.demo:
        llm.handler = demo
    llm.start()
    print(f"Fake OpenAI-compatible provider at {llm.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    llm.stop()


if __name__ == "__main__":
    main()
