"""One small class per channel kind, as Healthchecks' ``hc/api/transports.py`` has them.

Each transport has ``notify(message)`` and ``is_noop(message)``. Every failure is a ``TransportError`` that says
whether it is permanent (a 404 from the receiver, an address the mail server refuses: do not try again) or worth
another try (a 5xx, a 429 with its ``Retry-After``, a refused connection, a timeout). The transport itself never
retries: the outbox (``notifications.services``) decides when, and a test notification is tried once.

Error texts are written here, never copied from an exception that could quote the URL: a webhook's URL is a secret
(Slack and Teams put the credential in it), as is its signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import socket
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from enreach.logs import redact

USER_AGENT = "Enreach-tools-notifications/1"


@dataclass
class Message:
    """What one delivery says, in every form a transport may need."""

    delivery_id: str
    event: str
    title: str
    text: str  # the plain-text e-mail body
    html: str  # the HTML e-mail part
    summary: str  # the chat message (Slack, Teams): a few lines
    payload: dict[str, Any]  # the documented JSON body of generic webhooks
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, url) for chat cards


class TransportError(Exception):
    """A failed attempt: ``permanent`` when another try cannot help; ``retry_after`` seconds when the receiver said."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        response_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.response_code = response_code
        self.retry_after = retry_after


class Transport:
    """A channel kind: ``notify`` returns the receiver's status code (HTTP) or ``None``, or raises
    ``TransportError``."""

    def is_noop(self, message: Message) -> bool:
        """True when there is nobody to send to: the delivery is then recorded as failed without trying."""
        return False

    def notify(self, message: Message) -> int | None:
        raise NotImplementedError


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return redact(text)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds, or ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HttpTransport(Transport):
    """The shared HTTP half: one POST with a timeout, every outcome mapped to a status or a ``TransportError``."""

    def __init__(self, url: str, *, timeout: float | None = None) -> None:
        self.url = url
        self.timeout = float(settings.NOTIFY_TIMEOUT if timeout is None else timeout)

    def secrets(self) -> list[str]:
        """Strings that must never reach an error text or a log line."""
        return [self.url]

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            response = requests.post(
                self.url,
                data=body,
                headers={"User-Agent": USER_AGENT, **headers},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise TransportError(f"No answer within {self.timeout:g} s.") from None
        except requests.ConnectionError as exc:
            raise TransportError(f"Could not connect to the receiver ({_root_cause(exc)}).") from None
        except requests.RequestException as exc:
            raise TransportError(f"The request could not be sent ({type(exc).__name__}).", permanent=True) from None
        code = response.status_code
        if 200 <= code < 300:
            return code
        detail = _scrub(response.text[:200].strip(), self.secrets())
        text = f"The receiver answered HTTP {code}" + (f": {detail}" if detail else ".")
        if code == 429 or code >= 500 or code == 408:
            raise TransportError(
                text, response_code=code, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            )
        # 3xx (we do not follow redirects with a signed body) and other 4xx: the receiver will not change its mind.
        raise TransportError(text, permanent=True, response_code=code)


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's type (``ConnectionRefusedError``, ``gaierror``): its text may quote the URL."""
    seen: BaseException = exc
    while True:
        inner = seen.__cause__ or seen.__context__
        if inner is None or inner is seen:
            break
        seen = inner
    for arg in getattr(exc, "args", ()):
        reason = getattr(arg, "reason", None)
        if isinstance(reason, BaseException):
            seen = reason
    name = type(seen).__name__
    if isinstance(seen, socket.gaierror) or "NameResolution" in name:
        return "the host name does not resolve"
    if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
        return "connection refused"
    return name


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, the ``X-Enreach-Signature`` header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookTransport(HttpTransport):
    """A webhook: the generic JSON body, or a Slack- or Teams-shaped one, signed with the channel's secret."""

    def __init__(self, url: str, *, secret: str, format: str, timeout: float | None = None) -> None:
        super().__init__(url, timeout=timeout)
        self.secret = secret
        self.format = format

    def secrets(self) -> list[str]:
        return [self.url, self.secret]

    def body(self, message: Message) -> bytes:
        if self.format == "slack":
            data: dict[str, Any] = slack_body(message)
        elif self.format == "teams":
            data = teams_body(message)
        else:
            data = message.payload
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    def notify(self, message: Message) -> int | None:
        body = self.body(message)
        headers = {
            "Content-Type": "application/json",
            "X-Enreach-Event": message.event,
            "X-Enreach-Delivery": message.delivery_id,
            "X-Enreach-Timestamp": str(int(time.time())),
            "X-Enreach-Signature": signature(self.secret, body),
        }
        return self.post(body, headers)


def slack_body(message: Message) -> dict[str, Any]:
    """Slack's incoming-webhook shape: ``text`` (mrkdwn), which Mattermost and Rocket.Chat take too."""
    links = "\n".join(f"<{url}|{label}>" for label, url in message.links)
    return {"text": f"*{message.title}*\n{message.summary}" + (f"\n{links}" if links else "")}


def teams_body(message: Message) -> dict[str, Any]:
    """A Teams message with an Adaptive Card (what Teams' "post to a channel when a webhook request is received"
    workflow takes)."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "size": "Medium",
                            "weight": "Bolder",
                            "text": message.title,
                            "wrap": True,
                        },
                        {"type": "TextBlock", "text": message.summary, "wrap": True},
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in message.links],
                },
            }
        ],
    }


class EmailTransport(Transport):
    """E-mail through Django's e-mail backend (``EMAIL_URL``): a text and an HTML part, one message to everyone."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    def is_noop(self, message: Message) -> bool:
        return not self.addresses

    def notify(self, message: Message) -> int | None:
        email = EmailMultiAlternatives(
            subject=message.title,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=self.addresses,
            headers={"X-Enreach-Delivery": message.delivery_id, "X-Enreach-Event": message.event},
        )
        email.attach_alternative(message.html, "text/html")
        try:
            connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
            email.connection = connection
            email.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise TransportError(
                f"The mail server refused every recipient (SMTP {', '.join(map(str, codes))}).",
                permanent=all(code >= 500 for code in codes),
                response_code=codes[0] if codes else None,
            ) from None
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            )
            raise TransportError(
                f"The mail server answered {exc.smtp_code}: {redact(reply[:200])}",
                permanent=500 <= exc.smtp_code < 600,
                response_code=exc.smtp_code,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else type(exc).__name__
            if isinstance(exc, (TimeoutError, socket.timeout)):
                reason = f"no answer within {settings.EMAIL_TIMEOUT} s"
            raise TransportError(f"Could not reach the mail server ({reason}).") from None
        return None
