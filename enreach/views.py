"""Project-level views: the home page (the site shell, composing the panels the apps register), the OpenAPI schema
(generated once per process), the health check and the metrics endpoint."""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django_q.brokers import get_broker
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enreach.health import health_components
from enreach.metrics import metrics_exposition
from enreach.outage import database_unreachable, outage_noted
from enreach.panels import panels_render

logger = logging.getLogger(__name__)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The landing page for signed-in users: the apps' alerts and panels (``enreach.panels``), each shown to whom its
    app decides."""
    context = {"alerts": panels_render("home-alerts", request), "panels": panels_render("home", request)}
    return render(request, "home.html", context)


_schemas: dict[tuple[Any, ...], Any] = {}


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, generated once per process (and version and language), then served from memory.

    It is a function of the code and the settings, the same for every caller (``SERVE_PUBLIC``), and generating it
    takes seconds: two on a quiet machine, over ten on a loaded one, where schemathesis gave up loading it. A
    setting changed at run time (tests) forgets it.
    """

    def _get_schema_response(self, request: Any) -> Response:
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (version, translation.get_language(), self.serve_public, self.urlconf, tuple(self.patterns or ()))
        schema = _schemas.get(key)
        if schema is None:
            generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
            schema = _schemas[key] = generator.get_schema(request=request, public=self.serve_public)
        filename = self._get_filename(request, version)
        return Response(data=schema, headers={"Content-Disposition": f'inline; filename="{filename}"'})


@receiver(setting_changed)
def _schema_forget(**kwargs: Any) -> None:
    _schemas.clear()


def quick_actions_panel(request: HttpRequest) -> dict[str, Any]:
    """The quick actions card: the apps' actions ("home-actions"), then the API reference and the admin."""
    return {"actions": panels_render("home-actions", request)}


def _check(name: str, probe: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:  # a health check reports every failure instead of raising
        if database_unreachable(exc):
            outage_noted(exc, where="health check")  # once per outage, not once per probe
        else:
            logger.warning("health check %s failed: %s", name, exc)
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(detail, dict):
        result.update(detail)
    return result


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _cache() -> None:
    ping = getattr(cache, "ping", None)
    if ping is not None:  # our Redis cache answers misses while Redis is down: ask Redis itself
        ping()
    cache.set("enreach:health", "ok", 30)
    if cache.get("enreach:health") != "ok":
        raise RuntimeError("cache did not return the value just written")


def _broker() -> dict[str, Any]:
    broker = get_broker()
    if not broker.ping():
        raise RuntimeError("broker did not answer ping")
    return {"queued": broker.queue_size()}


def _component(name: str, probe: Any) -> dict[str, Any]:
    """A registered component's report; one that fails to answer is down, with the reason for admins."""
    try:
        report = dict(probe())
    except Exception as exc:
        if database_unreachable(exc):
            outage_noted(exc, where="health check")
        else:
            logger.warning("health check %s failed: %s", name, exc)
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    report.setdefault("status", "ok")
    return report


def _backends() -> dict[str, str]:
    """What each component is (public: it names what to look at, and holds no secret)."""
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    cache_backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    return {
        "database": {"sqlite3": "sqlite", "postgresql": "postgresql"}.get(engine, engine),
        "cache": "redis" if "Redis" in cache_backend else "database",
        "broker": "redis" if "redis" in settings.Q_CLUSTER else "database",
    }


def _is_admin(request: Request) -> bool:
    user = request.user
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


class HealthView(APIView):
    """Public health check: database, cache and queue broker, each ``ok`` or ``down``, and the components apps
    register (``enreach.health``: the queue's workers and oldest queued run). HTTP 503 when one is down; a
    ``degraded`` component (runs waiting and no queue worker alive) leaves it 200 with ``"status": "degraded"``:
    the site still serves, so a load balancer must not take it out, while monitors and alerts see it.

    Everyone sees which component is down and what it is (``redis``, ``postgresql``...); the error text and
    latencies are shown to signed-in admins only, since they can reveal hosts and versions.
    """

    # The session only (it lives in the database): who is signed in decides how much detail is shown, and no
    # token check (whose failure limits live in the cache) stands between a monitor and the answer.
    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    # Throttles keep their state in the cache, which may be the very thing that is down.
    throttle_classes: list[type] = []

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        checks = {"database": _check("database", _database), "cache": _check("cache", _cache)}
        checks["broker"] = _check("broker", _broker)
        backends = _backends()
        admin = _is_admin(request)
        if admin:
            shown = {name: {**check, "backend": backends[name]} for name, check in checks.items()}
        else:
            shown = {name: {"status": check["status"], "backend": backends[name]} for name, check in checks.items()}
        for name, probe in health_components().items():
            component = _component(name, probe)
            checks[name] = component
            shown[name] = component if admin else {k: v for k, v in component.items() if k != "error"}
        down = [name for name, check in checks.items() if check["status"] == "down"]
        degraded = [name for name, check in checks.items() if check["status"] == "degraded"]
        status = "down" if down else "degraded" if degraded else "ok"
        body = {"status": status, "down": down, "degraded": degraded, "checks": shown}
        response = Response(body, status=503 if down else 200)
        if down:
            # Monitors probe every few seconds: the components log their own failures, not django.request.
            response._has_been_logged = True  # type: ignore[attr-defined]
        return response


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition. With ``METRICS_TOKEN`` set, scrapers must send it as a Bearer token."""
    if settings.METRICS_TOKEN:
        expected = f"Bearer {settings.METRICS_TOKEN}"
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)
