"""Django's database and Redis caches with django-prometheus's hit/miss metrics (it ships neither wrapper).

The Redis cache also degrades instead of failing: while Redis is unreachable, every read is a miss, every write is
dropped and ``incr`` raises ``ValueError`` as it does for a missing key, with one warning logged per
``OUTAGE_LOG_EVERY`` seconds. Nothing the cache holds is the only copy of anything (sessions live in the
database), so pages, sign-in, tokens and downloads keep working; ``ping()`` still raises, for the health check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django_prometheus.cache.metrics import django_cache_get_total, django_cache_hits_total, django_cache_misses_total
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

_MISSING = object()
OUTAGE_LOG_EVERY = 30.0  # seconds between two "Redis unreachable" warnings of one process
# Without these, a Redis host that drops packets would hold every request until the kernel gives up.
REDIS_SOCKET_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


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


class _Outage:
    """Rate-limited logging of a Redis outage, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_warning = 0.0
        self.down = False

    def failed(self, operation: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self.down = True
            if now - self._last_warning < OUTAGE_LOG_EVERY:
                return
            self._last_warning = now
        logger.warning("Redis cache unreachable (%s: %s); serving without the cache", operation, exc)

    def ok(self) -> None:
        if self.down:
            with self._lock:
                if self.down:
                    self.down = False
                    self._last_warning = 0.0
                    logger.warning("Redis cache reachable again")


class RedisCache(_Metrics, DjangoRedisCache):
    """Redis cache that behaves as an empty, write-ignoring cache while Redis is unreachable."""

    backend_label = "redis"

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        for name, value in REDIS_SOCKET_TIMEOUTS.items():
            options.setdefault(name, value)
        super().__init__(server, {**params, "OPTIONS": options})
        self.outage = _Outage()

    def _guarded(self, operation: str, call: Any, fallback: Any) -> Any:
        try:
            result = call()
        except UNREACHABLE as exc:
            self.outage.failed(operation, exc)
            if isinstance(fallback, BaseException):
                raise fallback from None
            return fallback
        self.outage.ok()
        return result

    def ping(self) -> None:
        """Raise when Redis does not answer (the health check wants the reason, not a miss)."""
        self._cache.get_client(write=True).ping()

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self._guarded("get", lambda: super(RedisCache, self).get(key, default, version), default)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        return bool(self._guarded("add", lambda: super(RedisCache, self).add(key, value, timeout, version), False))

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> None:
        self._guarded("set", lambda: super(RedisCache, self).set(key, value, timeout, version), None)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        return bool(self._guarded("touch", lambda: super(RedisCache, self).touch(key, timeout, version), False))

    def delete(self, key: Any, version: Any = None) -> bool:
        return bool(self._guarded("delete", lambda: super(RedisCache, self).delete(key, version), False))

    def get_many(self, keys: Iterable[Any], version: Any = None) -> dict[Any, Any]:
        keys = list(keys)
        return dict(self._guarded("get_many", lambda: super(RedisCache, self).get_many(keys, version), {}))

    def has_key(self, key: Any, version: Any = None) -> bool:
        return bool(self._guarded("has_key", lambda: super(RedisCache, self).has_key(key, version), False))

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        missing = ValueError(f"Key '{key}' not found (the Redis cache is unreachable).")
        return int(self._guarded("incr", lambda: super(RedisCache, self).incr(key, delta, version), missing))

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> list[Any]:
        # Nothing was stored: every key failed.
        return list(
            self._guarded("set_many", lambda: super(RedisCache, self).set_many(data, timeout, version), list(data))
        )

    def delete_many(self, keys: Iterable[Any], version: Any = None) -> None:
        keys = list(keys)
        self._guarded("delete_many", lambda: super(RedisCache, self).delete_many(keys, version), None)

    def clear(self) -> None:
        self._guarded("clear", lambda: super(RedisCache, self).clear(), None)
