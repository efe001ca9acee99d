"""Project-level views: the health check and the metrics endpoint (the home page is ``exports.dashboard``)."""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django_q.brokers import get_broker
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)


def _check(name: str, probe: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:  # a health check reports every failure instead of raising
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
    cache.set("enreach:health", "ok", 30)
    if cache.get("enreach:health") != "ok":
        raise RuntimeError("cache did not return the value just written")


def _broker() -> dict[str, Any]:
    broker = get_broker()
    if not broker.ping():
        raise RuntimeError("broker did not answer ping")
    return {"queued": broker.queue_size()}


class HealthView(APIView):
    """Public health check: database, cache and queue broker. HTTP 503 when any of them is down."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    # Throttles keep their state in the cache, which may be the very thing that is down.
    throttle_classes: list[type] = []

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        checks = {"database": _check("database", _database), "cache": _check("cache", _cache)}
        checks["broker"] = _check("broker", _broker)
        healthy = all(check["status"] == "ok" for check in checks.values())
        return Response({"status": "ok" if healthy else "down", "checks": checks}, status=200 if healthy else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition. With ``METRICS_TOKEN`` set, scrapers must send it as a Bearer token."""
    if settings.METRICS_TOKEN:
        expected = f"Bearer {settings.METRICS_TOKEN}"
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
