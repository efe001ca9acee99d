"""Confluence over atlassian-python-api 4.0.7: read and replace page bodies, upload or replace attachments.

Auth: Confluence Cloud takes the account's e-mail and an API token (basic auth, base URL ending in ``/wiki``);
Server/Data Center takes a personal access token (``Authorization: Bearer``). Give ``email`` for Cloud, leave it
empty for Server/DC.

Connection errors, timeouts, 429 and 5xx are retried by urllib3 with exponential backoff, honouring ``Retry-After``
(capped), through ``integrations.http``: reads and the page update (a PUT of a fixed version) are re-sent, an
attachment upload (a POST) only when it never reached Confluence or was answered 429/503, never after a timeout or a
lost answer, which could add a duplicate version. A read whose body is cut off is read again. A page update
answered 409 (someone edited the page meanwhile) is re-read and sent once more with the new version number.
Vendor exceptions never leave this module: callers see ``integrations.exceptions.Confluence*``, whose message
carries Confluence's own reason (the error body's ``message`` and ``data.errors``; never the token). Requests are
counted per operation and HTTP status, retried attempts included; ``flush_metrics()`` adds them to
``enreach_confluence_requests_total`` (call it from the main thread).
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import requests
from requests.exceptions import HTTPError

from enreach.metrics import counter_add
from integrations.exceptions import (
    ConfluenceAuthError,
    ConfluenceConflict,
    ConfluenceError,
    ConfluenceNotFound,
    ConfluenceUnavailable,
    IntegrationNotConfigured,
)
from integrations.http import (
    RETRY_STATUSES,
    BodyFailure,
    ResilientAdapter,
    attempts_of,
    failure_name,
    mount,
    retry_body,
    retry_policy,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

REASON_LIMIT = 500
# Confluence prefixes its messages with the Java exception's class: noise for an operator.
_JAVA_EXCEPTION = re.compile(r"^(?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): ")


@dataclass(frozen=True, slots=True)
class ConfluencePage:
    """A page as read with ``expand=body.storage,version``."""

    id: str
    title: str
    version: int
    body: str
    version_message: str = ""


@dataclass(frozen=True, slots=True)
class ConfluenceAttachment:
    """An attachment as listed or after an upload: ``created`` is False when an existing one got a new version.

    ``size`` is -1 and ``comment`` empty when Confluence did not say.
    """

    id: str
    title: str
    version: int
    created: bool
    size: int = -1
    comment: str = ""


def _response_of(exc: BaseException) -> requests.Response | None:
    """The HTTP response behind a vendor exception (atlassian wraps HTTPError in ApiError(reason=...))."""
    if isinstance(exc, HTTPError) and exc.response is not None:
        return exc.response
    reason = getattr(exc, "reason", None)
    if isinstance(reason, HTTPError) and reason.response is not None:
        return reason.response
    return None


def is_cloud_url(url: str) -> bool:
    """Cloud sites live under ``…atlassian.net/wiki``; anything else is treated as Server/Data Center."""
    return url.rstrip("/").endswith("/wiki") or ".atlassian.net" in url


class ConfluenceClient:
    """Reads and writes the pages and attachments that carry the CMDB. Not thread-safe: one per publish."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        email: str = "",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        retry_after_cap: float = 30.0,
        verify_tls: bool = True,
    ) -> None:
        url = (url or "").strip().rstrip("/")
        if not url:
            raise IntegrationNotConfigured("Confluence is not configured: set ATLASSIAN_BASE_URL.")
        if not url.startswith(("http://", "https://")):
            raise IntegrationNotConfigured(f"ATLASSIAN_BASE_URL must start with http:// or https://, got {url!r}")
        if not (token or "").strip():
            raise IntegrationNotConfigured("Confluence token missing: set ATLASSIAN_API_TOKEN.")
        self.url = url
        self._token = token.strip()
        self.retries = max(0, retries)
        self.backoff = backoff
        self.retry_after_cap = retry_after_cap
        self._operation = "other"
        self._lock = threading.Lock()
        self._responses: collections.Counter[tuple[str, str]] = collections.Counter()
        self.request_count = 0

        from atlassian import Confluence  # on first use: a command that never calls Confluence skips it

        session = requests.Session()
        session.headers.update({"User-Agent": "enreach-tools"})
        session.hooks["response"].append(self._on_response)
        retry = retry_policy(service=f"Confluence {url}", retries=self.retries, backoff=backoff,
                             retry_after_cap=retry_after_cap, on_retry=self._on_retry)  # fmt: skip
        self.session = mount(session, ResilientAdapter(retry=retry, timeout=timeout))
        options: dict[str, Any] = {
            "session": session,
            "timeout": max(1, math.ceil(timeout)),
            "verify_ssl": verify_tls,
            "cloud": bool(email) or is_cloud_url(url),
            # The library's own Retry-After handling sleeps uncapped and chokes on fractions and HTTP dates;
            # the session's urllib3 Retry (integrations.http) retries instead.
            "retry_with_header": False,
            "backoff_and_retry": False,
        }
        if email:
            options.update(username=email.strip(), password=token.strip())
        else:
            options["token"] = token.strip()
        self.api = Confluence(url, **options)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ConfluenceClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConfluenceClient(url={self.url!r})"

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.request_count += 1
            self._responses[(self._operation, str(response.status_code))] += 1

    def _on_retry(self, method: str, path: str, status: str) -> None:
        """An attempt urllib3 is about to repeat: counted like any other."""
        with self._lock:
            self.request_count += 1
            self._responses[(self._operation, status)] += 1

    def flush_metrics(self) -> None:
        """Add the requests made so far to ``enreach_confluence_requests_total`` (call from the main thread)."""
        with self._lock:
            responses, self._responses = self._responses, collections.Counter()
        for (operation, status), amount in responses.items():
            counter_add("enreach_confluence_requests_total", {"operation": operation, "status": status}, amount)

    # -- pages -------------------------------------------------------------------------------------------------

    def page_get(self, page_id: str) -> ConfluencePage:
        """The page's title, current version and storage-format body."""
        data = self._call("page_get", f"GET page {page_id}", lambda: self.api.get_page_by_id(
            page_id, expand="body.storage,version"
        ))  # fmt: skip
        try:
            return ConfluencePage(
                id=str(data["id"]),
                title=str(data["title"]),
                version=int(data["version"]["number"]),
                body=str(((data.get("body") or {}).get("storage") or {}).get("value") or ""),
                version_message=str(data["version"].get("message") or ""),
            )
        except (KeyError, TypeError, ValueError):
            raise ConfluenceError(f"Confluence at {self.url} answered page {page_id} with unexpected data") from None

    def page_update(
        self, page_id: str, *, title: str, body: str, version_comment: str = "", minor_edit: bool = True
    ) -> ConfluencePage:
        """Replace the page body (storage format) as version + 1. A 409 (edited meanwhile) is retried once."""

        def update() -> Any:
            return self.api.update_page(
                page_id,
                title,
                body=body,
                representation="storage",
                minor_edit=minor_edit,
                version_comment=version_comment or None,
                always_update=True,  # the caller compares content itself; the library's check costs two GETs
            )

        try:
            data = self._call("page_update", f"PUT page {page_id}", update)
        except ConfluenceConflict:
            logger.warning("Confluence page %s changed while we updated it; re-reading and retrying once", page_id)
            try:
                data = self._call("page_update", f"PUT page {page_id}", update)
            except ConfluenceConflict:
                raise ConfluenceConflict(
                    f"Confluence page {page_id} kept changing while we updated it (409 twice); try again later"
                ) from None
        if not isinstance(data, dict):
            raise ConfluenceNotFound(f"Confluence page {page_id} has no history (deleted, or not visible to us)")
        return ConfluencePage(
            id=str(data.get("id", page_id)),
            title=str(data.get("title", title)),
            version=int((data.get("version") or {}).get("number") or 0),
            body=body,
        )

    # -- attachments -------------------------------------------------------------------------------------------

    def attachment_find(self, page_id: str, name: str) -> ConfluenceAttachment | None:
        """The page's attachment called ``name`` with its current version, size and comment; None if there is none."""
        data = self._call(
            "attachment_list",
            f"GET attachment {name!r} of page {page_id}",
            lambda: self.api.get_attachments_from_content(page_id, filename=name, expand="version"),
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise ConfluenceError(f"Confluence at {self.url} answered the attachment list of {page_id} oddly")
        for item in results:
            if isinstance(item, dict) and item.get("title") == name and "id" in item:
                return self._attachment(item, name)
        return None

    def attachment_upload(
        self,
        page_id: str,
        *,
        name: str,
        content: bytes,
        content_type: str,
        comment: str,
        attachment_id: str | None = None,
    ) -> ConfluenceAttachment:
        """Upload ``content`` as attachment ``name``: a new version of an existing one (history kept), or new.

        ``attachment_id`` is the existing attachment's id when the caller has looked it up (saves a request);
        without it the attachment is looked up by name first.
        """
        if attachment_id is None:
            found = self.attachment_find(page_id, name)
            attachment_id = found.id if found is not None else ""
        try:
            return self._upload(page_id, attachment_id, name, content, content_type, comment)
        except ConfluenceError as exc:
            # Created meanwhile (or by our own attempt whose answer was lost): add a version to that one instead.
            if attachment_id or "same file name" not in str(exc):
                raise
            found = self.attachment_find(page_id, name)
            if found is None:
                raise
            return self._upload(page_id, found.id, name, content, content_type, comment)

    def _upload(
        self, page_id: str, attachment_id: str, name: str, content: bytes, content_type: str, comment: str
    ) -> ConfluenceAttachment:
        path = f"rest/api/content/{page_id}/child/attachment" + (f"/{attachment_id}/data" if attachment_id else "")
        data = self._call(
            "attachment_upload",
            f"upload {name!r} to page {page_id}",
            lambda: self.api.post(
                path,
                data={"comment": comment, "minorEdit": "true"},
                headers={"X-Atlassian-Token": "no-check", "Accept": "application/json"},
                files={"file": (name, content, content_type)},
            ),
            idempotent=False,
        )
        # A new attachment comes back as a list ({"results": [...]}), a new version as the attachment itself.
        item = (data.get("results") or [None])[0] if isinstance(data, dict) and "results" in data else data
        if not isinstance(item, dict) or "id" not in item:
            raise ConfluenceError(f"Confluence at {self.url} answered the upload of {name!r} with unexpected data")
        return self._attachment(item, name)

    @staticmethod
    def _attachment(item: dict[str, Any], name: str) -> ConfluenceAttachment:
        version = int((item.get("version") or {}).get("number") or 1)
        extensions = item.get("extensions") or {}
        comment = (item.get("metadata") or {}).get("comment") or extensions.get("comment") or ""
        try:
            size = int(extensions.get("fileSize", -1))
        except (TypeError, ValueError):
            size = -1
        return ConfluenceAttachment(id=str(item["id"]), title=str(item.get("title", name)), version=version,
                                    created=version == 1, size=size, comment=str(comment))  # fmt: skip

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _call(self, operation: str, what: str, attempt: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run ``attempt`` (urllib3 retries its connection errors and statuses; a read whose body is cut off is read
        again); translate vendor errors into ``Confluence*`` exceptions."""
        self._operation = operation
        try:
            if not idempotent:
                return self._once(what, attempt)
            return retry_body(lambda: self._once(what, attempt), service=f"Confluence {self.url}", what=what,
                              retries=self.retries, backoff=self.backoff)  # fmt: skip
        except BodyFailure as exc:
            raise ConfluenceUnavailable(
                f"Confluence at {self.url} is unavailable: {what} failed {exc.attempts} times ({exc.reason})"
            ) from None
        finally:
            self._operation = "other"

    def _once(self, what: str, attempt: Callable[[], T]) -> T:
        from atlassian.errors import ApiError

        try:
            return attempt()
        except requests.exceptions.SSLError as exc:
            raise ConfluenceUnavailable(f"TLS to Confluence at {self.url} failed ({type(exc).__name__})") from None
        except (HTTPError, ApiError) as exc:
            response = _response_of(exc)
            if response is None:
                raise ConfluenceError(f"Confluence at {self.url}: {what} failed: {exc}") from None
            self._raise_for(response, what, exc)
            raise  # unreachable: _raise_for always raises
        except requests.exceptions.ChunkedEncodingError:
            raise  # the body was cut off: retry_body reads again when that is safe
        except requests.exceptions.RequestException as exc:
            # Refused, reset or timed out on every attempt urllib3 was allowed to make.
            raise ConfluenceUnavailable(
                f"Confluence at {self.url} is unavailable: {what} failed ({failure_name(exc)})"
            ) from None
        except ValueError as exc:  # a body that is not JSON (a proxy's HTML page)
            raise ConfluenceError(f"Confluence at {self.url} answered {what} with something other than JSON") from exc

    def _reason(self, response: requests.Response) -> str:
        """Confluence's own words for a failure: the body's ``message`` and ``data.errors``, one line, no token."""
        try:
            body = response.json()
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        texts = [_JAVA_EXCEPTION.sub("", str(body.get("message") or "").strip())]
        errors = (body.get("data") or {}).get("errors") if isinstance(body.get("data"), dict) else None
        for error in errors if isinstance(errors, list) else []:
            message = error.get("message") if isinstance(error, dict) else error
            if isinstance(message, dict):
                message = message.get("translation") or message.get("key")
            texts.append(str(message or "").strip())
        reason = "; ".join(dict.fromkeys(t for t in texts if t))
        reason = " ".join(reason.split())
        if self._token:
            reason = reason.replace(self._token, "[token]")
        return reason[:REASON_LIMIT] + ("…" if len(reason) > REASON_LIMIT else "")

    def _raise_for(self, response: requests.Response, what: str, exc: BaseException) -> None:
        status = response.status_code
        reason = self._reason(response)
        said = f": {reason}" if reason else ""
        if status in RETRY_STATUSES:
            # urllib3 has already retried it as often as it may.
            raise ConfluenceUnavailable(
                f"Confluence at {self.url} is unavailable: {what} failed {attempts_of(response)} times "
                f"(HTTP {status}{said})"
            )
        if status in (401, 403):
            raise ConfluenceAuthError(
                f"Confluence at {self.url} refused {what} (HTTP {status}{said}): check ATLASSIAN_API_TOKEN "
                "(and ATLASSIAN_EMAIL for Cloud) and the account's permissions on the page"
            )
        if status == 404:
            raise ConfluenceNotFound(
                f"Confluence at {self.url}: {what} found nothing (HTTP 404{said}): check the page id and that the "
                "account may see the page"
            )
        if status == 409:
            raise ConfluenceConflict(f"Confluence at {self.url}: {what} conflicted (HTTP 409{said})")
        if not reason:
            reason = str(exc).replace(self._token, "[token]")[:200] if self._token else str(exc)[:200]
        raise ConfluenceError(f"Confluence at {self.url} rejected {what} (HTTP {status}): {reason}")
