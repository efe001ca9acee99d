"""Django's database and Redis caches with django-prometheus's hit/miss metrics (it ships neither wrapper)."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django_prometheus.cache.metrics import django_cache_get_total, django_cache_hits_total, django_cache_misses_total

_MISSING = object()


class _Metrics:
    backend_label = ""

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        django_cache_get_total.labels(backend=self.backend_label).inc()
        value = super().get(key, _MISSING, version=version)  # type: ignore[misc]
        if value is _MISSING:
            django_cache_misses_total.labels(backend=self.backend_label).inc()
            return default
        django_cache_hits_total.labels(backend=self.backend_label).inc()
        return value


class DatabaseCache(_Metrics, DjangoDatabaseCache):
    backend_label = "db"


class RedisCache(_Metrics, DjangoRedisCache):
    backend_label = "redis"
