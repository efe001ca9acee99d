"""API plumbing shared by every app: bounded input, JSON errors and the error responses in the schema.

- ``BoundedJSONParser``: a JSON body over ``API_JSON_MAX_BYTES`` or nested deeper than ``API_JSON_MAX_DEPTH`` is a
  JSON 400 (413 for the size), never a RecursionError.
- ``BoundedLimitOffsetPagination``: ``limit`` is capped at ``API_MAX_LIMIT``; junk, negative or overflowing
  ``limit``/``offset`` is a 400.
- ``ApiGuardMiddleware``: an oversized body on ``/api/`` is a JSON 413 before anything reads it; a body sent with
  ``Transfer-Encoding: chunked`` is read whole before any view answers (``chunked_body_read``); an id in the path
  beyond a 64-bit integer is a 404 (no row can have it, and databases raise instead of finding nothing).
- ``handler400/403/404/500``: Django's error pages, as JSON under ``/api/``; an unreachable database is a 503
  (``enreach.outage``).
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request

from enreach.outage import database_unreachable, outage_response

# The largest value of a signed 64-bit integer: the biggest id or offset any database here can hold.
MAX_INT = 2**63 - 1
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def _api_path(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def max_body_bytes() -> int:
    return int(getattr(settings, "API_JSON_MAX_BYTES", settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440))


# --- Errors --------------------------------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """An error: what went wrong, for people."""

    detail = serializers.CharField()


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def _too_large_detail() -> str:
    return f"The request body is too large (at most {max_body_bytes()} bytes)."


def _json_error(status_code: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status_code)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A bad request; a body over the size limit is 413. JSON under /api/."""
    if isinstance(exception, RequestDataTooBig) and _api_path(request):
        return _json_error(413, _too_large_detail())
    if _api_path(request):
        return _json_error(400, "Bad request.")
    return defaults.bad_request(request, exception)  # type: ignore[arg-type]


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api_path(request):
        return _json_error(403, "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)  # type: ignore[arg-type]


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api_path(request):
        return _json_error(404, "Not found.")
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


def handler500(request: HttpRequest) -> HttpResponse:
    # Called while the exception is being handled: one that means the database is unreachable is a 503 to retry.
    exception = sys.exc_info()[1]
    if exception is not None and database_unreachable(exception):
        return outage_response(request, exception)
    if _api_path(request):
        return _json_error(500, "Server error: the request was logged.")
    return defaults.server_error(request)


# --- Bounded input -------------------------------------------------------------------------------------------------


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON document (strings skipped), without parsing it."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a size and a nesting limit."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = max_body_bytes()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(_too_large_detail())
        max_depth = int(getattr(settings, "API_JSON_MAX_DEPTH", 32))
        if raw.count(b"[") + raw.count(b"{") > max_depth and json_depth(raw) > max_depth:
            raise ParseError(f"JSON nested deeper than {max_depth} levels.")
        try:
            return json.loads(raw.decode(settings.DEFAULT_CHARSET), parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def query_int(request: Request, name: str, *, default: int, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """An integer query parameter: ``default`` when absent, a 400 naming it when junk or out of range."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: ["A whole number is required."]}) from None
    if value < minimum or value > maximum:
        raise ValidationError({name: [f"Must be between {minimum} and {maximum}."]})
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pages with ``limit`` capped at ``API_MAX_LIMIT`` and a 400 for junk."""

    @property
    def max_limit(self) -> int:  # type: ignore[override]
        return int(getattr(settings, "API_MAX_LIMIT", 500))

    def get_limit(self, request: Request) -> int:  # type: ignore[override]
        value = query_int(request, self.limit_query_param, default=self.default_limit or 50, minimum=1)
        return min(value, self.max_limit)

    def get_offset(self, request: Request) -> int:
        return query_int(request, self.offset_query_param, default=0)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": MAX_INT})
                parameter["description"] = f"Number of results to return per page (at most {self.max_limit})."
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update({"minimum": 0, "maximum": MAX_INT})
        return parameters


# Path parameters that hold database ids: beyond MAX_INT no row can match.
_ID_KWARG = re.compile(r"^(pk|id|.+_id)$")


class ChunkedBodyError(ValueError):
    """A chunked request body that is malformed, or larger than ``max_body_bytes``."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def chunked_body_read(request: HttpRequest, *, limit: int) -> bytes:
    """The whole body of a request sent with ``Transfer-Encoding: chunked``, which WSGI hands to Django without a
    ``CONTENT_LENGTH``: Django reads such a body as empty, so a view would answer without reading it.

    A server that decodes the chunks (gunicorn) gives the decoded body in ``wsgi.input``. Django's development server
    (``runserver``, and the live server of the tests) does not: its ``wsgi.input`` reads nothing, and the body, left
    unread on a kept-alive connection, was read as the connection's next request — a bare HTML error page with no
    status line, which the client took for the answer to its next request ("Connection aborted", BadStatusLine).
    There the chunks are read from the connection itself, through the stream the server handed over.
    """
    stream = request.META["wsgi.input"]  # a WSGI request's META is its environ
    if not (isinstance(stream, LimitedStream) and stream.limit == 0):
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise ChunkedBodyError(_too_large_detail(), status=413)
        return bytes(body)
    readline, read = stream._readline, stream._read  # type: ignore[attr-defined]  # the connection, past the headers
    body = bytearray()
    while True:
        line = readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ChunkedBodyError("The chunked request body is malformed.") from None
        if size < 0 or len(body) + size > limit:
            raise ChunkedBodyError(_too_large_detail(), status=413)
        if size == 0:
            break
        chunk = read(size)
        if len(chunk) != size or read(2) != b"\r\n":
            raise ChunkedBodyError("The chunked request body is malformed.")
        body += chunk
    while readline(1024).strip():  # trailer fields, up to the blank line that ends the request
        pass
    return bytes(body)


class ApiGuardMiddleware:
    """Refuses what no view should see: bodies over the size limit on /api/ (JSON 413) and ids beyond 64 bits in any
    path (404); reads a chunked body before any view can answer. Sits before the session and CSRF middleware, which
    could read the body first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("HTTP_TRANSFER_ENCODING", "").strip().lower() == "chunked" and not request.META.get(
            "CONTENT_LENGTH"
        ):
            try:
                body = chunked_body_read(request, limit=max_body_bytes())
            except ChunkedBodyError as exc:
                return _json_error(exc.status, str(exc)) if _api_path(request) else HttpResponse(str(exc), status=400)
            # From here on the request is one with a length, as it would be behind a proxy that buffers bodies.
            request.META["CONTENT_LENGTH"] = str(len(body))
            request._stream = io.BytesIO(body)
        if _api_path(request):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return _json_error(400, "Content-Length is not a number.")
            if length > max_body_bytes():
                return _json_error(413, _too_large_detail())
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        for name, value in kwargs.items():
            if _ID_KWARG.match(name) and _too_big(value):
                if _api_path(request):
                    return _json_error(404, f"Object {value} does not exist.")
                return defaults.page_not_found(request, None)  # type: ignore[arg-type]
        return None


def _too_big(value: Any) -> bool:
    if isinstance(value, int):
        return value > MAX_INT or value < -MAX_INT
    return isinstance(value, str) and value.isdigit() and (len(value) > 19 or int(value) > MAX_INT)
