"""NetboxClient: the one way this project talks to NetBox.

pynetbox is the client of record: its ``requests`` session, set up here with the token, extra proxy headers, TLS
setting, timeouts and the retry policy of ``integrations.http``, carries every call. pynetbox itself serves the small
calls (``status()``), while bulk listings page over the same session as plain dicts and become the typed records of
``records.py``: a pynetbox ``Record`` costs about a millisecond per object and can trigger hidden GETs, which a
50,000-object export cannot afford. pynetbox is imported when the first client is built, not at start-up.

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
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from operator import itemgetter
from types import TracebackType
from typing import Any, Literal, TypeVar

import requests
from urllib3.exceptions import InsecureRequestWarning

from enreach.metrics import counter_add
from enreach.tracing import span
from integrations.exceptions import (
    IntegrationNotConfigured,
    NetboxAuthError,
    NetboxError,
    NetboxInconsistentData,
    NetboxUnavailable,
)
from integrations.http import (
    RETRY_STATUSES,
    BodyFailure,
    ResilientAdapter,
    attempts_of,
    mount,
    one_line,
    retry_body,
    retry_policy,
)
from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    VM_OBJECT_TYPE,
    ContactAssignmentRecord,
    DeviceRecord,
    SiteRecord,
    TenantRecord,
    VirtualMachineRecord,
    contact_assignment_from_api,
    device_from_api,
    site_from_api,
    tenant_from_api,
    virtual_machine_from_api,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
Kind = Literal["devices", "virtual_machines", "device_contacts", "vm_contacts", "contacts", "contact_roles"]
ProgressCallback = Callable[[int], None]

ENDPOINTS: dict[str, str] = {
    "devices": "dcim/devices/",
    "virtual_machines": "virtualization/virtual-machines/",
}
# The listings whose ``id -> last_updated`` state incremental exports compare: path and filters.
LISTINGS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "devices": (ENDPOINTS["devices"], (("exclude", "config_context"),)),
    "virtual_machines": (ENDPOINTS["virtual_machines"], (("exclude", "config_context"),)),
    "device_contacts": ("tenancy/contact-assignments/", (("object_type", DEVICE_OBJECT_TYPE),)),
    "vm_contacts": ("tenancy/contact-assignments/", (("object_type", VM_OBJECT_TYPE),)),
    "contacts": ("tenancy/contacts/", ()),
    "contact_roles": ("tenancy/contact-roles/", ()),
}
V2_TOKEN_PREFIX = "nbt_"
# Ids per by-id request; with the query string capped below, the request line stays under the 4 KB that
# gunicorn and many proxies allow.
ID_BATCH_SIZE = 200
CONTACT_FIELDS = "id,object_type,object_id,contact,role,priority,last_updated"
MAX_QUERY_CHARS = 3000


def parse_extra_headers(value: str | None) -> dict[str, str]:
    """Parse ``NETBOX_EXTRA_HEADERS`` (``"K=V;K2=V2"``) into a dict; blank input gives ``{}``."""
    headers: dict[str, str] = {}
    for part in (value or "").split(";"):
        if not part.strip():
            continue
        name, sep, header_value = part.partition("=")
        if not sep or not name.strip():
            raise IntegrationNotConfigured(f"NETBOX_EXTRA_HEADERS: expected NAME=VALUE, got {name.strip()!r}")
        headers[name.strip()] = header_value.strip()
    return headers


def authorization_header(token: str) -> str:
    """The Authorization header for a NetBox token: ``Bearer`` for v2 (``nbt_…``), ``Token`` for v1, or the
    keyword the user already wrote."""
    token = token.strip()
    keyword, _, rest = token.partition(" ")
    if rest and keyword.lower() in ("token", "bearer"):
        return f"{keyword.capitalize()} {rest.strip()}"
    return f"Bearer {token}" if token.startswith(V2_TOKEN_PREFIX) else f"Token {token}"


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


def _id_batches(ids: Sequence[int]) -> list[list[int]]:
    """Split ids into batches of at most ID_BATCH_SIZE whose ``id=…&`` query stays under MAX_QUERY_CHARS."""
    batches: list[list[int]] = []
    batch: list[int] = []
    chars = 0
    for object_id in ids:
        cost = len(str(object_id)) + 4  # "id=" and "&"
        if batch and (len(batch) >= ID_BATCH_SIZE or chars + cost > MAX_QUERY_CHARS):
            batches.append(batch)
            batch, chars = [], 0
        batch.append(object_id)
        chars += cost
    if batch:
        batches.append(batch)
    return batches


class NetboxClient:
    """Reads NetBox's REST API: bulk listings as typed records, change detection, counts and status.

    Thread-safe for concurrent reads, with at most ``workers`` requests in flight across all of them (listings
    walked at the same time share them); ``request_count`` counts every HTTP attempt (retries included).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        verify_tls: bool = True,
        timeout: tuple[float, float] = (5.0, 60.0),
        extra_headers: dict[str, str] | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        page_size: int = 1000,
        workers: int = 4,
        retry_after_cap: float = 30.0,
    ) -> None:
        url = (url or "").strip().rstrip("/")
        if not url:
            raise IntegrationNotConfigured("NetBox is not configured: set NETBOX_URL.")
        if not url.startswith(("http://", "https://")):
            raise IntegrationNotConfigured(f"NETBOX_URL must start with http:// or https://, got {url!r}")
        if not (token or "").strip():
            raise IntegrationNotConfigured("NetBox token missing: set NETBOX_TOKEN.")
        # Accept the API root too: pynetbox and our paths both add /api themselves.
        self.url = url.removesuffix("/api")
        self.api_url = f"{self.url}/api/"
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.page_size = max(1, page_size)
        self.workers = max(1, workers)
        self.retry_after_cap = retry_after_cap
        self._lock = threading.Lock()
        # At most ``workers`` requests in flight, however many listings are walked at once.
        self._slots = threading.BoundedSemaphore(self.workers)
        self._request_count = 0
        # (endpoint, HTTP status or "error") -> requests; flushed to the shared metrics by flush_metrics().
        self._responses: collections.Counter[tuple[str, str]] = collections.Counter()

        import pynetbox  # type: ignore[import-untyped]  # on first use: a command that never calls NetBox skips it

        header = authorization_header(token)
        self.api = pynetbox.api(self.url, token=header.partition(" ")[2])
        session: requests.Session = self.api.http_session
        session.headers.update({"Accept": "application/json", "User-Agent": "enreach-tools"})
        session.headers.update(extra_headers or {})
        session.headers["Authorization"] = header
        session.verify = verify_tls
        if not verify_tls:
            # The operator chose this (self-signed NetBox); one warning in the log beats one per request.
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
            logger.warning("TLS certificate verification is off for NetBox at %s", self.url)
        retry = retry_policy(
            service=f"NetBox {self.url}",
            retries=self.retries,
            backoff=backoff,
            retry_after_cap=retry_after_cap,
            on_retry=self._on_retry,
        )
        # The default timeout covers pynetbox's calls, which set none.
        adapter = ResilientAdapter(retry=retry, timeout=timeout, pool_connections=2, pool_maxsize=self.workers + 2)
        self.session = mount(session, adapter)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def __enter__(self) -> NetboxClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NetboxClient(url={self.url!r})"

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

    # -- small calls -------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``/api/status/``: NetBox, Django and Python versions, installed apps, workers (read through pynetbox)."""
        from pynetbox.core.query import ContentError, RequestError  # type: ignore[import-untyped]

        def attempt() -> Any:
            with span("netbox.request", **{"http.request.method": "GET", "netbox.endpoint": "status/"}):
                try:
                    data = self.api.status()
                except RequestError as exc:
                    self._record("status/", str(exc.req.status_code))
                    self._check_response(exc.req, "status/")
                    raise NetboxError(f"NetBox at {self.url} answered GET /api/status/ with an error: {exc}") from None
                except (ContentError, requests.exceptions.JSONDecodeError) as exc:
                    self._record("status/", "200")
                    raise BodyFailure(f"malformed JSON ({exc})", malformed=True) from None
                except requests.exceptions.RequestException:
                    self._record("status/", "error")
                    raise
            self._record("status/", "200")
            return data

        data = self._call("GET /api/status/", attempt)
        if not isinstance(data, dict):
            raise NetboxInconsistentData(f"NetBox at {self.url} answered /api/status/ with {type(data).__name__}")
        return data

    def count(self, kind: Kind) -> int:
        """How many objects a listing holds (one ``limit=1`` request), e.g. devices or virtual machines."""
        path, filters = _listing(kind)
        page = self._get(path, [("limit", "1"), ("fields", "id"), *filters])
        return self._count_of(page, path)

    # -- bulk listings -----------------------------------------------------------------------------------------

    def fetch_devices(self, progress: ProgressCallback | None = None) -> list[DeviceRecord]:
        """Every device, in id order."""
        return self._walk(ENDPOINTS["devices"], _BULK_PARAMS, device_from_api, _record_id, progress)

    def fetch_virtual_machines(self, progress: ProgressCallback | None = None) -> list[VirtualMachineRecord]:
        """Every virtual machine, in id order."""
        return self._walk(ENDPOINTS["virtual_machines"], _BULK_PARAMS, virtual_machine_from_api, _record_id, progress)

    def fetch_sites(self, progress: ProgressCallback | None = None) -> list[SiteRecord]:
        """Every site with its region and site group (one listing instead of one lookup per device)."""
        return self._walk("dcim/sites/", [("ordering", "id")], site_from_api, _record_id, progress)

    def fetch_tenants(self, progress: ProgressCallback | None = None) -> list[TenantRecord]:
        """Every tenant with its tenant group."""
        return self._walk("tenancy/tenants/", [("ordering", "id")], tenant_from_api, _record_id, progress)

    def fetch_contact_assignments(
        self, object_type: str, progress: ProgressCallback | None = None
    ) -> list[ContactAssignmentRecord]:
        """Every contact assignment for ``dcim.device`` or ``virtualization.virtualmachine`` objects."""
        if object_type not in (DEVICE_OBJECT_TYPE, VM_OBJECT_TYPE):
            raise ValueError(f"object_type must be {DEVICE_OBJECT_TYPE!r} or {VM_OBJECT_TYPE!r}, got {object_type!r}")
        # Only what the Contacts column needs: a third of the bytes of a full assignment.
        params = [("object_type", object_type), ("ordering", "id"), ("fields", CONTACT_FIELDS)]
        return self._walk("tenancy/contact-assignments/", params, contact_assignment_from_api, _record_id, progress)

    # -- change detection --------------------------------------------------------------------------------------

    def fetch_last_updated(self, kind: Kind, progress: ProgressCallback | None = None) -> dict[int, str]:
        """``{id: last_updated}`` of every object of a listing: the cheap listing incremental exports start from."""
        path, filters = _listing(kind)
        params = [("ordering", "id"), *filters, ("fields", "id,last_updated")]
        pairs = self._walk(path, params, _id_and_last_updated, itemgetter(0), progress)
        return dict(pairs)

    def fetch_updated_since(self, kind: Kind, since: str) -> dict[int, str]:
        """``{id: last_updated}`` of the objects of a listing changed at or after ``since`` (ISO 8601): usually
        one page."""
        path, filters = _listing(kind)
        params = [("ordering", "id"), *filters, ("fields", "id,last_updated"), ("last_updated__gte", since)]
        return dict(self._walk(path, params, _id_and_last_updated, itemgetter(0), None))

    def fetch_devices_by_id(self, ids: Iterable[int], progress: ProgressCallback | None = None) -> list[DeviceRecord]:
        """The devices with these ids, in id order (ids that no longer exist are simply absent)."""
        return self._fetch_by_id(ENDPOINTS["devices"], ids, device_from_api, progress)

    def fetch_virtual_machines_by_id(
        self, ids: Iterable[int], progress: ProgressCallback | None = None
    ) -> list[VirtualMachineRecord]:
        """The virtual machines with these ids, in id order."""
        return self._fetch_by_id(ENDPOINTS["virtual_machines"], ids, virtual_machine_from_api, progress)

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
    ) -> list[T]:
        batches = _id_batches(sorted({int(i) for i in ids}))
        if not batches:
            return []
        found: list[T] = []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(batches)), thread_name_prefix="netbox") as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, self._fetch_batch, path, batch, parse) for batch in batches
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
        found.sort(key=_record_id)
        return found

    def _fetch_batch(self, path: str, batch: list[int], parse: Callable[[dict[str, Any]], T]) -> list[T]:
        params = [("limit", str(self.page_size)), ("ordering", "id"), ("exclude", "config_context")]
        params += [("id", str(object_id)) for object_id in batch]
        items: list[T] = []
        while True:
            count, page_items = self._page(path, [*params, ("offset", str(len(items)))] if items else params, parse)
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


_BULK_PARAMS: list[tuple[str, str]] = [("ordering", "id"), ("exclude", "config_context")]


def _endpoint_label(path: str) -> str:
    """A metrics label for an API path: detail ids folded (``dcim/devices/{id}/``)."""
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def _listing(kind: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    try:
        return LISTINGS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(LISTINGS)}, got {kind!r}") from None


def _record_id(record: Any) -> int:
    return int(record.id)


def _id_and_last_updated(obj: dict[str, Any]) -> tuple[int, str]:
    return int(obj["id"]), str(obj.get("last_updated") or "")
