"""NetboxClient: the one way this project talks to NetBox.

pynetbox is the client of record: its ``requests`` session, set up here with the token, extra proxy headers, TLS
setting, timeouts and the retry policy of ``integrations.http``, carries every call. pynetbox itself serves the small
calls (``status()``), while bulk listings page over the same session as plain dicts and become the typed records of
``records.py``: a pynetbox ``Record`` costs about a millisecond per object and can trigger hidden GETs, which a
50,000-object export cannot afford. pynetbox is imported when the first client is built, not at start-up.

This module holds the configuration (token header, extra headers, session) and the public calls; how a request is
sent, checked, retried, counted and paged is ``integrations.netbox.transport``.

Every failure leaves the client as an ``integrations.exceptions`` error naming the NetBox URL, never the token.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from types import TracebackType
from typing import Any, Literal

import requests
from urllib3.exceptions import InsecureRequestWarning

from enreach.tracing import span
from integrations.exceptions import (
    IntegrationNotConfigured,
    NetboxError,
    NetboxInconsistentData,
)
from integrations.http import (
    BodyFailure,
    ResilientAdapter,
    mount,
    retry_policy,
)
from integrations.netbox.records import (
    DEVICE_OBJECT_TYPE,
    VM_OBJECT_TYPE,
    ContactAssignmentRecord,
    CustomFieldRecord,
    DeviceRecord,
    SiteRecord,
    TenantRecord,
    VirtualMachineRecord,
    contact_assignment_from_api,
    custom_field_from_api,
    device_from_api,
    site_from_api,
    tenant_from_api,
    virtual_machine_from_api,
)
from integrations.netbox.transport import NetboxTransport, ProgressCallback, record_id

logger = logging.getLogger(__name__)

Kind = Literal["devices", "virtual_machines", "device_contacts", "vm_contacts", "contacts", "contact_roles"]

ENDPOINTS: dict[str, str] = {
    "devices": "dcim/devices/",
    "virtual_machines": "virtualization/virtual-machines/",
}
ASSIGNMENTS = "tenancy/contact-assignments/"
# NetBox's filters of contact assignments by the contact or role they name (each takes several values, ORed).
AssignmentFilter = Literal["contact_id", "role_id"]
# The listings whose ``id -> last_updated`` state incremental exports compare: path and filters.
LISTINGS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "devices": (ENDPOINTS["devices"], (("exclude", "config_context"),)),
    "virtual_machines": (ENDPOINTS["virtual_machines"], (("exclude", "config_context"),)),
    "device_contacts": (ASSIGNMENTS, (("object_type", DEVICE_OBJECT_TYPE),)),
    "vm_contacts": (ASSIGNMENTS, (("object_type", VM_OBJECT_TYPE),)),
    "contacts": ("tenancy/contacts/", ()),
    "contact_roles": ("tenancy/contact-roles/", ()),
}
V2_TOKEN_PREFIX = "nbt_"
CONTACT_FIELDS = "id,object_type,object_id,contact,role,priority,last_updated"


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


class NetboxClient(NetboxTransport):
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
        # What ``forked_copy`` makes its copy from (the token included: the copy lives in a forked child only).
        self._made_with: dict[str, Any] = {
            "url": url,
            "token": token,
            "verify_tls": verify_tls,
            "timeout": timeout,
            "extra_headers": extra_headers,
            "retries": retries,
            "backoff": backoff,
            "page_size": page_size,
            "workers": workers,
            "retry_after_cap": retry_after_cap,
        }
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
        # Devices and VMs parsed keeping the values of these ``field:`` paths (``capture``).
        self._parse_device: Callable[[dict[str, Any]], DeviceRecord] = device_from_api
        self._parse_vm: Callable[[dict[str, Any]], VirtualMachineRecord] = virtual_machine_from_api

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def forked_copy(self) -> NetboxClient:
        """A client like this one (same NetBox, options and captured paths) with connections, locks and request
        count of its own: for a forked child process, which must not share the parent's sockets or locks (another
        thread may have held one when the process forked)."""
        copy = NetboxClient(**self._made_with)
        copy._parse_device, copy._parse_vm = self._parse_device, self._parse_vm
        return copy

    def counts(self) -> tuple[int, dict[tuple[str, str], int]]:
        """The requests sent so far and the responses not yet flushed to the metrics (for ``absorb``)."""
        with self._lock:
            return self._request_count, dict(self._responses)

    def absorb(self, counts: tuple[int, dict[tuple[str, str], int]]) -> None:
        """Count another client's requests (``counts`` of a ``forked_copy``, sent back from its process) as this
        client's: in ``request_count`` and in the metrics the next ``flush_metrics`` adds."""
        requests, responses = counts
        with self._lock:
            self._request_count += requests
            self._responses.update(responses)

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

    def count(self, kind: Kind, ids: tuple[int, int] | None = None) -> int:
        """How many objects a listing holds (one ``limit=1`` request), e.g. devices or virtual machines; ``ids``:
        only those with ``ids[0] <= id < ids[1]`` (NetBox's ``id__gte`` and ``id__lt`` lookups)."""
        path, filters = _listing(kind)
        page = self._get(path, [("limit", "1"), ("fields", "id"), *filters, *_id_range(ids)])
        return self._count_of(page, path)

    def capture(self, *, devices: Iterable[str] = (), vms: Iterable[str] = ()) -> None:
        """Keep the values at these dot paths (``device_type.slug``) of every device and VM fetched from now on, in
        the records' ``extra`` (the column set's ``field:`` columns)."""
        device_paths, vm_paths = tuple(devices), tuple(vms)
        self._parse_device = functools.partial(device_from_api, paths=device_paths) if device_paths else device_from_api
        self._parse_vm = (
            functools.partial(virtual_machine_from_api, paths=vm_paths) if vm_paths else virtual_machine_from_api
        )

    def fetch_custom_fields(self) -> list[CustomFieldRecord]:
        """Every custom field definition (``/api/extras/custom-fields/``): name, type and object types."""
        return self._walk("extras/custom-fields/", [("ordering", "id")], custom_field_from_api, record_id, None)

    # -- bulk listings -----------------------------------------------------------------------------------------

    def fetch_devices(self, progress: ProgressCallback | None = None) -> list[DeviceRecord]:
        """Every device, in id order."""
        return self._walk(ENDPOINTS["devices"], _BULK_PARAMS, self._parse_device, record_id, progress)

    def fetch_virtual_machines(self, progress: ProgressCallback | None = None) -> list[VirtualMachineRecord]:
        """Every virtual machine, in id order."""
        return self._walk(ENDPOINTS["virtual_machines"], _BULK_PARAMS, self._parse_vm, record_id, progress)

    def stream_devices(self, progress: ProgressCallback | None = None) -> Iterator[list[DeviceRecord]]:
        """Every device, a page at a time in id order, never the whole listing in memory; raises ``ListingChanged``
        after the last page when the listing changed under the walk (see ``NetboxTransport._stream``)."""
        return self._stream(ENDPOINTS["devices"], _BULK_PARAMS, self._parse_device, record_id, progress)

    def stream_virtual_machines(self, progress: ProgressCallback | None = None) -> Iterator[list[VirtualMachineRecord]]:
        """Every virtual machine, a page at a time in id order (as ``stream_devices``)."""
        return self._stream(ENDPOINTS["virtual_machines"], _BULK_PARAMS, self._parse_vm, record_id, progress)

    def fetch_sites(self, progress: ProgressCallback | None = None) -> list[SiteRecord]:
        """Every site with its region and site group (one listing instead of one lookup per device)."""
        return self._walk("dcim/sites/", [("ordering", "id")], site_from_api, record_id, progress)

    def fetch_tenants(self, progress: ProgressCallback | None = None) -> list[TenantRecord]:
        """Every tenant with its tenant group."""
        return self._walk("tenancy/tenants/", [("ordering", "id")], tenant_from_api, record_id, progress)

    def fetch_contact_assignments(
        self,
        object_type: str,
        progress: ProgressCallback | None = None,
        *,
        where: Iterable[tuple[AssignmentFilter, int]] = (),
    ) -> list[ContactAssignmentRecord]:
        """Every contact assignment for ``dcim.device`` or ``virtualization.virtualmachine`` objects, in id order;
        ``where``: only those of these contacts or roles (``("contact_id", 7)``; values of one filter are ORed,
        NetBox ANDs different filters)."""
        params = [*_assignment_params(object_type), *((name, str(value)) for name, value in where)]
        return self._walk(ASSIGNMENTS, params, contact_assignment_from_api, record_id, progress)

    def stream_contact_assignments(
        self, object_type: str, progress: ProgressCallback | None = None
    ) -> Iterator[list[ContactAssignmentRecord]]:
        """Every contact assignment for ``object_type`` objects, a page at a time in id order (as
        ``stream_devices``: ``ListingChanged`` after the last page when the listing changed under the walk)."""
        return self._stream(
            ASSIGNMENTS, _assignment_params(object_type), contact_assignment_from_api, record_id, progress
        )

    def count_contact_assignments(self, object_type: str, *, where: Iterable[tuple[AssignmentFilter, int]] = ()) -> int:
        """How many assignments ``fetch_contact_assignments`` would list (one ``limit=1`` request)."""
        object_filter = _assignment_params(object_type)[:1]
        params = [("limit", "1"), *object_filter, ("fields", "id"), *((name, str(value)) for name, value in where)]
        return self._count_of(self._get(ASSIGNMENTS, params), ASSIGNMENTS)

    def fetch_contact_assignments_by(
        self, object_type: str, field: Literal["id", "object_id"], values: Iterable[int]
    ) -> list[ContactAssignmentRecord]:
        """The assignments for ``object_type`` objects with these ids (``field="id"``) or of these objects
        (``field="object_id"``: every assignment each object has), in id order; the values in batches short
        enough for a request line, like ``fetch_devices_by_id``."""
        params = _assignment_params(object_type)
        return self._fetch_by_id(ASSIGNMENTS, values, contact_assignment_from_api, None, field=field, params=params)

    # -- change detection --------------------------------------------------------------------------------------

    def fetch_last_updated(
        self, kind: Kind, progress: ProgressCallback | None = None, ids: tuple[int, int] | None = None
    ) -> dict[int, str]:
        """``{id: last_updated}`` of every object of a listing: the cheap listing incremental exports start from;
        ``ids``: only those with ``ids[0] <= id < ids[1]``."""
        path, filters = _listing(kind)
        params = [("ordering", "id"), *filters, ("fields", "id,last_updated"), *_id_range(ids)]
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
        return self._fetch_by_id(ENDPOINTS["devices"], ids, self._parse_device, progress)

    def fetch_virtual_machines_by_id(
        self, ids: Iterable[int], progress: ProgressCallback | None = None
    ) -> list[VirtualMachineRecord]:
        """The virtual machines with these ids, in id order."""
        return self._fetch_by_id(ENDPOINTS["virtual_machines"], ids, self._parse_vm, progress)


_BULK_PARAMS: list[tuple[str, str]] = [("ordering", "id"), ("exclude", "config_context")]


def _assignment_params(object_type: str) -> tuple[tuple[str, str], ...]:
    if object_type not in (DEVICE_OBJECT_TYPE, VM_OBJECT_TYPE):
        raise ValueError(f"object_type must be {DEVICE_OBJECT_TYPE!r} or {VM_OBJECT_TYPE!r}, got {object_type!r}")
    # Only what the Contacts column needs: a third of the bytes of a full assignment.
    return (("object_type", object_type), ("ordering", "id"), ("fields", CONTACT_FIELDS))


def _id_range(ids: tuple[int, int] | None) -> list[tuple[str, str]]:
    return [] if ids is None else [("id__gte", str(ids[0])), ("id__lt", str(ids[1]))]


def _listing(kind: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    try:
        return LISTINGS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(LISTINGS)}, got {kind!r}") from None


def _id_and_last_updated(obj: dict[str, Any]) -> tuple[int, str]:
    return int(obj["id"]), str(obj.get("last_updated") or "")
