"""The one HTTP resilience layer of the NetBox and Confluence clients.

Connection errors and retryable statuses are retried by urllib3's ``Retry``, mounted on the client's ``requests``
session through ``ResilientAdapter`` (which also applies a default timeout to calls that set none, such as
pynetbox's). ``Retry-After`` is honoured, capped, and read as seconds (fractions too) or an HTTP date. Only
idempotent methods are re-sent after a response or a read error: an upload POST whose answer was lost (a timeout,
a reset mid-answer) may have been stored, so re-sending it could add a duplicate version. A POST is re-sent only when
it never reached the server (the connection was refused) or the server said it did not process it (429, 503).

What urllib3 cannot see, because it happens after the headers (a body cut off mid-way, JSON that does not parse),
is retried by the small loop ``retry_body`` for the reads that are safe to repeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Throttling and server or proxy trouble: worth another try of an idempotent request.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses with which a server says it did not process the request: safe to re-send even a POST.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
# Called once per attempt that is retried: (method, URL path, HTTP status or "error").
RetryCallback = Callable[[str, str, str], None]


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class CappedRetry(Retry):
    """urllib3's ``Retry`` as our clients want it.

    ``Retry-After`` capped at ``retry_after_cap`` seconds (fractions and HTTP dates read, unreadable values
    ignored); otherwise a backoff of ``backoff_factor`` seconds doubling per retry; a POST also re-sent after 429 or
    503; one warning per retry naming ``service``; ``on_retry`` told of every retried attempt, so that clients can
    count attempts and statuses that never reach them.
    """

    def __init__(
        self,
        *args: Any,
        service: str = "HTTP",
        retry_after_cap: float = 30.0,
        on_retry: RetryCallback | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self.retry_after_cap = retry_after_cap
        self.on_retry = on_retry

    def new(self, **kw: Any) -> CappedRetry:
        retry = super().new(**kw)
        retry.service, retry.retry_after_cap, retry.on_retry = self.service, self.retry_after_cap, self.on_retry
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST" and status_code in NOT_PROCESSED_STATUSES and self.status_forcelist:
            return True
        return super().is_retry(method, status_code, has_retry_after)

    def parse_retry_after(self, retry_after: str) -> float:
        seconds = retry_after_seconds(retry_after)
        return 0.0 if seconds is None else min(seconds, self.retry_after_cap)

    def get_backoff_time(self) -> float:
        retries = len(self.history)
        return 0.0 if retries == 0 else min(self.backoff_max, self.backoff_factor * 2 ** (retries - 1))

    def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> CappedRetry:
        retry = super().increment(method, url, *args, **kwargs)  # raises when exhausted or not retryable
        if self.on_retry is not None:
            last = retry.history[-1]
            self.on_retry(method or "", urlsplit(url or "").path, str(last.status) if last.status else "error")
        return retry

    def sleep(self, response: Any = None) -> None:
        retry_after = None
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
        delay = self.get_backoff_time() if retry_after is None else retry_after
        last = self.history[-1] if self.history else None
        if last is not None:
            reason = f"HTTP {last.status}" if last.status else one_line(last.error) if last.error else "error"
            logger.warning(
                "%s %s %s failed (%s); retry %d of %d in %.2fs",
                self.service,
                last.method,
                urlsplit(last.url or "").path,
                reason,
                len(self.history),
                len(self.history) + (self.total if isinstance(self.total, int) else 0),
                delay,
            )
        if delay > 0:
            time.sleep(delay)


def retry_policy(
    *, service: str, retries: int, backoff: float, retry_after_cap: float, on_retry: RetryCallback | None = None
) -> CappedRetry:
    """The retry policy of a client: ``retries`` more attempts at most, the final response handed back as is."""
    retries = max(0, retries)
    return CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=False,  # requests follows redirects itself
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        raise_on_status=False,  # the last answer reaches the client, which turns it into its own error
        service=service,
        retry_after_cap=retry_after_cap,
        on_retry=on_retry,
    )


class ResilientAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` with a retry policy and a default timeout for requests that set none."""

    def __init__(self, *, retry: Retry, timeout: float | tuple[float, float], **kwargs: Any) -> None:
        self.default_timeout = timeout
        super().__init__(max_retries=retry, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().send(request, **kwargs)


def mount(session: requests.Session, adapter: HTTPAdapter) -> requests.Session:
    """Route every http:// and https:// request of ``session`` through ``adapter``."""
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def attempts_of(response: requests.Response) -> int:
    """How many attempts produced ``response``: 1 plus the retries urllib3 made before it."""
    retries = getattr(response.raw, "retries", None)
    return 1 + len(getattr(retries, "history", ()) or ())


class BodyFailure(Exception):
    """The server answered, but the body is unusable (cut off, not the JSON promised); another read may work."""

    def __init__(self, reason: str, *, malformed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.malformed = malformed
        self.attempts = 1  # set by retry_body to the attempts made


def retry_body(
    attempt: Callable[[], T],
    *,
    service: str,
    what: str,
    retries: int,
    backoff: float,
    on_attempt: Callable[[], None] | None = None,
) -> T:
    """Run a safe-to-repeat read, trying again when its body fails (``BodyFailure`` or a connection dropped
    mid-body); the last failure is raised as ``BodyFailure``. Everything else propagates at once."""
    attempts = max(0, retries) + 1
    failure = BodyFailure("no attempt made")
    for number in range(attempts):
        if on_attempt is not None:
            on_attempt()
        try:
            return attempt()
        except BodyFailure as exc:
            failure = exc
        except requests.exceptions.ChunkedEncodingError as exc:
            failure = BodyFailure(f"body cut off ({one_line(exc)})")
        if number == attempts - 1:
            break
        delay = backoff * 2**number
        logger.warning(
            "%s %s failed (%s); retry %d of %d in %.2fs", service, what, failure.reason, number + 1, retries, delay
        )
        time.sleep(delay)
    failure.attempts = attempts
    raise failure


def failure_name(exc: BaseException) -> str:
    """The name of what went wrong in a requests exception: urllib3's cause (``ReadTimeoutError``,
    ``NewConnectionError``) when retries wrapped it, else the exception's own type."""
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", None)
    return type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """An exception as one bounded line (requests' messages can run to several hundred characters)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"
