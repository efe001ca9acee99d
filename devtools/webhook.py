"""A webhook receiver on loopback that checks Enreach's signature, as a careful receiver would.

Usage::

    with WebhookReceiver(secret="s3cret-value") as receiver:
        receiver.answer(500, times=2)          # the next two requests get a 500, then 200 again
        ...                                    # point a webhook channel at receiver.url
        receiver.wait_for(3)
        [r.delivery for r in receiver.received]

Every request is recorded (path, headers, body, its JSON, whether the signature and the timestamp check out). A
request whose ``X-Enreach-Signature`` is not ``sha256=<hex HMAC-SHA256 of the body with the secret>`` is answered
401, like a receiver that refuses forged calls; scripted answers (``answer``) come before that check.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

TIMESTAMP_TOLERANCE = 300


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    timestamp_ok: bool
    status: int

    @property
    def delivery(self) -> str:
        return self.headers.get("x-enreach-delivery", "")

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Answer:
    status: int
    times: int
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """A threaded HTTP server on loopback recording webhook calls and verifying their HMAC-SHA256 signature."""

    def __init__(self, secret: str, *, host: str = "127.0.0.1", port: int = 0, path: str = "/hook") -> None:
        self.secret = secret
        self.host = host
        self.port = port
        self.path = path
        self.received: list[Received] = []
        self.delay = 0.0  # seconds each answer takes, like a slow receiver
        self._answers: list[_Answer] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("WebhookReceiver is not started")
        return f"http://{self.host}:{self._server.server_address[1]}{self.path}"

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers, payload = receiver._handle(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def answer(
        self, status: int, *, times: int = 1, retry_after: str | None = None, body: dict[str, Any] | None = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and a ``Retry-After`` when given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._answers.append(_Answer(status, times, headers, json.dumps(body or {"status": status}).encode()))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} webhook calls arrived, {count} expected")
                self._arrived.wait(left)
            return list(self.received)

    def verify(self, headers: dict[str, str], body: bytes) -> tuple[bool, bool]:
        """(signature right, timestamp fresh) for a request's headers and raw body."""
        lower = {name.lower(): value for name, value in headers.items()}
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        signature_ok = hmac.compare_digest(lower.get("x-enreach-signature", ""), expected)
        timestamp = lower.get("x-enreach-timestamp", "")
        timestamp_ok = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= TIMESTAMP_TOLERANCE
        return signature_ok, timestamp_ok

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        signature_ok, timestamp_ok = self.verify(headers, body)
        if self.delay:
            time.sleep(self.delay)
        with self._arrived:
            scripted = None
            if self._answers:
                scripted = self._answers[0]
                scripted.times -= 1
                if scripted.times <= 0:
                    self._answers.pop(0)
            if scripted is not None:
                status, extra, payload = scripted.status, scripted.headers, scripted.body
            elif not (signature_ok and timestamp_ok):
                status, extra, payload = 401, {}, b'{"detail": "bad signature"}'
            else:
                status, extra, payload = 200, {}, b'{"ok": true}'
            self.received.append(
                Received(path, {k.lower(): v for k, v in headers.items()}, body, signature_ok, timestamp_ok, status)
            )
            self._arrived.notify_all()
        return status, extra, payload


if __name__ == "__main__":  # pragma: no cover - a manual tool: print what arrives
    import argparse

    parser = argparse.ArgumentParser(description="A loopback webhook receiver that checks Enreach's signature.")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port", type=int, default=8765)
    options = parser.parse_args()
    with WebhookReceiver(options.secret, port=options.port) as running:
        print(running.url, flush=True)
        seen = 0
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                calls = running.received
                for call in calls[seen:]:
                    print(call.status, call.delivery, "signature ok" if call.signature_ok else "BAD SIGNATURE")
                    print(call.body.decode(errors="replace"), flush=True)
                seen = len(calls)
                time.sleep(0.5)
