"""Structured logging: request ids, user, job context and secret redaction on every line.

``LOG_FORMAT=json`` prints one JSON object per line; otherwise readable text. Context travels in contextvars, so
it follows a request through the view and a run through its steps (and into threads that copy the context).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
user_var: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="")
run_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("run_id", default=None)
step_var: contextvars.ContextVar[str] = contextvars.ContextVar("step", default="")

REDACTED = "[REDACTED]"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Secrets that look like secrets: auth headers, key=value pairs, token formats we know (NetBox v1/v2, ours,
# OpenAI-style keys, Fernet keys).
_PATTERNS = [
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:token|bearer|basic)\s+[^\s\"',;]+"),
    re.compile(r"(?i)\b((?:token|bearer)\s+)[A-Za-z0-9_.\-+/=]{8,}"),
    re.compile(
        r"(?i)([\"']?(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',;&]+"
    ),
    re.compile(r"()\bnbt_[A-Za-z0-9]+\.[A-Za-z0-9]+"),
    re.compile(r"()\bent_[A-Za-z0-9_\-]{16,}"),
    re.compile(r"()\bsk-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"()\b[0-9a-f]{40}\b"),
]


def _secret_values() -> list[str]:
    """Configured secrets redacted wherever they appear verbatim."""
    try:
        from django.conf import settings

        names = (
            "SECRET_KEY", "NETBOX_TOKEN", "METRICS_TOKEN", "ENREACH_ADMIN_PASSWORD", "ENREACH_ENCRYPTION_KEY",
            "CHAT_API_KEY", "ATLASSIAN_API_TOKEN", "BACKUP_PASSWORD", "AUTH_LDAP_BIND_PASSWORD", "OIDC_CLIENT_SECRET",
            "EMAIL_HOST_PASSWORD",
        )  # fmt: skip
        return [value for name in names if len(value := str(getattr(settings, name, "") or "")) >= 8]
    except Exception:  # settings not ready (very early start-up): patterns still apply
        return []


def redact(text: str) -> str:
    """``text`` with every secret we can recognise replaced by ``[REDACTED]``."""
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


class ContextFilter(logging.Filter):
    """Adds request_id, user, run_id and step to every record and redacts secrets from its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.user = user_var.get()
        record.run_id = run_id_var.get()
        record.step = step_var.get()
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "user", "run_id", "step"):
            value = getattr(record, key, None)
            if value not in (None, ""):
                data[key] = value
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines with the context that is set."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(
            f"{key}={value}"
            for key in ("request_id", "user", "run_id", "step")
            if (value := getattr(record, key, None)) not in (None, "")
        )
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {record.getMessage()}"
        if context:
            line += f" [{context}]"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Set run_id/step (or request_id/user) for the duration of a block."""
    variables: dict[str, contextvars.ContextVar[Any]] = {
        "request_id": request_id_var,
        "user": user_var,
        "run_id": run_id_var,
        "step": step_var,
    }
    tokens = [(variables[key], variables[key].set(value)) for key, value in values.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` from the client (when it looks sane) or makes one, logs with it, echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        # Set, not reset afterwards: Django logs 4xx/5xx responses after the middleware chain has returned, and
        # those lines need the id too. The next request in this thread or task sets its own values.
        request_id_var.set(request_id)
        user_var.set("")
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class UserContextMiddleware:
    """After authentication: puts the username into the log context (DRF token users are added by the view)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            user_var.set(user.get_username())
        return self.get_response(request)
