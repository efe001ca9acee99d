"""Database outages degrade, they do not crash: 503 with ``Retry-After`` instead of 500, and one log line per outage.

- ``database_unreachable(exc)``: whether an exception means the database cannot be reached for now (refused or
  dropped connection, a server shutting down or starting, SQLite's lock timeout), as opposed to a broken query.
- ``DatabaseOutageMiddleware``: a request that cannot reach the database answers 503 with ``Retry-After``
  (``DATABASE_RETRY_AFTER`` seconds): the usual JSON error under ``/api/`` (``{"detail", "reason":
  "database_unavailable"}``), a plain page elsewhere. It loads the signed-in user early (the session and the user
  live in the database), so the middlewares after it never meet the outage; ``handler500`` (``enreach.api``) turns
  what still escapes into the same answer.
- ``database_retry(call, wait=...)``: work that must survive a short outage (an export recording its result) tries
  again every second until the database answers.
- ``outage_noted(exc)`` / the end of the episode: the first failure of an episode is logged (an error, with the
  reason), the next ones only counted; when this process next connects to the database, one line says how long it
  lasted and how many failures it saw. Per process: each gunicorn worker and queue worker says it once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError, connection
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

T = TypeVar("T")

# psycopg's SQLSTATEs of a server that is going away or not there yet: class 08 (connection exception) and the
# 57P0x shutdowns ("terminating connection due to administrator command", crash, "the database system is starting
# up"). A client-side failure to connect has no SQLSTATE at all.
_UNREACHABLE_SQLSTATES = ("57P01", "57P02", "57P03")
# SQLite: a lock held longer than the timeout, a file that cannot be opened (disk gone, permissions).
_SQLITE_UNREACHABLE = ("database is locked", "unable to open database file", "disk i/o error")
# Paths whose views judge the database themselves (the health check reports it as a component).
_SELF_REPORTING = ("/api/health/",)


def database_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached at the moment (worth a retry, not a 500)."""
    if isinstance(exc, InterfaceError):
        return True  # "connection already closed": the server went away under an open connection
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if cause is not None and cause.__class__.__module__.startswith("psycopg"):
        state = getattr(cause, "sqlstate", None)
        return state is None or state.startswith("08") or state in _UNREACHABLE_SQLSTATES
    message = str(exc).lower()
    return any(part in message for part in _SQLITE_UNREACHABLE)


def retry_after() -> int:
    """Seconds a client is asked to wait before trying again (``DATABASE_RETRY_AFTER``)."""
    return int(getattr(settings, "DATABASE_RETRY_AFTER", 10))


class _Episode:
    """One outage as this process lives it: logged when it begins and when it ends, counted in between."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException, where: str) -> bool:
        """Count a failure; True (and logged) when it opens a new episode."""
        with self._lock:
            self.failures += 1
            if self.since is not None:
                return False
            self.since = time.monotonic()
        logger.error(
            "database unreachable (process %s, %s): %s: %s; answering 503 / retrying until it is back",
            os.getpid(),
            where,
            type(exc).__name__,
            str(exc).strip().splitlines()[0] if str(exc).strip() else "",
        )
        return True

    def recovered(self) -> None:
        with self._lock:
            if self.since is None:
                return
            lasted, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        logger.warning(
            "database reachable again (process %s) after %.1f s; %d failed attempts meanwhile",
            os.getpid(),
            lasted,
            failures,
        )

    @property
    def active(self) -> bool:
        return self.since is not None


episode = _Episode()


def outage_noted(exc: BaseException, *, where: str = "request") -> bool:
    """Record a database failure in this process's outage episode (logged once per episode)."""
    return episode.failed(exc, where)


def _connected(sender: Any, connection: Any, **kwargs: Any) -> None:
    episode.recovered()


connection_created.connect(_connected, dispatch_uid="enreach.outage.connected")


def database_retry(call: Callable[[], T], *, wait: float, where: str, pause: float = 1.0) -> T:
    """``call()``, tried again every ``pause`` seconds while the database is unreachable, for up to ``wait`` seconds.

    For work that must not be lost to a short outage (an export recording its result). Each attempt must be whole
    (a transaction of its own): inside an enclosing transaction nothing can be retried, and the error is raised.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except (OperationalError, InterfaceError) as exc:
            if not database_unreachable(exc) or connection.in_atomic_block or time.monotonic() >= deadline:
                raise
            outage_noted(exc, where=where)
            with contextlib.suppress(Exception):  # the broken connection; the next attempt opens a new one
                connection.close()
            time.sleep(pause)


def outage_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 of a request that could not reach the database: JSON under /api/, a plain page elsewhere."""
    outage_noted(exc, where=f"{request.method} {request.path}")
    wait = retry_after()
    detail = f"The database cannot be reached at the moment; try again in {wait} seconds."
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": detail, "reason": "database_unavailable"}, status=503)
    else:
        # No base template: it reads the user and their preferences, which live in the unreachable database.
        response = HttpResponse(render_to_string("503.html", {"detail": detail, "wait": wait}), status=503)
    response["Retry-After"] = str(wait)
    response["Cache-Control"] = "no-store"
    # Logged once per episode above, not once per request by django.request.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class DatabaseOutageMiddleware:
    """Answers 503 with ``Retry-After`` to any request that cannot reach the database (after authentication)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None:
            try:
                user.is_authenticated  # noqa: B018  (loads the session and the user now, where we can answer)
            except (OperationalError, InterfaceError) as exc:
                if not database_unreachable(exc):
                    raise
                if not request.path.startswith(_SELF_REPORTING):
                    return outage_response(request, exc)
                outage_noted(exc, where=f"{request.method} {request.path}")
                request.user = AnonymousUser()
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if database_unreachable(exception):
            return outage_response(request, exception)
        return None
