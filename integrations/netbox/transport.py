"""How NetboxClient reads NetBox over HTTP: one GET with its checks and error translation, the paging of bulk
listings, the by-id batches, and the per-endpoint request accounting behind ``enreach_netbox_requests_total``.

Connection errors, read timeouts and 429/5xx answers are retried by urllib3 (``integrations.http``), honouring a
capped ``Retry-After``; a body cut off mid-way or JSON that does not parse is read again by ``retry_body``.

Bulk listings use NetBox's largest page (``MAX_PAGE_SIZE``, 1000 by default), ``ordering=id`` (offset paging is only
stable with a unique order) and ``exclude=config_context`` (the only switch that skips NetBox's costly config
context query). The first page gives ``count``; the remaining pages are fetched concurrently. Because rows can
change during an offset walk, the unique ids fetched must equal ``count``; otherwise the walk is repeated once.

Every failure leaves this module as an ``integrations.exceptions`` error naming the NetBox URL, never the token.
"""

from __future__ import annotations

import collections
import contextvars
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from itertools import pairwise
from typing import Any, TypeVar

import requests

from enreach.metrics import counter_add
from enreach.tracing import span
from integrations.exceptions import (
    IntegrationNotConfigured,
    NetboxAuthError,
    NetboxError,
    NetboxInconsistentData,
    NetboxUnavailable,
)
from integrations.http import RETRY_STATUSES, BodyFailure, attempts_of, one_line, retry_body

logger = logging.getLogger(__name__)

T = TypeVar("T")
ProgressCallback = Callable[[int], None]

# Ids per by-id request; with the query string capped below, the request line stays under the 4 KB that
# gunicorn and many proxies allow.
ID_BATCH_SIZE = 200
MAX_QUERY_CHARS = 3000


# A by-id batch's listing: in id order (offset paging is stable only so), without NetBox's costly config context.
_BY_ID_PARAMS: tuple[tuple[str, str], ...] = (("ordering", "id"), ("exclude", "config_context"))


class ListingChanged(NetboxInconsistentData):
    """A streamed listing changed while it was read (its count moved, or ids went missing): what was handed out
    is not the listing, and the caller reads it again from the start (``NetboxTransport._stream``)."""


def _error_message(response: requests.Response) -> str:
    """NetBox's error body as one line: ``detail``, or ``field: message`` pairs, or the start of the text."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.text.strip()[:200] or response.reason or ""
    if isinstance(body, dict):
        if set(body) == {"detail"}:
            return str(body["detail"])
        return "; ".join(
            f"{key}: {' '.join(map(str, value)) if isinstance(value, list) else value}" for key, value in body.items()
        )
    if isinstance(body, list):
        return "; ".join(map(str, body))
    return str(body)


def _id_batches(ids: Sequence[int], field: str = "id") -> list[list[int]]:
    """Split ids into batches of at most ID_BATCH_SIZE whose ``id=…&`` (``field=…&``) query stays under
    MAX_QUERY_CHARS."""
    batches: list[list[int]] = []
    batch: list[int] = []
    chars = 0
    for object_id in ids:
        cost = len(str(object_id)) + len(field) + 2  # "id=" and "&"
        if batch and (len(batch) >= ID_BATCH_SIZE or chars + cost > MAX_QUERY_CHARS):
            batches.append(batch)
            batch, chars = [], 0
        batch.append(object_id)
        chars += cost
    if batch:
        batches.append(batch)
    return batches


class NetboxTransport:
    """The HTTP half of ``NetboxClient``: the client's ``__init__`` sets these attributes up (session, limits,
    counters); this class reads listings over them."""

    url: str
    api_url: str
    session: requests.Session
    timeout: tuple[float, float]
    retries: int
    backoff: float
    page_size: int
    workers: int
    _lock: threading.Lock
    _slots: threading.BoundedSemaphore
    _request_count: int
    _responses: collections.Counter[tuple[str, str]]

    # -- request accounting ------------------------------------------------------------------------------------

    def _record(self, endpoint: str, status: str) -> None:
        with self._lock:
            self._responses[(endpoint, status)] += 1

    def _count_attempt(self) -> None:
        with self._lock:
            self._request_count += 1

    def _on_retry(self, method: str, path: str, status: str) -> None:
        """An attempt urllib3 is about to repeat: counted like any other."""
        _, _, api_path = path.partition("/api/")
        self._record(_endpoint_label(api_path), status)
        self._count_attempt()

    def flush_metrics(self) -> None:
        """Add the requests made so far to ``enreach_netbox_requests_total`` (call from the main thread)."""
        with self._lock:
            responses, self._responses = self._responses, collections.Counter()
        for (endpoint, status), amount in responses.items():
            counter_add("enreach_netbox_requests_total", {"endpoint": endpoint, "status": status}, amount)

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far, retries included."""
        with self._lock:
            return self._request_count

    # -- paging ------------------------------------------------------------------------------------------------

    def _walk(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        parse: Callable[[dict[str, Any]], T],
        key: Callable[[T], int],
        progress: ProgressCallback | None,
    ) -> list[T]:
        """Every object of a listing; walks a second time if the listing changed under the first walk."""
        problem = ""
        for walk in (1, 2):
            items, problem = self._walk_once(path, params, parse, key, progress)
            if not problem:
                return items
            if walk == 1:
                logger.warning("NetBox %s changed during the walk (%s); reading it again", path, problem)
        raise NetboxInconsistentData(f"NetBox at {self.url}: /api/{path} kept changing while it was read ({problem})")

    def _walk_once(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        parse: Callable[[dict[str, Any]], T],
        key: Callable[[T], int],
        progress: ProgressCallback | None,
    ) -> tuple[list[T], str]:
        base = [("limit", str(self.page_size)), *params]
        first = self._get(path, base)
        count = self._count_of(first, path)
        first_items = self._parse_results(first, path, parse)
        step = self.page_size
        if len(first_items) < min(count, self.page_size):
            # The server caps the page below what we asked for (a smaller MAX_PAGE_SIZE): step by what it gives.
            step = len(first_items)
            if step == 0:
                return [], f"count is {count} but the first page is empty"
        pages: dict[int, list[T]] = {0: first_items}
        counts = {count}
        fetched = len(first_items)
        if progress:
            progress(fetched)
        offsets = list(range(step, count, step))
        if offsets:
            pool = ThreadPoolExecutor(max_workers=min(self.workers, len(offsets)), thread_name_prefix="netbox")
            try:
                futures: dict[Future[tuple[int, list[T]]], int] = {
                    # Each page runs in a copy of this context, so its span nests under the caller's.
                    pool.submit(
                        contextvars.copy_context().run, self._page, path, [*base, ("offset", str(offset))], parse
                    ): offset
                    for offset in offsets
                }
                for future in as_completed(futures):
                    page_count, items = future.result()
                    pages[futures[future]] = items
                    counts.add(page_count)
                    fetched += len(items)
                    if progress:
                        progress(fetched)
            finally:
                # On failure, pages not yet started are dropped instead of each retrying against a dead NetBox.
                pool.shutdown(wait=True, cancel_futures=True)
        items = [item for offset in sorted(pages) for item in pages[offset]]
        unique = {key(item): item for item in items}
        if len(counts) > 1:
            return [], f"count went from {count} to {sorted(counts - {count})}"
        if len(unique) != count:
            return [], f"{len(unique)} unique ids fetched for a count of {count}"
        if len(unique) != len(items):
            items = sorted(unique.values(), key=key)
        return items, ""

    def _stream(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        parse: Callable[[dict[str, Any]], T],
        key: Callable[[T], int],
        progress: ProgressCallback | None,
    ) -> Iterator[list[T]]:
        """Every object of a listing (``ordering=id`` in ``params``), a page at a time in id order, with at most
        ``2 * workers`` pages fetched ahead: memory holds a few pages, not the listing.

        Pages are fetched concurrently and handed out in offset order. An object seen twice (an earlier object was
        deleted during the walk, shifting the offsets) is handed out once. When the walk ends, the count must not
        have moved and the unique ids must equal it; otherwise ``ListingChanged`` is raised after the last page,
        and the caller, which has consumed a listing that was not one, starts again (``_walk`` repeats the walk
        once for a list; a streaming caller discards what it wrote)."""
        base = [("limit", str(self.page_size)), *params]
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="netbox")
        # The first page is asked for now, not when the caller starts reading: another listing's walk can still be
        # under way (the VMs' first page is in flight while the devices stream).
        # Parsed in the pool's thread, like every page: the decoded JSON is dropped there, not held for the walk.
        first_page = pool.submit(contextvars.copy_context().run, self._page, path, base, parse)
        return self._pages(path, base, [first_page], pool, parse, key, progress)

    def _pages(
        self,
        path: str,
        base: list[tuple[str, str]],
        first_page: list[Future[tuple[int, list[T]]]],
        pool: ThreadPoolExecutor,
        parse: Callable[[dict[str, Any]], T],
        key: Callable[[T], int],
        progress: ProgressCallback | None,
    ) -> Iterator[list[T]]:
        try:
            yield from self._pages_of(path, base, first_page, pool, parse, key, progress)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _pages_of(
        self,
        path: str,
        base: list[tuple[str, str]],
        first_page: list[Future[tuple[int, list[T]]]],
        pool: ThreadPoolExecutor,
        parse: Callable[[dict[str, Any]], T],
        key: Callable[[T], int],
        progress: ProgressCallback | None,
    ) -> Iterator[list[T]]:
        count, first_items = first_page.pop().result()  # popped: its page is not held for the whole walk
        step = self.page_size
        if len(first_items) < min(count, self.page_size):
            step = len(first_items)
            if step == 0:
                raise ListingChanged(f"NetBox at {self.url}: /api/{path} count is {count} but the first page is empty")
        counts = {count}
        last = -1
        handed = 0

        def fresh(items: list[T]) -> list[T]:
            nonlocal last, handed
            keys = [key(item) for item in items]
            if keys and keys[0] > last and all(a < b for a, b in pairwise(keys)):
                last, handed = keys[-1], handed + len(items)
                return items
            kept = []
            for item, item_key in zip(items, keys, strict=True):
                if item_key > last:
                    kept.append(item)
                    last = item_key
            handed += len(kept)
            return kept

        fetched = len(first_items)
        if progress:
            progress(fetched)
        yield fresh(first_items)
        del first_items
        offsets = iter(range(step, count, step))
        ahead = 2 * self.workers
        pending: deque[Future[tuple[int, list[T]]]] = deque()
        try:
            for offset in offsets:
                page_params = [*base, ("offset", str(offset))]
                pending.append(pool.submit(contextvars.copy_context().run, self._page, path, page_params, parse))
                if len(pending) < ahead:
                    continue
                page_count, items = pending.popleft().result()
                counts.add(page_count)
                fetched += len(items)
                if progress:
                    progress(fetched)
                yield fresh(items)
            while pending:
                page_count, items = pending.popleft().result()
                counts.add(page_count)
                fetched += len(items)
                if progress:
                    progress(fetched)
                yield fresh(items)
        finally:
            for future in pending:
                future.cancel()
        if len(counts) > 1:
            raise ListingChanged(
                f"NetBox at {self.url}: /api/{path} changed while it was read (count went from {count} to "
                f"{sorted(counts - {count})})"
            )
        if handed != count:
            raise ListingChanged(
                f"NetBox at {self.url}: /api/{path} changed while it was read ({handed} unique ids fetched for a "
                f"count of {count})"
            )

    def _page(
        self, path: str, params: Sequence[tuple[str, str]], parse: Callable[[dict[str, Any]], T]
    ) -> tuple[int, list[T]]:
        page = self._get(path, params)
        return self._count_of(page, path), self._parse_results(page, path, parse)

    def _fetch_by_id(
        self,
        path: str,
        ids: Iterable[int],
        parse: Callable[[dict[str, Any]], T],
        progress: ProgressCallback | None,
        *,
        field: str = "id",
        params: Sequence[tuple[str, str]] = _BY_ID_PARAMS,
    ) -> list[T]:
        """The objects whose ``field`` (``id``, or a filter such as a contact assignment's ``object_id``) is one of
        ``ids``, in id order: the ids in batches short enough for a request line, each batch a listing with
        ``params``."""
        batches = _id_batches(sorted({int(i) for i in ids}), field)
        if not batches:
            return []
        found: list[T] = []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(batches)), thread_name_prefix="netbox") as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, self._fetch_batch, path, batch, parse, field, params)
                for batch in batches
            ]
            try:
                for future in as_completed(futures):
                    found.extend(future.result())
                    if progress:
                        progress(len(found))
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
        found.sort(key=record_id)
        return found

    def _fetch_batch(
        self,
        path: str,
        batch: list[int],
        parse: Callable[[dict[str, Any]], T],
        field: str = "id",
        params: Sequence[tuple[str, str]] = _BY_ID_PARAMS,
    ) -> list[T]:
        query = [("limit", str(self.page_size)), *params, *((field, str(object_id)) for object_id in batch)]
        items: list[T] = []
        while True:
            count, page_items = self._page(path, [*query, ("offset", str(len(items)))] if items else query, parse)
            items += page_items
            if not page_items or len(items) >= count:
                return items

    # -- one request -------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Sequence[tuple[str, str]]) -> Any:
        url = self.api_url + path
        endpoint = _endpoint_label(path)

        def attempt() -> Any:
            with span("netbox.request", **{"http.request.method": "GET", "netbox.endpoint": endpoint}) as current:
                try:
                    with self._slots:
                        response = self.session.get(url, params=list(params), timeout=self.timeout)
                except requests.exceptions.RequestException:
                    self._record(endpoint, "error")
                    raise
                self._record(endpoint, str(response.status_code))
                current.set_attribute("http.response.status_code", response.status_code)
            self._check_response(response, path)
            try:
                return json.loads(response.content)
            except ValueError as exc:
                raise BodyFailure(f"malformed JSON ({exc})", malformed=True) from None

        return self._call(f"GET /api/{path}", attempt)

    def _check_response(self, response: requests.Response, path: str) -> None:
        """Raise for any answer that is not a usable 2xx JSON body."""
        status = response.status_code
        if status in RETRY_STATUSES:
            # urllib3 has already retried it as often as configured.
            attempts = attempts_of(response)
            raise NetboxUnavailable(
                f"NetBox at {self.url} is unavailable: GET /api/{path} failed {attempts} times (HTTP {status})"
            )
        if status in (401, 403):
            raise NetboxAuthError(
                f"NetBox at {self.url} rejected the token (HTTP {status}): {_error_message(response)}"
            )
        if status >= 300:
            raise NetboxError(
                f"NetBox at {self.url} answered GET /api/{path} with HTTP {status}: {_error_message(response)}"
            )
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type and response.content.lstrip()[:1] == b"<":
            # An HTML page with 200 is a login portal or a web server, not a flaky NetBox: retrying will not help.
            raise NetboxError(
                f"{self.url} answered GET /api/{path} with an HTML page, not NetBox's API; check NETBOX_URL "
                "and any proxy in front of NetBox"
            )

    def _call(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` (urllib3 retries its connection errors and statuses), reading again a body that fails;
        requests' errors become ``integrations.exceptions`` errors naming the URL."""
        try:
            return retry_body(
                attempt,
                service=f"NetBox {self.url}",
                what=what,
                retries=self.retries,
                backoff=self.backoff,
                on_attempt=self._count_attempt,
            )
        except BodyFailure as exc:
            if exc.malformed:
                raise NetboxInconsistentData(
                    f"NetBox at {self.url} answered {what} with malformed data {exc.attempts} times: {exc.reason}"
                ) from None
            raise NetboxUnavailable(
                f"NetBox at {self.url} is unavailable: {what} failed {exc.attempts} times ({exc.reason})"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise NetboxUnavailable(
                f"TLS to NetBox at {self.url} failed ({one_line(exc)}); if NetBox uses a private CA, set "
                "NETBOX_VERIFY_TLS=false or install the CA"
            ) from None
        except requests.exceptions.InvalidURL as exc:
            raise IntegrationNotConfigured(f"NETBOX_URL is not a valid URL: {self.url} ({exc})") from None
        except requests.exceptions.RequestException as exc:
            # Refused, reset or timed out on every attempt urllib3 made.
            raise NetboxUnavailable(
                f"NetBox at {self.url} is unavailable: {what} failed after {self.retries + 1} attempts "
                f"({one_line(exc)})"
            ) from None

    # -- page parsing ------------------------------------------------------------------------------------------

    def _count_of(self, page: Any, path: str) -> int:
        if not isinstance(page, dict) or not isinstance(page.get("count"), int):
            raise NetboxInconsistentData(f"NetBox at {self.url}: /api/{path} did not answer with a page (no count)")
        return int(page["count"])

    def _parse_results(self, page: dict[str, Any], path: str, parse: Callable[[dict[str, Any]], T]) -> list[T]:
        results = page.get("results")
        if not isinstance(results, list):
            raise NetboxInconsistentData(f"NetBox at {self.url}: /api/{path} answered a page without results")
        try:
            return [parse(obj) for obj in results]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise NetboxInconsistentData(
                f"NetBox at {self.url}: /api/{path} returned an object this client cannot read ({exc!r})"
            ) from None


def _endpoint_label(path: str) -> str:
    """A metrics label for an API path: detail ids folded (``dcim/devices/{id}/``)."""
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def record_id(record: Any) -> int:
    return int(record.id)
