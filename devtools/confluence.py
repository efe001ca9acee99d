"""A Confluence-shaped server on loopback: the REST endpoints atlassian-python-api 4.0.7 calls to publish the CMDB.

Endpoints (under any context path before ``/rest/api/``, so ``…/wiki`` Cloud URLs and Server/DC URLs both work):

- ``GET  /rest/api/content/{id}?expand=body.storage,version``          the page
- ``GET  /rest/api/content/{id}/history``                              ``lastUpdated.number`` (update_page reads it)
- ``PUT  /rest/api/content/{id}?status=current``                       new body; version must be current + 1 (409)
- ``GET  /rest/api/content/{id}/child/attachment[?filename=&expand=version]``  attachments, filtered by file name
- ``POST /rest/api/content/{id}/child/attachment``                     multipart create (needs X-Atlassian-Token)
- ``POST /rest/api/content/{id}/child/attachment/{att}/data``          multipart new version of an attachment

Strict like the real server: a PUT must carry the next version number (else 409), ``type``, a title and a
storage-format body that parses as XHTML (else 400 "Error parsing xhtml: …", with the parser's row and column);
uploads need ``X-Atlassian-Token: no-check`` (else 403 "XSRF check failed") and a new attachment may not reuse a
file name on the page (400); an attachment's ``version`` only appears when expanded. Errors have Confluence's
shape: ``{"statusCode", "data": {"authorized", "valid", "errors": [{"message": {"translation", …}}],
"successful"}, "message", "reason"}``.

Auth: Basic ``email:token`` or ``Bearer token``; anything else is 401. Every request is recorded
(``request_counts()`` counts them by method and path with ids as ``{id}``); pages keep their versions (body,
message, minorEdit) and attachments keep every uploaded version (bytes, comment).

Faults: ``fail(status, times=1, method=..., path_contains=..., retry_after=..., message=..., errors=...)``,
``conflict_next_update()`` (a concurrent edit bumps the version, the PUT gets 409), ``delay`` (seconds before
answering: slow server). Standard library only.
"""

from __future__ import annotations

import base64
import collections
import email.parser
import email.policy
import html.entities
import http.client
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

DEFAULT_EMAIL = "publisher@example.com"
DEFAULT_TOKEN = "confluence-token-0123456789"
BAD_REQUEST = "com.atlassian.confluence.api.service.exceptions.BadRequestException: "
# Storage format is XHTML with Confluence's own namespaces; the server knows their prefixes without declarations.
_STORAGE_ROOT = (
    '<ac:confluence xmlns:ac="http://www.atlassian.com/schema/confluence/4/ac/" '
    'xmlns:ri="http://www.atlassian.com/schema/confluence/4/ri/" xmlns:at="http://www.atlassian.com/schema/'
    'confluence/4/at/">{}</ac:confluence>'
)
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_IDS = re.compile(r"/(?:\d+|att\d+)(?=/|$)")


@dataclass
class RecordedRequest:
    """One request as received: ``path`` without the context path, ``query`` as single values."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class PageVersion:
    number: int
    body: str
    message: str = ""
    minor_edit: bool = False


@dataclass
class Page:
    id: str
    title: str
    space: str
    versions: list[PageVersion]

    @property
    def current(self) -> PageVersion:
        return self.versions[-1]


@dataclass
class AttachmentVersion:
    number: int
    data: bytes
    comment: str
    media_type: str


@dataclass
class Attachment:
    id: str
    page_id: str
    title: str
    versions: list[AttachmentVersion] = field(default_factory=list)

    @property
    def current(self) -> AttachmentVersion:
        return self.versions[-1]


@dataclass
class Fault:
    status: int
    times: int
    method: str | None
    path_contains: str | None
    retry_after: str | None
    message: str | None = None
    errors: tuple[str, ...] = ()


class FakeConfluence:
    """Start with ``with FakeConfluence() as confluence:``; ``confluence.url`` is the base URL (``…/wiki``)."""

    def __init__(self, *, email: str = DEFAULT_EMAIL, token: str = DEFAULT_TOKEN, context: str = "/wiki") -> None:
        self.email = email
        self.token = token
        self.context = context
        self.pages: dict[str, Page] = {}
        self.attachments: dict[str, Attachment] = {}
        self.requests: list[RecordedRequest] = []
        self.delay = 0.0
        self._faults: list[Fault] = []
        self._conflicts = 0
        self._ids = itertools.count(90001)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeConfluence:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.context}"

    # -- state and faults --------------------------------------------------------------------------------------

    def add_page(self, page_id: str, title: str, body: str = "<p>old</p>", *, space: str = "CMDB") -> Page:
        page = Page(id=page_id, title=title, space=space, versions=[PageVersion(number=1, body=body)])
        self.pages[page_id] = page
        return page

    def add_attachment(self, page_id: str, title: str, data: bytes, comment: str = "") -> Attachment:
        attachment = Attachment(id=f"att{next(self._ids)}", page_id=page_id, title=title)
        attachment.versions.append(AttachmentVersion(1, data, comment, "application/octet-stream"))
        self.attachments[attachment.id] = attachment
        return attachment

    def attachments_of(self, page_id: str) -> dict[str, Attachment]:
        return {a.title: a for a in self.attachments.values() if a.page_id == page_id}

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: str | None = None,
        message: str | None = None,
        errors: tuple[str, ...] = (),
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``message`` / ``data.errors``)."""
        self._faults.append(Fault(status, times, method, path_contains, retry_after, message, tuple(errors)))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._conflicts = 0
        self.delay = 0.0

    def conflict_next_update(self, times: int = 1) -> None:
        """Before the next ``times`` page updates, someone else edits the page: the PUT's version is stale."""
        self._conflicts += times

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method in ("PUT", "POST", "DELETE")]

    def request_counts(self) -> collections.Counter[str]:
        """Requests so far by ``"METHOD /path"``, ids as ``{id}``: ``{"GET /rest/api/content/{id}": 2, …}``."""
        with self._lock:
            return collections.Counter(f"{r.method} {_IDS.sub('/{id}', r.path)}" for r in self.requests)

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- handling ----------------------------------------------------------------------------------------------

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method in (None, method) and (fault.path_contains or "") in path:
                    fault.times -= 1
                    return fault
        return None

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() == self.token
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return user == self.email and password == self.token
        return False

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        path = parts.path
        if "/rest/api/" in path:
            path = path[path.index("/rest/api/") :]
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, headers, body))
        if self.delay:
            time.sleep(self.delay)
        fault = self._fault_for(method, path)
        if fault is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, extra, _error(fault.status, fault.message or f"Injected fault {fault.status}",
                                               fault.errors)  # fmt: skip
        if not self._authorized(headers.get("authorization", "")):
            return 401, {"Content-Type": "text/html"}, "<html>Unauthorized</html>"
        with self._lock:
            return self._route(method, path, query, headers, body)

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        match = re.fullmatch(r"/rest/api/content/([^/]+)(/history|/child/attachment(?:/([^/]+)/data)?)?/?", path)
        if not match:
            return 404, {}, _error(404, f"No endpoint {path}")
        page = self.pages.get(match.group(1))
        if page is None:
            return 404, {}, _error(404, f"No content found with id: ContentId{{id={match.group(1)}}}")
        tail, attachment_id = match.group(2) or "", match.group(3)
        if tail == "" and method == "GET":
            return 200, {}, self._page_json(page, query.get("expand", ""))
        if tail == "" and method == "PUT":
            return self._page_update(page, json.loads(body or b"{}"))
        if tail == "/history" and method == "GET":
            return 200, {}, {"latest": True, "lastUpdated": {"number": page.current.number}}
        if tail == "/child/attachment" and method == "GET":
            found = [a for a in self.attachments_of(page.id).values() if query.get("filename") in (None, a.title)]
            expand = query.get("expand", "").split(",")
            results = [self._attachment_json(a, version="version" in expand) for a in found]
            return 200, {}, {"results": results, "start": 0, "limit": 50, "size": len(results)}
        if tail.startswith("/child/attachment") and method == "POST":
            if headers.get("x-atlassian-token") != "no-check":
                return 403, {}, _error(403, "XSRF check failed")
            return self._attachment_upload(page, attachment_id, headers.get("content-type", ""), body)
        return 405, {}, _error(405, f"{method} not allowed on {path}")

    def _page_json(self, page: Page, expand: str) -> dict[str, Any]:
        data: dict[str, Any] = {"id": page.id, "type": "page", "status": "current", "title": page.title,
                                "space": {"key": page.space}}  # fmt: skip
        if "version" in expand.split(","):
            current = page.current
            data["version"] = {"number": current.number, "minorEdit": current.minor_edit, "message": current.message}
        if "body.storage" in expand.split(","):
            data["body"] = {"storage": {"value": page.current.body, "representation": "storage"}}
        return data

    def _page_update(self, page: Page, data: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if self._conflicts > 0:
            self._conflicts -= 1
            page.versions.append(PageVersion(page.current.number + 1, page.current.body, "edited by someone else"))
        version = data.get("version") or {}
        number = version.get("number")
        if number != page.current.number + 1:
            return 409, {}, _error(409, f"Version must be incremented on update. Current version is: "
                                        f"{page.current.number}")  # fmt: skip
        storage = (data.get("body") or {}).get("storage") or {}
        if data.get("type") != "page" or storage.get("representation") != "storage":
            return 400, {}, _error(400, BAD_REQUEST + "Expected a page with a storage-format body")
        if not str(data.get("title") or "").strip():
            return 400, {}, _error(400, BAD_REQUEST + f"Could not update Content of type : class "
                                   f"com.atlassian.confluence.pages.Page with id {page.id}",
                                   ("Title cannot be empty",))  # fmt: skip
        problem = storage_problem(str(storage.get("value", "")))
        if problem:
            return 400, {}, _error(400, BAD_REQUEST + "Error parsing xhtml: " + problem)
        page.title = data.get("title") or page.title
        page.versions.append(PageVersion(number, storage.get("value", ""), version.get("message", ""),
                                         bool(version.get("minorEdit"))))  # fmt: skip
        return 200, {}, self._page_json(page, "version")

    def _attachment_upload(
        self, page: Page, attachment_id: str | None, content_type: str, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        fields, files = _multipart(content_type, body)
        if "file" not in files:
            return 400, {}, _error(400, "No file part in the multipart body")
        name, data, media_type = files["file"]
        comment = fields.get("comment", "")
        if attachment_id is None:
            if name in self.attachments_of(page.id):
                return 400, {}, _error(400, BAD_REQUEST + "Cannot add a new attachment with same file name as an "
                                       "existing attachment: " + name)  # fmt: skip
            attachment = Attachment(id=f"att{next(self._ids)}", page_id=page.id, title=name)
            attachment.versions.append(AttachmentVersion(1, data, comment, media_type))
            self.attachments[attachment.id] = attachment
            return 200, {}, {"results": [self._attachment_json(attachment)], "size": 1}
        existing = self.attachments.get(attachment_id)
        if existing is None or existing.page_id != page.id:
            return 404, {}, _error(404, f"No attachment {attachment_id}")
        existing.versions.append(AttachmentVersion(existing.current.number + 1, data, comment, media_type))
        return 200, {}, self._attachment_json(existing)

    def _attachment_json(self, attachment: Attachment, *, version: bool = True) -> dict[str, Any]:
        current = attachment.current
        data: dict[str, Any] = {
            "id": attachment.id,
            "type": "attachment",
            "status": "current",
            "title": attachment.title,
            "metadata": {"mediaType": current.media_type, "comment": current.comment},
            "extensions": {"mediaType": current.media_type, "fileSize": len(current.data), "comment": current.comment},
            "_links": {"download": f"/download/attachments/{attachment.page_id}/{attachment.title}"
                                   f"?version={current.number}&api=v2"},
            "_expandable": {"container": "", "operations": "", "children": "", "history": "", "ancestors": "",
                            "body": "", "descendants": "", "space": ""},
        }  # fmt: skip
        if version:
            data["version"] = {"number": current.number, "message": current.comment, "minorEdit": True}
        else:
            data["_expandable"]["version"] = ""
        return data


def _error(status: int, message: str, errors: tuple[str, ...] = ()) -> dict[str, Any]:
    """An error body as Confluence sends it (``data.errors`` holds validation messages, when there are any)."""
    return {
        "statusCode": status,
        "data": {
            "authorized": status not in (401, 403),
            "valid": not errors,
            "allowedInReadOnlyMode": True,
            "errors": [{"message": {"key": None, "args": [], "translation": text}} for text in errors],
            "successful": False,
        },
        "message": message,
        "reason": http.client.responses.get(status, "Error"),
    }


def storage_problem(body: str) -> str:
    """Why ``body`` is not valid storage format ("" when it is), worded like Confluence's XHTML parser."""

    def entity(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _XML_ENTITIES or name not in html.entities.name2codepoint:
            return match.group(0)
        return f"&#{html.entities.name2codepoint[name]};"

    text = re.sub(r"&([A-Za-z][A-Za-z0-9]*);", entity, body)
    try:
        # Our own publisher's output on loopback, parsed by a test double: not untrusted input.
        ElementTree.fromstring(_STORAGE_ROOT.format(text))  # noqa: S314
    except ElementTree.ParseError as exc:
        row, column = exc.position
        if row == 1:
            column -= _STORAGE_ROOT.index("{}")
        reason = str(exc).split(":", 1)[0]
        return f"{reason}\n at [row,col {{unknown-source}}]: [{row},{column + 1}]"
    return ""


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Form fields and files ``{field: (filename, bytes, content type)}`` of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        if filename is not None:
            files[str(name)] = (filename, payload, part.get_content_type())
        elif name:
            fields[str(name)] = payload.decode("utf-8", "replace")
    return fields, files


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload = self.server.fake.handle(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        if isinstance(payload, str):
            raw, content_type = payload.encode(), "text/html"
        else:
            raw, content_type = json.dumps(payload).encode(), "application/json;charset=UTF-8"
        content_type = extra.pop("Content-Type", content_type)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    do_GET = do_PUT = do_POST = do_DELETE = _serve
