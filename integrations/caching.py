"""Named TTL caches over Django's cache framework, with hit/miss/load/eviction counts shared by every process.

Each cache has a name, a TTL (``CACHE_TTLS`` in settings, overridable per cache by ``CACHE_TTL_<NAME>``), and keys
under ``enreach:cache:<name>:<generation>:``. ``invalidate()`` without a key bumps the generation, which drops
every entry at once on any backend. Counts live in the same cache backend (database or Redis), so
``manage.py cache_stats`` shows what the web server and the workers did.

Stampede protection: one loader per key at a time. Within a process a lock serialises loaders; across processes an
atomic ``cache.add`` marks the key as loading, and other processes wait briefly for the value instead of loading it
again.

Invalidation hooks: ``invalidate_on(event, name)`` ties a cache to an event; ``cache_event(event)`` (called when a
global key changes, an export succeeds or Confluence is written) invalidates every cache tied to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

from enreach.metrics import counter_add

logger = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS = ("hits", "misses", "loads", "evictions")
# The singular label values of enreach_cache_events_total ("misses" is not "misse").
EVENT_LABELS = {"hits": "hit", "misses": "miss", "loads": "load", "evictions": "eviction"}
_MISSING = object()
LOCK_SECONDS = 30  # a loader taking longer than this no longer blocks others
WAIT_STEP = 0.05


@dataclass(frozen=True)
class CacheStats:
    """What ``cache_stats`` prints for one cache."""

    name: str
    hits: int
    misses: int
    loads: int
    evictions: int
    size: int
    ttl: int


class NamedCache:
    """A named TTL cache. Values must be picklable (they go to the database or Redis)."""

    def __init__(self, name: str, ttl: int | None = None) -> None:
        self.name = name
        self._ttl = ttl
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    @property
    def ttl(self) -> int:
        if self._ttl is not None:
            return self._ttl
        return int(settings.CACHE_TTLS.get(self.name, settings.CACHE_TTLS.get("default", 300)))

    def _prefix(self) -> str:
        return f"enreach:cache:{self.name}"

    def _generation(self) -> int:
        return int(cache.get(f"{self._prefix()}:gen") or 0)

    def _key(self, key: str, generation: int) -> str:
        return f"{self._prefix()}:{generation}:{key}"

    def _count(self, event: str, amount: int = 1) -> None:
        if amount <= 0:
            return
        stat_key = f"{self._prefix()}:stat:{event}"
        try:
            if not cache.add(stat_key, amount, timeout=None):
                cache.incr(stat_key, amount)
        except ValueError:  # evicted between add and incr
            cache.set(stat_key, amount, timeout=None)
        counter_add("enreach_cache_events_total", {"cache": self.name, "event": EVENT_LABELS[event]}, amount)

    def _index(self) -> dict[str, float]:
        """key -> expiry of the entries loaded in the current generation (for Size and TTL evictions)."""
        return dict(cache.get(f"{self._prefix()}:index") or {})

    def _index_update(self, key: str | None, expiry: float | None = None, *, clear: bool = False) -> int:
        index = {} if clear else self._index()
        now = time.time()
        expired = [k for k, until in index.items() if until <= now]
        for k in expired:
            del index[k]
        removed = len(expired)
        if key is not None:
            if expiry is None:
                removed += 1 if index.pop(key, None) is not None else 0
            else:
                index[key] = expiry
        cache.set(f"{self._prefix()}:index", index, timeout=None)
        return removed

    def get_or_load(self, key: str, loader: Callable[[], T]) -> T:
        """The cached value for ``key``, or ``loader()``'s result, stored for the cache's TTL."""
        generation = self._generation()
        full_key = self._key(key, generation)
        value = cache.get(full_key, _MISSING)
        if value is not _MISSING:
            self._count("hits")
            return value  # type: ignore[no-any-return]
        with self._locks_guard:
            local_lock = self._locks[key]
        with local_lock:
            value = cache.get(full_key, _MISSING)
            if value is not _MISSING:
                self._count("hits")
                return value  # type: ignore[no-any-return]
            self._count("misses")
            lock_key = f"{full_key}:loading"
            if not cache.add(lock_key, 1, timeout=LOCK_SECONDS):
                # Another process is loading it: wait for its result rather than hitting the source again.
                deadline = time.monotonic() + LOCK_SECONDS
                while True:
                    time.sleep(WAIT_STEP)
                    value = cache.get(full_key, _MISSING)
                    if value is not _MISSING:
                        return value  # type: ignore[no-any-return]
                    if time.monotonic() > deadline or cache.get(lock_key) is None:
                        # The loader stores its value before it releases the mark: read once more, or a release
                        # between the two reads above would load the value again.
                        value = cache.get(full_key, _MISSING)
                        if value is not _MISSING:
                            return value  # type: ignore[no-any-return]
                        break
            try:
                value = loader()
                ttl = self.ttl
                cache.set(full_key, value, timeout=ttl)
                self._count("loads")
                self._count("evictions", self._index_update(key, time.time() + ttl))
            finally:
                cache.delete(lock_key)
            return value

    def invalidate(self, key: str | None = None) -> None:
        """Drop one entry, or every entry of this cache."""
        if key is None:
            evicted = len(self._index())
            try:
                cache.incr(f"{self._prefix()}:gen")
            except ValueError:
                cache.set(f"{self._prefix()}:gen", 1, timeout=None)
            self._index_update(None, clear=True)
        else:
            cache.delete(self._key(key, self._generation()))
            evicted = self._index_update(key)
        self._count("evictions", evicted)
        logger.info("cache %s invalidated (%s)", self.name, key or "all")

    def stats(self) -> CacheStats:
        values = cache.get_many([f"{self._prefix()}:stat:{event}" for event in EVENTS])
        counts = {event: int(values.get(f"{self._prefix()}:stat:{event}", 0)) for event in EVENTS}
        now = time.time()
        size = sum(1 for until in self._index().values() if until > now)
        return CacheStats(name=self.name, size=size, ttl=self.ttl, **counts)


_registry: dict[str, NamedCache] = {}
_hooks: dict[str, set[str]] = defaultdict(set)


def named_cache(name: str) -> NamedCache:
    """The cache called ``name`` (created on first use)."""
    if name not in _registry:
        _registry[name] = NamedCache(name)
    return _registry[name]


def all_caches() -> list[NamedCache]:
    """Every configured or used cache, sorted by name."""
    for name in settings.CACHE_TTLS:
        if name != "default":
            named_cache(name)
    return [_registry[name] for name in sorted(_registry)]


def invalidate_on(event: str, name: str) -> None:
    """Invalidate cache ``name`` whenever ``event`` happens."""
    _hooks[event].add(name)


def cache_event(event: str) -> None:
    """Something changed (``key_changed``, ``export_succeeded``, ``confluence_written``): drop dependent caches."""
    for name in sorted(_hooks.get(event, ())):
        try:
            named_cache(name).invalidate()
        except Exception as exc:  # a cache outage must not fail the change that triggered it
            logger.warning("could not invalidate cache %s on %s: %s", name, event, exc)
