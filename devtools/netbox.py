"""A NetBox-shaped HTTP server on loopback: the test NetBox, the benchmark's NetBox and the demo NetBox.

It serves the read-only REST API paths the exporter uses, with the object shapes of a real NetBox 4.6 taken from
``shared/netbox-sample`` (every object is one of those samples or a copy of one with its id, name, addresses and
other per-object values rewritten), NetBox's paging (DRF ``LimitOffsetPagination`` with ``MAX_PAGE_SIZE``), its
filters, its token checks and its error bodies. Faults (5xx, 429 with ``Retry-After``, dropped connections,
truncated JSON, latency, a revoked token) can be injected per path so tests can prove the client copes.

Standard library only, so it runs anywhere the project runs::

    python -m devtools.netbox --port 8765 --devices 300 --vms 400 --token <40 hex>
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import json
import os
import random
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

DEFAULT_TOKEN = "0123456789abcdef0123456789abcdef01234567"
SAMPLE_HOST = "https://netbox.example.com"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50  # NetBox's PAGINATE_COUNT
API_VERSION = "4.6"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
V2_TOKEN_PREFIX = "nbt_"

# The sample objects were created around this time; generated objects get timestamps just after it.
_BASE_TIME = datetime(2026, 11, 28, 2, 24, 0, tzinfo=UTC)

# NetBox's choice sets (dcim.choices / virtualization.choices / dcim SiteStatusChoices), value -> label.
DEVICE_STATUSES = {
    "offline": "Offline",
    "active": "Active",
    "planned": "Planned",
    "staged": "Staged",
    "failed": "Failed",
    "inventory": "Inventory",
    "decommissioning": "Decommissioning",
}
VM_STATUSES = {
    "offline": "Offline",
    "active": "Active",
    "planned": "Planned",
    "staged": "Staged",
    "failed": "Failed",
    "decommissioning": "Decommissioning",
    "paused": "Paused",
}
SITE_STATUSES = {
    "planned": "Planned",
    "staging": "Staging",
    "active": "Active",
    "decommissioning": "Decommissioning",
    "retired": "Retired",
}

_NOT_PROVIDED = "Authentication credentials were not provided."


class LoggedRequest(NamedTuple):
    """One request as the server saw it (query values are lists, as ``parse_qs`` gives them)."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    headers: dict[str, str]


@dataclass
class _Fault:
    kind: str  # "fail", "drop" or "bad_json"
    path_prefix: str
    remaining: int
    status: int = 500
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    mid_body: bool = True


@dataclass
class _RenderOptions:
    fields: frozenset[str] | None
    omit: frozenset[str]
    brief: bool
    config_context: bool

    @property
    def plain(self) -> bool:
        return self.fields is None and not self.omit and not self.brief and not self.config_context


@dataclass
class _Collection:
    """One NetBox list endpoint: its objects by id, plus caches that mutations invalidate."""

    model: str  # for "No <model> matches the given query."
    path: str  # below /api/, with trailing slash
    objects: dict[int, dict[str, Any]]
    default_ordering: Callable[[dict[str, Any]], Any]
    brief_fields: tuple[str, ...]
    statuses: dict[str, str] | None = None
    has_config_context: bool = False
    # Serialising a 5 KB device costs far more than slicing a list, and the benchmark walks 50,000 objects.
    _json: dict[int, bytes] = field(default_factory=dict)
    _orderings: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    # A listing's filtered ids, by its query without limit and offset: a walk asks for the same filter once a page,
    # and filtering every object again for each page made a walk quadratic (NetBox's database uses its indexes).
    _filtered: dict[tuple[tuple[str, tuple[str, ...]], ...], list[int]] = field(default_factory=dict)
    _has_name: bool | None = None
    # What NetBox's database answers from its indexes: the ids in id order (id lists and ranges by bisection), the
    # objects in last_updated order (``last_updated__gte``), assignments by object (``object_id``), and each
    # ordering's positions (the filtered few put in the listing's order without a pass over every object). Built
    # when first asked (or at start, ``index``) and, as a database's writes keep its indexes, kept up to date object by
    # object on a change (``_reindex``), with the values each was sorted by.
    _sorted_ids: list[int] | None = None
    _by_updated: tuple[list[str], list[int]] | None = None
    _stamps: dict[int, str] = field(default_factory=dict)
    _by_object: dict[int, list[int]] | None = None
    _object_of: dict[int, int] = field(default_factory=dict)
    _default_keys: dict[int, Any] = field(default_factory=dict)
    _positions: dict[tuple[str, ...], dict[int, int]] = field(default_factory=dict)

    def changed(self, object_id: int | None = None) -> None:
        self._filtered.clear()
        self._positions.clear()
        self._has_name = None
        if object_id is None:
            self._json.clear()
            self._orderings.clear()
            self._sorted_ids = self._by_updated = self._by_object = None
            return
        self._json.pop(object_id, None)
        for key in [key for key in self._orderings if key != ()]:  # the default ordering is kept up to date
            del self._orderings[key]
        self._reindex(object_id)

    def _reindex(self, i: int) -> None:
        """Move object ``i`` (changed, added or deleted) to its place in every index built so far."""
        objects = self.objects
        # Updated in place: the lists handed out (``_filtered``, ``_positions``) were dropped with the change.
        if self._sorted_ids is not None:
            ids = self._sorted_ids
            at = bisect.bisect_left(ids, i)
            had = at < len(ids) and ids[at] == i
            if had and i not in objects:
                del ids[at]
            elif not had and i in objects:
                ids.insert(at, i)
        if self._by_updated is not None:
            stamps, ids = self._by_updated
            _replace(stamps, ids, i, self._stamps, objects[i]["last_updated"] if i in objects else None)
        if self._by_object is not None:
            old = self._object_of.pop(i, None)
            if old is not None:
                self._by_object[old] = [j for j in self._by_object[old] if j != i]
            if i in objects:
                self._object_of[i] = objects[i]["object_id"]
                self._by_object.setdefault(self._object_of[i], []).append(i)
        if () in self._orderings:
            keys = self._default_keys
            new = self.default_ordering(objects[i]) if i in objects else None
            if not (i in keys and new == keys[i]):
                _replace_ordered(self._orderings[()], i, keys, new)

    def ordered_ids(self, ordering: list[str]) -> list[int]:
        """Ids in the requested order; unknown ordering fields are ignored, as DRF's OrderingFilter does."""
        key = self._ordering_key(ordering)
        if key == ("id",):
            return self.sorted_ids()
        cached = self._orderings.get(key)
        if cached is not None:
            return cached
        valid = list(key)
        ids = sorted(self.objects)
        if not valid:
            self._default_keys = {i: self.default_ordering(obj) for i, obj in self.objects.items()}
            ids.sort(key=self._default_keys.__getitem__)
        else:
            # Stable sorts from the last field to the first give a multi-field order; ties stay in id order.
            for name in reversed(valid):
                attr = name.lstrip("-")
                ids.sort(
                    key=(lambda i: self.objects[i].get("name") or "") if attr == "name" else None,
                    reverse=name.startswith("-"),
                )
        self._orderings[key] = ids
        return ids

    def index(self) -> None:
        """Build the indexes now, as a database has them before its first query."""
        self.sorted_ids()
        self.ordered_ids([])
        if all(isinstance(obj.get("last_updated"), str) for obj in self.objects.values()):
            self.updated_since("")
        if self.model == "ContactAssignment":
            self.by_object()

    def _ordering_key(self, ordering: list[str]) -> tuple[str, ...]:
        if self._has_name is None:
            self._has_name = any("name" in obj for obj in self.objects.values())
        return tuple(f for f in ordering if f.lstrip("-") == "id" or (f.lstrip("-") == "name" and self._has_name))

    def in_order(self, ordering: list[str], ids: Iterable[int]) -> list[int]:
        """``ids`` (of existing objects) in the order ``ordered_ids(ordering)`` gives them."""
        key = self._ordering_key(ordering)
        if key == ("id",):
            return sorted(ids)
        positions = self._positions.get(key)
        if positions is None:
            positions = self._positions[key] = {i: n for n, i in enumerate(self.ordered_ids(ordering))}
        return sorted(ids, key=positions.__getitem__)

    def sorted_ids(self) -> list[int]:
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.objects)
        return self._sorted_ids

    def id_range(self, low: int | None, high: int | None) -> list[int]:
        """The ids ``low <= id < high`` in id order (``None``: unbounded)."""
        ids = self.sorted_ids()
        start = 0 if low is None else bisect.bisect_left(ids, low)
        stop = len(ids) if high is None else bisect.bisect_left(ids, high)
        return ids[start:stop]

    def by_object(self) -> dict[int, list[int]]:
        """Contact assignments: their ids by ``object_id``."""
        if self._by_object is None:
            self._by_object = {}
            self._object_of = {object_id: obj["object_id"] for object_id, obj in self.objects.items()}
            for object_id, holder in self._object_of.items():
                self._by_object.setdefault(holder, []).append(object_id)
        return self._by_object

    def updated_since(self, since: str) -> list[int]:
        """The ids of the objects whose ``last_updated`` is ``since`` or later (as text: NetBox's fixed format
        sorts like the times it names)."""
        if self._by_updated is None:
            self._stamps = {object_id: obj["last_updated"] for object_id, obj in self.objects.items()}
            pairs = sorted((stamp, object_id) for object_id, stamp in self._stamps.items())
            self._by_updated = ([stamp for stamp, _ in pairs], [object_id for _, object_id in pairs])
        stamps, ids = self._by_updated
        return ids[bisect.bisect_left(stamps, since) :]

    def filtered(self, key: tuple[tuple[str, tuple[str, ...]], ...], compute: Callable[[], list[int]]) -> list[int]:
        cached = self._filtered.get(key)
        if cached is None:
            if len(self._filtered) >= 256:  # one-off filters (id ranges, id lists) must not pile up
                self._filtered.clear()
            cached = self._filtered[key] = compute()
        return cached

    def json_of(self, object_id: int) -> bytes:
        cached = self._json.get(object_id)
        if cached is None:
            cached = self._json[object_id] = _dumps(self.objects[object_id])
        return cached


def _replace(stamps: list[str], ids: list[int], object_id: int, known: dict[int, str], stamp: str | None) -> None:
    """Move ``object_id`` in the parallel lists sorted by ``(stamp, id)`` from its ``known`` stamp to ``stamp``
    (``None``: remove it)."""
    old = known.pop(object_id, None)
    if old is not None:
        at = bisect.bisect_left(stamps, old)
        while ids[at] != object_id:
            at += 1
        del stamps[at], ids[at]
    if stamp is not None:
        at = bisect.bisect_left(stamps, stamp)
        while at < len(stamps) and stamps[at] == stamp and ids[at] < object_id:
            at += 1
        stamps.insert(at, stamp)
        ids.insert(at, object_id)
        known[object_id] = stamp


def _replace_ordered(ids: list[int], object_id: int, keys: dict[int, Any], key: Any) -> None:
    """Move ``object_id`` in ``ids`` (sorted by ``(keys[id], id)``) to its new ``key`` (``None``: remove it)."""
    if object_id in keys:
        at = bisect.bisect_left(ids, (keys[object_id], object_id), key=lambda i: (keys[i], i))
        del ids[at]
        del keys[object_id]
    if key is not None:
        at = bisect.bisect_left(ids, (key, object_id), key=lambda i: (keys[i], i))
        ids.insert(at, object_id)
        keys[object_id] = key


class _FilterError(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _dumps(data: Any) -> bytes:
    """JSON as DRF's JSONRenderer writes it: compact, UTF-8, with U+2028/2029 escaped."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def _referenced(assignments: dict[int, dict[str, Any]], key: str) -> dict[int, dict[str, Any]]:
    """The contacts or roles the assignments refer to, as listing objects: the nested fields plus timestamps
    (those of the first assignment that uses them)."""
    objects: dict[int, dict[str, Any]] = {}
    for assignment in assignments.values():
        nested = assignment.get(key)
        if nested and nested["id"] not in objects:
            objects[nested["id"]] = {
                **nested,
                "created": assignment["created"],
                "last_updated": assignment["created"],
            }
    return objects


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def _parse_timestamp(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip().replace(" ", "T"))
    if moment.tzinfo is None:
        # NetBox's TIME_ZONE defaults to UTC; naive filter values are read in it.
        moment = moment.replace(tzinfo=UTC)
    return moment


def sample_dir() -> Path:
    """Where the NetBox API samples live: ``$NETBOX_SAMPLE_DIR``, ``netbox_samples/`` next to this module, or the
    shared ``netbox-sample`` folder beside the repository."""
    candidates = []
    if os.environ.get("NETBOX_SAMPLE_DIR"):
        candidates.append(Path(os.environ["NETBOX_SAMPLE_DIR"]))
    here = Path(__file__).resolve()
    candidates += [here.parent / "netbox_samples", here.parents[2] / "shared" / "netbox-sample"]
    for candidate in candidates:
        if (candidate / "devices_page.json").is_file():
            return candidate
    raise FileNotFoundError(
        "NetBox API samples not found; set NETBOX_SAMPLE_DIR (looked in: " + ", ".join(map(str, candidates)) + ")"
    )


@functools.cache
def _sample_text(name: str) -> str:
    return (sample_dir() / name).read_text(encoding="utf-8")


class FakeNetbox:
    """A NetBox 4.6 REST API on loopback, serving generated devices and VMs built from the real samples.

    Usage::

        with FakeNetbox(devices=50, vms=80) as netbox:
            client = NetboxClient(url=netbox.url, token=netbox.token)

    Objects live in ``devices`` / ``vms`` (lists of the live dicts). Change them through ``update_device`` and
    friends, which keep ``last_updated`` and the serialisation caches right; after editing a dict in place, call
    ``invalidate()``.
    """

    def __init__(
        self,
        devices: int = 50,
        vms: int = 80,
        token: str = DEFAULT_TOKEN,
        seed: int = 1,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.device_total = devices
        self.vm_total = vms
        self.token = token
        self.seed = seed
        self.host = host
        self.port = port
        self.latency = 0.0
        # Seconds of server time per object listed, slept outside the lock (concurrent requests overlap, as on
        # a NetBox with several workers): to imitate the serialisation time of a real NetBox.
        self.seconds_per_object = 0.0
        self._lock = threading.RLock()
        self._log: list[LoggedRequest] = []
        self._stats: dict[str, int] = {}
        self._faults: list[_Fault] = []
        self._in_flight = 0
        self._gather: threading.Barrier | None = None
        self._gather_left = 0
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url = ""
        self._collections: dict[str, _Collection] = {}
        self._clock = ""
        self._next_ids: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, build the data (its URLs need the bound address) and serve in a daemon thread."""
        if self._server is not None:
            return self._url
        if self._url:
            raise RuntimeError("a stopped FakeNetbox cannot be restarted; its objects carry the old address")
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        bound_host, bound_port = server.server_address[:2]
        host = bound_host.decode() if isinstance(bound_host, bytes) else bound_host
        self._url = f"http://{host}:{bound_port}"
        self._build()
        self._server = server
        # A short poll interval keeps stop() (and so every test fixture's teardown) quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-netbox", daemon=True
        )
        self._thread.start()
        return self._url

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections so clients cannot keep talking to a stopped server."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeNetbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (no ``/api``)."""
        if not self._url:
            raise RuntimeError("FakeNetbox is not started")
        return self._url

    # -- data access and mutations -----------------------------------------------------------------------------

    @property
    def devices(self) -> list[dict[str, Any]]:
        """The live device dicts in id order."""
        return self._live("devices")

    @property
    def vms(self) -> list[dict[str, Any]]:
        """The live virtual machine dicts in id order."""
        return self._live("vms")

    @property
    def contact_assignments(self) -> list[dict[str, Any]]:
        """The live contact assignment dicts in id order."""
        return self._live("contact_assignments")

    @property
    def tenants(self) -> list[dict[str, Any]]:
        """The live tenant dicts in id order."""
        return self._live("tenants")

    def rename(self, kind: str, object_id: int, name: str) -> None:
        """Rename a site, tenant, contact or contact role (``kind`` "sites", "tenants", "contacts",
        "contact_roles") as NetBox does: the object's own ``last_updated`` moves, its listing and every nested
        reference show the new name, but no device's, VM's or assignment's ``last_updated`` changes."""
        key, holders = {
            "sites": ("site", ("devices", "vms")),
            "tenants": ("tenant", ("devices", "vms")),
            "contacts": ("contact", ("contact_assignments",)),
            "contact_roles": ("role", ("contact_assignments",)),
        }[kind]
        with self._lock:
            target = self._collection(kind).objects[object_id]
            target["name"] = target["display"] = name
            target["last_updated"] = self._tick()
            for collection in holders:
                for obj in self._collection(collection).objects.values():
                    nested = obj.get(key)
                    if nested and nested.get("id") == object_id:
                        obj[key] = {**nested, "name": name, "display": name}
            self.invalidate()

    def invalidate(self) -> None:
        """Forget cached JSON and orderings after objects were edited in place."""
        with self._lock:
            for collection in self._collections.values():
                collection.changed()

    def update_device(self, device_id: int, **fields: Any) -> dict[str, Any]:
        """Merge top-level fields into a device and bump its ``last_updated``; returns the device."""
        return self._update("devices", device_id, fields)

    def update_vm(self, vm_id: int, **fields: Any) -> dict[str, Any]:
        """Merge top-level fields into a virtual machine and bump its ``last_updated``; returns the VM."""
        return self._update("vms", vm_id, fields)

    def add_device(self, **fields: Any) -> int:
        """Create a device (a generated one, with ``fields`` merged in); returns its id."""
        return self._add("devices", fields)

    def add_vm(self, **fields: Any) -> int:
        """Create a virtual machine (a generated one, with ``fields`` merged in); returns its id."""
        return self._add("vms", fields)

    def add_contact_assignment(self, object_type: str, object_id: int, contact_id: int, role_id: int) -> int:
        """Assign an existing contact with an existing role to a device or VM; returns the assignment's id."""
        with self._lock:
            assignments = self._collection("contact_assignments")
            template = assignments.objects[min(assignments.objects)]
            target = self._collection("devices" if object_type == "dcim.device" else "vms").objects[object_id]
            contact = self._collection("contacts").objects[contact_id]
            role = self._collection("contact_roles").objects[role_id]
            assignment_id = self._next_ids["contact_assignments"]
            self._next_ids["contact_assignments"] += 1
            assignment = {
                **template,
                "id": assignment_id,
                "url": f"{self._url}/api/tenancy/contact-assignments/{assignment_id}/",
                "display": f"{contact['name']} ({template['priority']['label']}) -> {target['display']}",
                "object_type": object_type,
                "object_id": object_id,
                "object": {key: target.get(key) for key in template["object"]},
                "contact": {key: contact[key] for key in template["contact"]},
                "role": {key: role[key] for key in template["role"]},
            }
            assignment["created"] = assignment["last_updated"] = self._tick()
            assignments.objects[assignment_id] = assignment
            assignments.changed(assignment_id)
            return assignment_id

    def update_contact_assignment(
        self, assignment_id: int, *, object_id: int | None = None, priority: str | None = None
    ) -> dict[str, Any]:
        """Move an assignment to another object of its type, or give it another priority (``"secondary"``), as an
        edit in NetBox does: the assignment's ``last_updated`` moves, the objects' do not."""
        fields: dict[str, Any] = {}
        with self._lock:
            assignment = self._collection("contact_assignments").objects[assignment_id]
            if object_id is not None:
                holder = "devices" if assignment["object_type"] == "dcim.device" else "vms"
                target = self._collection(holder).objects[object_id]
                fields["object_id"] = object_id
                fields["object"] = {key: target.get(key) for key in assignment["object"]}
            if priority is not None:
                fields["priority"] = {"value": priority, "label": priority.capitalize()}
        return self._update("contact_assignments", assignment_id, fields)

    def delete_contact_assignment(self, assignment_id: int) -> None:
        """Remove a contact assignment."""
        with self._lock:
            assignments = self._collection("contact_assignments")
            del assignments.objects[assignment_id]
            assignments.changed(assignment_id)

    def delete_device(self, device_id: int) -> None:
        """Delete a device and, as NetBox cascades, its contact assignments."""
        self._delete("devices", device_id, "dcim.device")

    def delete_vm(self, vm_id: int) -> None:
        """Delete a virtual machine and its contact assignments."""
        self._delete("vms", vm_id, "virtualization.virtualmachine")

    def delete_custom_field(self, name: str) -> None:
        """Delete a custom field definition and, as NetBox does (a queryset update: no object's ``last_updated``
        moves), its value from every object."""
        with self._lock:
            fields = self._collection("custom_fields")
            for field_id in [i for i, o in fields.objects.items() if o["name"] == name]:
                del fields.objects[field_id]
            fields.changed()
            for collection_name in ("devices", "vms"):
                collection = self._collection(collection_name)
                for object_id, obj in collection.objects.items():
                    if name in (obj.get("custom_fields") or {}):
                        del obj["custom_fields"][name]
                        collection.changed(object_id)

    # -- fault injection -----------------------------------------------------------------------------------------

    def fail(
        self,
        path_prefix: str,
        status: int = 500,
        times: int = 1,
        retry_after: float | str | None = None,
        body: bytes | str | dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` requests under ``path_prefix`` with ``status`` (before authentication)."""
        if body is None:
            if status == 429:
                wait = retry_after if retry_after is not None else 1
                unit = "second" if str(wait) == "1" else "seconds"
                body = {"detail": f"Request was throttled. Expected available in {wait} {unit}."}
            elif status in (401, 403):
                body = {"detail": _NOT_PROVIDED}
            else:
                body = f"<h1>Server Error ({status})</h1>"
        if isinstance(body, dict):
            payload, content_type = _dumps(body), "application/json"
        elif isinstance(body, str):
            payload = body.encode()
            content_type = "application/json" if body.lstrip().startswith(("{", "[")) else "text/html; charset=utf-8"
        else:
            payload, content_type = body, "application/octet-stream"
        fault = _Fault(
            "fail",
            path_prefix,
            times,
            status=status,
            retry_after=None if retry_after is None else str(retry_after),
            body=payload,
            content_type=content_type,
        )
        with self._lock:
            self._faults.append(fault)

    def drop_connection(self, path_prefix: str, times: int = 1, mid_body: bool = True) -> None:
        """Cut the connection of the next ``times`` requests: after the headers and half the body, or (with
        ``mid_body=False``) before answering at all."""
        with self._lock:
            self._faults.append(_Fault("drop", path_prefix, times, mid_body=mid_body))

    def bad_json(self, path_prefix: str, times: int = 1) -> None:
        """Answer the next ``times`` requests with a 200 whose JSON body is cut in half."""
        with self._lock:
            self._faults.append(_Fault("bad_json", path_prefix, times))

    def gather_pages(self, pages: int, timeout: float = 10.0) -> None:
        """Hold each of the next ``pages`` page requests beyond the first (those with an ``offset``) until that many
        are in flight at once, or ``timeout`` passes (counted as ``gather_timeouts``): proves a client sends them
        concurrently without timing it."""
        with self._lock:
            self._gather, self._gather_left = threading.Barrier(pages, timeout=timeout), pages

    def revoke_token(self) -> None:
        """Make every token invalid, as deleting it in NetBox would (set ``token`` again to restore one)."""
        self.token = ""

    def clear_faults(self) -> None:
        """Drop pending faults."""
        with self._lock:
            self._faults.clear()

    # -- request log -------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request received since the last ``reset_log()``, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: requests, list_requests, detail_requests, objects_served, config_context_renders,
        auth_failures, faults, bytes_sent, and max_in_flight (the most requests answered at once)."""
        with self._lock:
            return dict(self._stats)

    def reset_log(self) -> None:
        """Clear the request log and the counters."""
        with self._lock:
            self._log.clear()
            self._stats.clear()

    # -- internals: data ---------------------------------------------------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        self._stats[name] = self._stats.get(name, 0) + amount

    def _live(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            if name not in self._collections:
                raise RuntimeError("FakeNetbox is not started; its data is built on start()")
            collection = self._collections[name]
            return [collection.objects[i] for i in sorted(collection.objects)]

    def _collection(self, name: str) -> _Collection:
        if name not in self._collections:
            raise RuntimeError("FakeNetbox is not started; its data is built on start()")
        return self._collections[name]

    def _tick(self) -> str:
        """A timestamp later than every one handed out so far (NetBox uses the wall clock; tests need order)."""
        previous = _parse_timestamp(self._clock) if self._clock else _BASE_TIME
        moment = max(datetime.now(UTC), previous + timedelta(microseconds=1))
        self._clock = _timestamp(moment)
        return self._clock

    def _update(self, name: str, object_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            collection = self._collection(name)
            obj = collection.objects[object_id]
            obj.update(fields)
            if "name" in fields and "display" not in fields:
                obj["display"] = _device_display(obj) if name == "devices" else obj["name"]
            if "last_updated" in fields:
                obj["last_updated"] = _timestamp(_parse_timestamp(fields["last_updated"]))
                self._clock = max(self._clock, obj["last_updated"])
            else:
                obj["last_updated"] = self._tick()
            collection.changed(object_id)
            return obj

    def _add(self, name: str, fields: dict[str, Any]) -> int:
        with self._lock:
            collection = self._collection(name)
            object_id = self._next_ids[name]
            self._next_ids[name] += 1
            builder = _Builder(self._url, random.Random(self.seed * 1_000_003 + object_id))
            devices = self._collections["devices"].objects
            if name == "devices":
                obj = builder.device(object_id)
            else:
                obj = builder.vm(object_id, builder.hypervisors(devices))
            obj["created"] = obj["last_updated"] = self._tick()
            obj.update(fields)
            collection.objects[object_id] = obj
            collection.changed(object_id)
            return object_id

    def _delete(self, name: str, object_id: int, object_type: str) -> None:
        with self._lock:
            collection = self._collection(name)
            del collection.objects[object_id]
            collection.changed(object_id)
            assignments = self._collections["contact_assignments"]
            doomed = [
                i
                for i, a in assignments.objects.items()
                if a["object_type"] == object_type and a["object_id"] == object_id
            ]
            for i in doomed:
                del assignments.objects[i]
                assignments.changed(i)

    def _build(self) -> None:
        builder = _Builder(self._url, random.Random(self.seed))
        devices = builder.devices(self.device_total)
        vms = builder.vms(self.vm_total, devices)
        assignments = builder.contact_assignments(devices, vms)

        def by_name(obj: dict[str, Any]) -> tuple[str, int]:
            return (obj.get("name") or "", obj["id"])

        def by_id(obj: dict[str, Any]) -> int:
            return int(obj["id"])

        def custom_field_order(obj: dict[str, Any]) -> tuple[str, int, str]:
            return (obj["group_name"], obj["weight"], obj["name"])

        brief = ("id", "url", "display", "name", "description")
        self._collections = {
            "devices": _Collection(
                "Device", "dcim/devices/", devices, by_name, brief, DEVICE_STATUSES, has_config_context=True
            ),
            "vms": _Collection(
                "VirtualMachine",
                "virtualization/virtual-machines/",
                vms,
                by_name,
                brief,
                VM_STATUSES,
                has_config_context=True,
            ),
            "contact_assignments": _Collection(
                "ContactAssignment",
                "tenancy/contact-assignments/",
                assignments,
                by_id,
                ("id", "url", "display", "contact", "role", "priority"),
            ),
            # NetBox's contacts and contact roles carry more fields (group, title, email, ...); the sample shows them
            # nested in assignments, so they are served with those fields plus their timestamps.
            "contacts": _Collection(
                "Contact", "tenancy/contacts/", _referenced(assignments, "contact"), by_name, brief
            ),
            "contact_roles": _Collection(
                "ContactRole",
                "tenancy/contact-roles/",
                _referenced(assignments, "role"),
                by_name,
                ("id", "url", "display", "name", "slug", "description"),
            ),
            "sites": _Collection(
                "Site",
                "dcim/sites/",
                {o["id"]: o for o in builder.page("sites_page.json")},
                by_name,
                ("id", "url", "display", "name", "slug", "description"),
                SITE_STATUSES,
            ),
            "tenants": _Collection(
                "Tenant",
                "tenancy/tenants/",
                {o["id"]: o for o in builder.page("tenants_page.json")},
                by_name,
                ("id", "url", "display", "name", "slug", "description"),
            ),
            "custom_fields": _Collection(
                "CustomField",
                "extras/custom-fields/",
                {o["id"]: o for o in builder.page("custom_fields.json")},
                custom_field_order,
                ("id", "url", "display", "name", "description"),
            ),
        }
        self._config_context = builder.config_context
        self._status = builder.sample("status.json")
        # Serialise devices and VMs now, so the first walk over them is as fast as every later one.
        for name in ("devices", "vms"):
            collection = self._collections[name]
            for object_id in collection.objects:
                collection.json_of(object_id)
        for collection in self._collections.values():
            collection.index()
        self._next_ids = {name: max(c.objects, default=0) + 1 for name, c in self._collections.items()}
        self._clock = max(
            (o["last_updated"] for c in self._collections.values() for o in c.objects.values()), default=""
        )

    # -- internals: HTTP ---------------------------------------------------------------------------------------

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix) and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    self._count("faults")
                    return fault
        return None

    def _handle(self, handler: _Handler) -> None:
        with self._lock:
            self._in_flight += 1
            self._stats["max_in_flight"] = max(self._stats.get("max_in_flight", 0), self._in_flight)
        try:
            self._answer(handler)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: _Handler) -> None:
        with self._lock:
            barrier = self._gather if self._gather_left > 0 and "offset=" in handler.path else None
            if barrier is not None:
                self._gather_left -= 1
        if barrier is not None:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                with self._lock:
                    self._count("gather_timeouts")
        if self.latency:
            time.sleep(self.latency)
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        authorization = handler.headers.get("Authorization")
        with self._lock:
            self._log.append(
                LoggedRequest(handler.command, parts.path, query, authorization, dict(handler.headers.items()))
            )
            self._count("requests")
        fault = self._take_fault(parts.path)
        if fault is not None and fault.kind == "fail":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._send(handler, fault.status, fault.body or b"", fault.content_type, headers)
            return
        if handler.command != "GET":
            status, body, headers = 405, _dumps({"detail": f'Method "{handler.command}" not allowed.'}), {}
        else:
            try:
                status, body, headers = self._respond(parts.path, parts.query, query, authorization)
            except Exception as exc:  # a bug here must still answer, as NetBox's 500 handler does
                error = {"error": "Server Error", "exception": f"{type(exc).__name__}: {exc}"}
                status, body, headers = 500, _dumps(error), {}
        if fault is not None and fault.kind == "drop":
            self._drop(handler, status, body, fault.mid_body)
            return
        if fault is not None and fault.kind == "bad_json":
            body = body[: max(1, len(body) // 2)]
        content_type = headers.pop("Content-Type", "application/json")
        self._send(handler, status, body, content_type, headers)

    def _send(self, handler: _Handler, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("API-Version", API_VERSION)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
        with self._lock:
            self._count("bytes_sent", len(body))

    def _drop(self, handler: _Handler, status: int, body: bytes, mid_body: bool) -> None:
        if mid_body:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    def _auth_error(self, authorization: str | None) -> str | None:
        """NetBox 4.5+'s TokenAuthentication: the token's version follows from its ``nbt_`` prefix, not from the
        ``Token``/``Bearer`` keyword; an unknown keyword is ignored (so the request is anonymous)."""
        parts = (authorization or "").split()
        if not parts or parts[0].lower() not in ("token", "bearer"):
            return _NOT_PROVIDED
        if len(parts) != 2:
            return 'Invalid authorization header: Must be in the form "Bearer <key>.<token>" or "Token <token>"'
        value = parts[1]
        version = 2 if value.startswith(V2_TOKEN_PREFIX) else 1
        if version == 2 and "." not in value[len(V2_TOKEN_PREFIX) :]:
            return (
                "Invalid authorization header: Could not parse key from v2 token. Did you mean to use 'Token' "
                "instead of 'Bearer'?"
            )
        if not self.token or value != self.token:
            return f"Invalid v{version} token"
        return None

    def _respond(
        self, path: str, raw_query: str, query: dict[str, list[str]], authorization: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        if not path.startswith("/api"):
            return 404, b"<h1>Not Found</h1>", {"Content-Type": "text/html; charset=utf-8"}
        if not path.endswith("/"):
            # Django's APPEND_SLASH answers before any view (and so before authentication) runs.
            location = self._url + path + "/" + (f"?{raw_query}" if raw_query else "")
            return 301, b"", {"Location": location, "Content-Type": "text/html; charset=utf-8"}
        error = self._auth_error(authorization)
        if error is not None:
            with self._lock:
                self._count("auth_failures")
            return 403, _dumps({"detail": error}), {}
        rest = path[len("/api/") :]
        if rest == "":
            apps = (
                "circuits",
                "core",
                "dcim",
                "extras",
                "ipam",
                "plugins",
                "status",
                "tenancy",
                "users",
                "virtualization",
                "vpn",
                "wireless",
            )
            return 200, _dumps({app: f"{self._url}/api/{app}/" for app in apps}), {}
        if rest == "status/":
            return 200, _dumps(self._status), {}
        for collection in self._collections.values():
            if rest == collection.path:
                return self._list(collection, path, query)
            if rest.startswith(collection.path):
                match = re.fullmatch(r"(\d+)/", rest[len(collection.path) :])
                if match:
                    return self._detail(collection, int(match.group(1)), query)
        return 404, _dumps({"detail": "Not found."}), {}

    def _options(self, collection: _Collection, query: dict[str, list[str]]) -> _RenderOptions:
        def listed(name: str) -> frozenset[str]:
            return frozenset(f.strip() for value in query.get(name, []) for f in value.split(",") if f.strip())

        fields = listed("fields") or None
        brief_value = (query.get("brief") or [""])[-1]
        config_context = collection.has_config_context and "config_context" not in listed("exclude")
        return _RenderOptions(
            fields=fields,
            omit=listed("omit"),
            brief=brief_value.lower() not in ("", "0", "false"),
            config_context=config_context,
        )

    def _render(self, collection: _Collection, object_id: int, options: _RenderOptions) -> bytes:
        if options.plain:
            return collection.json_of(object_id)
        obj = collection.objects[object_id]
        if options.brief and options.fields is None:
            data = {key: obj[key] for key in collection.brief_fields if key in obj}
        else:
            data = obj
            if options.config_context and (options.fields is None or "config_context" in options.fields):
                data = _with_config_context(obj, self._config_context)
            if options.fields is not None:
                # Dynamic fields keep the serializer's field order, whatever order they were asked in.
                data = {key: value for key, value in data.items() if key in options.fields}
        if options.omit:
            data = {key: value for key, value in data.items() if key not in options.omit}
        return _dumps(data)

    def _count_rendered(self, collection: _Collection, options: _RenderOptions, rendered: int, kind: str) -> None:
        self._count(kind)
        self._count("objects_served", rendered)
        # NetBox annotates config context data unless ?exclude=config_context, whatever fields= asks for.
        if options.config_context and not options.brief:
            self._count("config_context_renders", rendered)

    def _filter(self, collection: _Collection, ordering: list[str], query: dict[str, list[str]]) -> list[int]:
        errors: dict[str, list[str]] = {}
        objects = collection.objects

        def numbers(name: str, values: Iterable[str]) -> set[int] | None:
            try:
                return {int(v) for v in values if v.strip()}
            except ValueError:
                errors[name] = ["Enter a number."]
                return None

        id_values = numbers("id", query.get("id", []))
        # NetBox's lookups on a number field: id__gte=10&id__lt=20 (each the last value given).
        bounds = {
            lookup: numbers(f"id__{lookup}", query[f"id__{lookup}"][-1:])
            for lookup in ("gt", "gte", "lt", "lte")
            if f"id__{lookup}" in query
        }
        id_in = numbers("id__in", (v for value in query.get("id__in", []) for v in value.split(",")))
        statuses = [v for v in query.get("status", []) if v]
        if collection.statuses is not None:
            for value in statuses:
                if value not in collection.statuses:
                    errors["status"] = [f"Select a valid choice. {value} is not one of the available choices."]
                    break
        since = None
        if query.get("last_updated__gte", [""])[-1]:
            try:
                since = _timestamp(_parse_timestamp(query["last_updated__gte"][-1]))
            except ValueError:
                errors["last_updated__gte"] = ["Enter a valid date/time."]
        object_ids = (
            numbers("object_id", query.get("object_id", [])) if collection.model == "ContactAssignment" else None
        )
        # NetBox's contact_id and role_id: model choice filters, several values ORed; an id that names no contact
        # (role) is a 400, as for any model choice.
        referenced: dict[str, set[int]] = {}
        if collection.model == "ContactAssignment":
            for name, holder in (("contact_id", "contacts"), ("role_id", "contact_roles")):
                values = numbers(name, query.get(name, []))
                known = self._collections[holder].objects
                for number in sorted(values or ()):
                    if number not in known:
                        errors[name] = [f"Select a valid choice. {number} is not one of the available choices."]
                        break
                if values:
                    referenced[name[: -len("_id")]] = values
        if errors:
            raise _FilterError(errors)

        # The lookups a database answers from an index narrow the objects first (``candidates``; ``None``: every
        # object), and only the few left are put in the listing's order and tested for the rest.
        found: list[set[int]] = []
        if "id" in query and id_values:
            found.append(id_values & objects.keys())
        if "id__in" in query and id_in:
            found.append(id_in & objects.keys())
        # Ids are whole numbers: the bounds make one half-open range [low, high) (``None``: unbounded).
        low: int | None = None
        high: int | None = None
        for lookup, values in bounds.items():
            for bound in values or ():
                if lookup in ("gt", "gte"):
                    start = bound + 1 if lookup == "gt" else bound
                    low = start if low is None else max(low, start)
                else:
                    stop = bound + 1 if lookup == "lte" else bound
                    high = stop if high is None else min(high, stop)
        bounded = low is not None or high is not None
        if since is not None:
            found.append(set(collection.updated_since(since)))
        if collection.model == "ContactAssignment" and object_ids:
            by_object = collection.by_object()
            found.append({i for object_id in object_ids for i in by_object.get(object_id, ())})
        candidates = set.intersection(*found) if found else None
        if candidates is None and not bounded:
            ids = collection.ordered_ids(ordering)
        elif candidates is None:
            ids = collection.in_order(ordering, collection.id_range(low, high))
        else:
            ids = collection.in_order(ordering, candidates)
        if bounded and candidates is not None:
            ids = [i for i in ids if (low is None or low <= i) and (high is None or i < high)]
        if statuses and collection.statuses is not None:
            wanted = set(statuses)
            ids = [i for i in ids if (objects[i].get("status") or {}).get("value") in wanted]
        if collection.model == "ContactAssignment":
            object_type = query.get("object_type", [""])[-1]
            if object_type:
                ids = [i for i in ids if objects[i]["object_type"] == object_type.lower()]
            for key, values in referenced.items():
                ids = [i for i in ids if (objects[i].get(key) or {}).get("id") in values]
        return ids

    def _list(
        self, collection: _Collection, path: str, query: dict[str, list[str]]
    ) -> tuple[int, bytes, dict[str, str]]:
        ordering = [f.strip() for value in query.get("ordering", []) for f in value.split(",") if f.strip()]
        options = self._options(collection, query)
        limit = _limit(query)
        offset = _offset(query)
        with self._lock:
            asked = sorted((name, tuple(values)) for name, values in query.items() if name not in ("limit", "offset"))
            try:
                ids = collection.filtered(
                    (("ordering", tuple(ordering)), *asked),
                    lambda: self._filter(collection, ordering, query),
                )
            except _FilterError as exc:
                return 400, _dumps(exc.errors), {}
            count = len(ids)
            page = ids[offset : offset + limit] if count and offset <= count else []
            results = b",".join(self._render(collection, i, options) for i in page)
            self._count_rendered(collection, options, len(page), "list_requests")
        if self.seconds_per_object:
            time.sleep(len(page) * self.seconds_per_object)
        next_link = previous_link = None
        if offset + limit < count:
            next_link = self._link(path, query, limit=limit, offset=offset + limit)
        if offset > 0:
            previous_link = self._link(path, query, limit=limit, offset=offset - limit if offset > limit else None)
        body = b"".join(
            (
                b'{"count":',
                str(count).encode(),
                b',"next":',
                _dumps(next_link),
                b',"previous":',
                _dumps(previous_link),
                b',"results":[',
                results,
                b"]}",
            )
        )
        return 200, body, {}

    def _detail(
        self, collection: _Collection, object_id: int, query: dict[str, list[str]]
    ) -> tuple[int, bytes, dict[str, str]]:
        options = self._options(collection, query)
        with self._lock:
            if object_id not in collection.objects:
                return 404, _dumps({"detail": f"No {collection.model} matches the given query."}), {}
            body = self._render(collection, object_id, options)
            self._count_rendered(collection, options, 1, "detail_requests")
        return 200, body, {}

    def _link(self, path: str, query: dict[str, list[str]], *, limit: int, offset: int | None) -> str:
        """DRF's replace_query_param/remove_query_param: every parameter kept, sorted by key, urlencoded."""
        params = dict(query)
        params["limit"] = [str(limit)]
        if offset is None:
            params.pop("offset", None)
        else:
            params["offset"] = [str(offset)]
        return f"{self._url}{path}?{urlencode(sorted(params.items()), doseq=True)}"


def _limit(query: dict[str, list[str]]) -> int:
    """NetBox's OptionalLimitOffsetPagination.get_limit: 0 means MAX_PAGE_SIZE, larger values are clamped."""
    try:
        limit = int(query["limit"][-1])
    except (KeyError, ValueError, IndexError):
        return DEFAULT_PAGE_SIZE
    if limit < 0:
        return DEFAULT_PAGE_SIZE
    return MAX_PAGE_SIZE if limit == 0 else min(limit, MAX_PAGE_SIZE)


def _offset(query: dict[str, list[str]]) -> int:
    try:
        offset = int(query["offset"][-1])
    except (KeyError, ValueError, IndexError):
        return 0
    return max(offset, 0)


def _with_config_context(obj: dict[str, Any], config_context: Any) -> dict[str, Any]:
    """The object as DeviceWithConfigContextSerializer orders it: ``config_context`` after ``config_template``."""
    data: dict[str, Any] = {}
    for key, value in obj.items():
        data[key] = value
        if key == "config_template":
            data["config_context"] = config_context
    data.setdefault("config_context", config_context)
    return data


def _device_display(device: dict[str, Any]) -> str:
    """Device.__str__: the name, with the asset tag in brackets when there is one."""
    name = device.get("name") or ""
    return f"{name} ({device['asset_tag']})" if device.get("asset_tag") else name


class _Builder:
    """Generates NetBox objects by copying the sample objects and rewriting their per-object values."""

    def __init__(self, base_url: str, rng: random.Random) -> None:
        self.base = base_url
        self.rng = rng
        device_samples = self.page("devices_page.json")
        vm_samples = self.page("virtual_machines_page.json")
        self.device_samples = device_samples
        self.vm_samples = vm_samples
        self.config_context = self.sample("device_detail_with_config_context.json")["config_context"]
        self.tenants: list[dict[str, Any] | None] = [
            {key: tenant[key] for key in ("id", "url", "display", "name", "slug", "description")}
            for tenant in self.page("tenants_page.json")
        ]
        self.tenants.append(None)
        self.tag_sets = [obj["tags"] for obj in device_samples + vm_samples]
        ips = [obj[k] for obj in device_samples + vm_samples for k in ("primary_ip4", "oob_ip") if obj.get(k)]
        self.ip_template = ips[0]
        family = self.ip_template["family"]
        self.family6 = {key: (6 if key == "value" else "IPv6") for key in family}

    def sample(self, name: str) -> Any:
        # Rebasing the text once rewrites every URL, however deeply nested.
        return json.loads(_sample_text(name).replace(SAMPLE_HOST, self.base))

    def page(self, name: str) -> list[dict[str, Any]]:
        return list(self.sample(name)["results"])

    def _times(self, object_id: int, spread: float) -> tuple[str, str]:
        created = _BASE_TIME + timedelta(seconds=object_id * spread, microseconds=self.rng.randrange(1_000_000))
        updated = created + timedelta(seconds=self.rng.randrange(1, 1800), microseconds=self.rng.randrange(1_000_000))
        return _timestamp(created), _timestamp(updated)

    def _ip(self, template: dict[str, Any] | None, ip_id: int, address: str, dns_name: str) -> dict[str, Any]:
        ip = dict(template or self.ip_template)
        ip.update(
            id=ip_id,
            url=f"{self.base}/api/ipam/ip-addresses/{ip_id}/",
            display=address,
            address=address,
            dns_name=dns_name if ip.get("dns_name") else "",
        )
        return ip

    def _ip6(self, ip_id: int, network: int, host: int, dns_name: str) -> dict[str, Any]:
        ip = self._ip(None, ip_id, f"2001:db8:{network:x}::{host:x}/64", dns_name)
        ip["family"] = dict(self.family6)
        return ip

    @staticmethod
    def _address(template: dict[str, Any], number: int) -> str:
        """An address in the template's /16 (so site plans stay recognisable) that is unique per number."""
        octets, _, prefix = template["address"].partition("/")
        first, second = octets.split(".")[:2]
        return f"{first}.{second}.{(number // 250) % 256}.{1 + number % 250}/{prefix}"

    def _status(self, template: dict[str, Any], number: int, choices: dict[str, str]) -> dict[str, Any]:
        for modulus, value in ((29, "offline"), (31, "failed"), (37, "staged"), (41, "paused"), (43, "inventory")):
            if number % modulus == 0 and value in choices:
                return {"value": value, "label": choices[value]}
        return dict(template["status"])

    # -- devices -------------------------------------------------------------------------------------------------

    def devices(self, total: int) -> dict[int, dict[str, Any]]:
        """Devices 1..total: the samples first (ids 1-6 carry the edge cases), then generated copies."""
        devices: dict[int, dict[str, Any]] = {}
        for device_id in range(1, total + 1):
            devices[device_id] = self.device(device_id)
        samples = len(self.device_samples)
        vc_id = 0
        for device_id in range(samples + 1, total + 1):
            slot = (device_id - samples - 1) % 40
            if slot == 10 and device_id - 1 > samples:
                self._install_in_bay(devices[device_id], devices[device_id - 1])
            elif slot == 20 and device_id + 1 in devices:
                vc_id += 1
                self._form_virtual_chassis(vc_id, devices[device_id], devices[device_id + 1])
        return devices

    def device(self, device_id: int) -> dict[str, Any]:
        samples = self.device_samples
        if device_id <= len(samples):
            return samples[device_id - 1]
        # Generated devices copy the ordinary samples (7+); the first six carry edge cases that should stay unique.
        ordinary = samples[6:] or samples
        template = ordinary[(device_id - len(samples) - 1) % len(ordinary)]
        rng = self.rng
        device = dict(template)  # nested dicts are shared with the template and never mutated in place
        site_slug = template["site"]["slug"]
        match = re.fullmatch(r"[a-z0-9]+-([a-z]+)\d+", template.get("name") or "")
        name = f"{site_slug}-{match.group(1) if match else 'dev'}{device_id:05d}"
        asset_tag = f"AT-{device_id:06d}" if template.get("asset_tag") else None
        serial = template.get("serial") or ""
        serial = "".join(str(rng.randrange(10)) if ch.isdigit() else ch for ch in serial)
        created, last_updated = self._times(device_id, 0.05)
        device.update(
            id=device_id,
            url=f"{self.base}/api/dcim/devices/{device_id}/",
            display_url=f"{self.base}/dcim/devices/{device_id}/",
            name=name,
            serial=serial,
            asset_tag=asset_tag,
            tenant=self.tenants[device_id % len(self.tenants)],
            status=self._status(template, device_id, DEVICE_STATUSES),
            tags=self.tag_sets[(device_id * 7) % len(self.tag_sets)],
            custom_fields=samples[(device_id * 3) % len(samples)]["custom_fields"],
            created=created,
            last_updated=last_updated,
        )
        device["display"] = _device_display(device)
        dns_name = f"{name}.example.net"
        if template.get("primary_ip4"):
            ip4 = self._ip(
                template["primary_ip4"],
                100_000 + device_id,
                self._address(template["primary_ip4"], device_id),
                dns_name,
            )
            device["primary_ip4"] = device["primary_ip"] = ip4
        if device_id % 13 == 0:
            # NetBox prefers IPv6 for primary_ip unless PREFER_IPV4 is set (it is not by default).
            ip6 = self._ip6(400_000 + device_id, template["site"]["id"], device_id, dns_name)
            device["primary_ip6"] = device["primary_ip"] = ip6
        if template.get("oob_ip"):
            device["oob_ip"] = self._ip(
                template["oob_ip"], 300_000 + device_id, self._address(template["oob_ip"], device_id), ""
            )
        if template.get("interface_count") is not None:
            device["interface_count"] = template["interface_count"] + device_id % 3
        return device

    def _nested_device(self, device: dict[str, Any]) -> dict[str, Any]:
        """NestedDeviceSerializer (dcim/api/serializers_/nested.py): id, url, display_url, display, name."""
        return {key: device[key] for key in ("id", "url", "display_url", "display", "name")}

    def _install_in_bay(self, child: dict[str, Any], parent: dict[str, Any]) -> None:
        """DeviceSerializer.get_parent_device: the nested parent plus the NestedDeviceBaySerializer of its bay."""
        bay_id = child["id"]
        nested_parent = self._nested_device(parent)
        child["parent_device"] = {
            **nested_parent,
            "device_bay": {
                "id": bay_id,
                "url": f"{self.base}/api/dcim/device-bays/{bay_id}/",
                "display_url": f"{self.base}/dcim/device-bays/{bay_id}/",
                "display": "Bay 1",
                "device": nested_parent,
                "name": "Bay 1",
            },
        }
        # A child lives in its parent's bay: same site and rack, no rack position of its own.
        child.update(site=parent["site"], location=parent["location"], rack=parent["rack"], position=None, face=None)
        parent["device_bay_count"] = max(parent.get("device_bay_count") or 0, 2)

    def _form_virtual_chassis(self, vc_id: int, master: dict[str, Any], member: dict[str, Any]) -> None:
        """VirtualChassisSerializer(nested=True): its brief fields, with the master as a nested device."""
        name = f"{master['site']['slug']}-vc{vc_id:03d}"
        chassis = {
            "id": vc_id,
            "url": f"{self.base}/api/dcim/virtual-chassis/{vc_id}/",
            "display": name,
            "name": name,
            "master": self._nested_device(master),
            "description": "",
            "member_count": 2,
        }
        master.update(virtual_chassis=chassis, vc_position=1, vc_priority=255)
        member.update(
            virtual_chassis=chassis,
            vc_position=2,
            vc_priority=128,
            site=master["site"],
            location=master["location"],
            rack=master["rack"],
        )

    # -- virtual machines ----------------------------------------------------------------------------------------

    def vms(self, total: int, devices: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """VMs 1..total: the samples first, then generated copies; host devices point at generated hypervisors."""
        hosts = self.hypervisors(devices)
        return {vm_id: self.vm(vm_id, hosts) for vm_id in range(1, total + 1)}

    @staticmethod
    def hypervisors(devices: dict[int, dict[str, Any]]) -> dict[int | None, list[dict[str, Any]]]:
        """Hypervisor devices by site id, with every hypervisor under ``None``."""
        hosts: dict[int | None, list[dict[str, Any]]] = {None: []}
        for device in devices.values():
            if (device.get("role") or {}).get("name") == "Hypervisor":
                hosts[None].append(device)
                hosts.setdefault((device.get("site") or {}).get("id"), []).append(device)
        return hosts

    def vm(self, vm_id: int, hosts: dict[int | None, list[dict[str, Any]]]) -> dict[str, Any]:
        samples = self.vm_samples
        template = samples[(vm_id - 1) % len(samples)]
        vm = dict(template)
        if vm_id > len(samples):
            rng = self.rng
            site_slug = template["site"]["slug"] if template.get("site") else "vm"
            match = re.fullmatch(r"(.+)-[a-z]+\d+-\d+", template["name"])
            name = f"{match.group(1) if match else 'vm'}-{site_slug}-{vm_id:04d}"
            created, last_updated = self._times(vm_id, 0.03)
            vm.update(
                id=vm_id,
                url=f"{self.base}/api/virtualization/virtual-machines/{vm_id}/",
                display_url=f"{self.base}/virtualization/virtual-machines/{vm_id}/",
                name=name,
                display=name,
                tenant=self.tenants[(vm_id * 3) % len(self.tenants)],
                status=self._status(template, vm_id, VM_STATUSES),
                tags=self.tag_sets[(vm_id * 11) % len(self.tag_sets)],
                custom_fields=samples[(vm_id * 7) % len(samples)]["custom_fields"],
                vcpus=samples[(vm_id * 7) % len(samples)]["vcpus"],
                memory=samples[(vm_id * 11) % len(samples)]["memory"],
                disk=samples[(vm_id * 13) % len(samples)]["disk"],
                serial=f"VMware-42 {rng.getrandbits(32):08x}" if template.get("serial") else "",
                created=created,
                last_updated=last_updated,
            )
            dns_name = f"{name}.example.net"
            if template.get("primary_ip4"):
                address = self._address(template["primary_ip4"], vm_id)
                vm["primary_ip4"] = vm["primary_ip"] = self._ip(
                    template["primary_ip4"], 500_000 + vm_id, address, dns_name
                )
            if vm_id % 11 == 0:
                site_id = template["site"]["id"] if template.get("site") else 0
                ip6 = self._ip6(600_000 + vm_id, 0x100 + site_id, vm_id, dns_name)
                vm["primary_ip6"] = vm["primary_ip"] = ip6
        if template.get("device"):
            vm["device"] = self._host(vm, hosts)
        return vm

    def _host(self, vm: dict[str, Any], hosts: dict[int | None, list[dict[str, Any]]]) -> dict[str, Any] | None:
        """A hypervisor that exists here (the samples name hosts of the real NetBox), in the VM's site if any."""
        local = hosts.get((vm.get("site") or {}).get("id")) or hosts.get(None)
        if not local:
            return None
        host = local[vm["id"] % len(local)]
        # VirtualMachineSerializer nests DeviceSerializer(nested=True): its brief fields, as in the sample.
        return {key: host[key] for key in ("id", "url", "display", "name", "description")}

    # -- contact assignments -------------------------------------------------------------------------------------

    def contact_assignments(
        self, devices: dict[int, dict[str, Any]], vms: dict[int, dict[str, Any]]
    ) -> dict[int, dict[str, Any]]:
        """0-2 assignments per device and VM, drawn from the sample's contacts, roles and priorities."""
        samples = self.page("contact_assignments_page.json")
        template = samples[0]
        contacts = list({a["contact"]["id"]: a["contact"] for a in samples}.values())
        roles = list({a["role"]["id"]: a["role"] for a in samples if a.get("role")}.values())
        priorities = list({a["priority"]["value"]: a["priority"] for a in samples if a.get("priority")}.values())
        object_keys = list(template["object"])
        assignments: dict[int, dict[str, Any]] = {}
        rng = self.rng
        for object_type, objects in (("dcim.device", devices), ("virtualization.virtualmachine", vms)):
            for obj in objects.values():
                draw = rng.random()
                wanted = 0 if draw < 0.55 else 1 if draw < 0.85 else 2
                seen: set[tuple[int, int]] = set()
                for _ in range(wanted):
                    contact, role, priority = rng.choice(contacts), rng.choice(roles), rng.choice(priorities)
                    # NetBox keeps (object, contact, role) unique.
                    if (contact["id"], role["id"]) in seen:
                        continue
                    seen.add((contact["id"], role["id"]))
                    assignment_id = len(assignments) + 1
                    created, last_updated = self._times(assignment_id, 0.01)
                    assignment = dict(template)
                    assignment.update(
                        id=assignment_id,
                        url=f"{self.base}/api/tenancy/contact-assignments/{assignment_id}/",
                        display=f"{contact['name']} ({priority['label']}) -> {obj['display']}",
                        object_type=object_type,
                        object_id=obj["id"],
                        object={key: obj.get(key) for key in object_keys},
                        contact=contact,
                        role=role,
                        priority=priority,
                        created=created,
                        last_updated=last_updated,
                    )
                    assignments[assignment_id] = assignment
        return assignments


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: FakeNetbox


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length lets clients keep connections alive, as they do with a real NetBox.
    protocol_version = "HTTP/1.1"
    server_version = "FakeNetBox/" + API_VERSION
    sys_version = ""
    # Headers and body go out in two writes; without TCP_NODELAY, delayed ACKs add ~40 ms per request.
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.fake._lock:
                self.server.fake._connections.discard(self.connection)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            # The client went away (or the test cut the connection); nothing left to answer.
            self.close_connection = True

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # answered with 405 by _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and the demo do not want an access log on stderr."""


def main(argv: list[str] | None = None) -> None:
    """Run the fake NetBox in the foreground until Ctrl-C (the demo NetBox of ``make run``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--vms", type=int, default=400)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--seconds-per-object", type=float, default=0.0, help="Server time per listed object (a slow NetBox)."
    )
    args = parser.parse_args(argv)
    netbox = FakeNetbox(args.devices, args.vms, token=args.token, seed=args.seed, host=args.host, port=args.port)
    netbox.seconds_per_object = args.seconds_per_object
    url = netbox.start()
    print(f"Fake NetBox at {url} ({args.devices} devices, {args.vms} virtual machines); Ctrl-C stops it", flush=True)
    stopped = threading.Event()
    # `make run` and process managers stop the demo with SIGTERM; treat it like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
    try:
        while not stopped.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        netbox.stop()


if __name__ == "__main__":
    main()
