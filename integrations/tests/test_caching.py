"""Named TTL caches: counts, TTL, invalidation, stampede protection, and counts shared across processes."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection

from integrations.caching import NamedCache, cache_event, invalidate_on, named_cache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(db):
    made = NamedCache("test-cache", ttl=60)
    made.invalidate()
    cache.clear()  # counts of earlier tests
    return made


def test_get_or_load_counts_misses_loads_and_hits(fresh):
    calls = []
    assert fresh.get_or_load("k", lambda: calls.append(1) or {"v": 1}) == {"v": 1}
    assert fresh.get_or_load("k", lambda: calls.append(1) or {"v": 2}) == {"v": 1}
    assert fresh.get_or_load("k", lambda: calls.append(1) or {"v": 3}) == {"v": 1}
    assert len(calls) == 1
    stats = fresh.stats()
    assert (stats.hits, stats.misses, stats.loads, stats.evictions, stats.size, stats.ttl) == (2, 1, 1, 0, 1, 60)


def test_falsy_values_are_cached_too(fresh):
    calls = []
    assert fresh.get_or_load("zero", lambda: calls.append(1) or 0) == 0
    assert fresh.get_or_load("zero", lambda: calls.append(1) or 0) == 0
    assert len(calls) == 1


def test_invalidate_one_key_or_everything(fresh):
    fresh.get_or_load("a", lambda: 1)
    fresh.get_or_load("b", lambda: 2)
    fresh.invalidate("a")
    assert fresh.get_or_load("a", lambda: 10) == 10
    assert fresh.get_or_load("b", lambda: 20) == 2
    fresh.invalidate()
    assert fresh.get_or_load("b", lambda: 30) == 30
    stats = fresh.stats()
    assert stats.evictions == 3 and stats.size == 1


def test_entries_expire_after_their_ttl(db):
    short = NamedCache("test-short", ttl=1)
    short.invalidate()
    cache.clear()
    short.get_or_load("k", lambda: "old")
    time.sleep(1.2)
    assert short.get_or_load("k", lambda: "new") == "new"
    assert short.stats().loads == 2 and short.stats().evictions == 1


def test_loader_errors_are_not_cached(fresh):
    def broken():
        raise RuntimeError("source down")

    with pytest.raises(RuntimeError):
        fresh.get_or_load("k", broken)
    assert fresh.get_or_load("k", lambda: "ok") == "ok"


@pytest.mark.django_db(transaction=True)
def test_only_one_loader_runs_per_key_across_threads():
    shared = NamedCache("test-stampede", ttl=60)
    shared.invalidate()
    calls = []
    started = threading.Event()

    def slow_loader():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return "value"

    results = []
    threads = [threading.Thread(target=lambda: results.append(shared.get_or_load("k", slow_loader))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["value"] * 5 and len(calls) == 1


@pytest.mark.django_db(transaction=True)
def test_a_key_loading_elsewhere_is_waited_for_not_reloaded():
    fresh = NamedCache("test-elsewhere", ttl=60)
    fresh.invalidate()
    # Another process holds the loading mark and stores the value shortly after.
    generation = fresh._generation()
    full_key = fresh._key("k", generation)
    cache.add(f"{full_key}:loading", 1, timeout=30)
    threading.Timer(
        0.2, lambda: (cache.set(full_key, "from elsewhere", 60), cache.delete(f"{full_key}:loading"))
    ).start()
    assert fresh.get_or_load("k", lambda: "loaded here") == "from elsewhere"


def test_a_value_stored_just_before_the_mark_is_released_is_not_loaded_again(db, monkeypatch):
    """The other process stores its value and releases its mark between the waiter's two reads (value, then mark):
    the waiter must still take the stored value."""
    import integrations.caching as caching

    fresh = NamedCache("test-release-race", ttl=60)
    fresh.invalidate()
    full_key = fresh._key("k", fresh._generation())
    cache.add(f"{full_key}:loading", 1, timeout=30)

    class ReleasedWhileLooking:
        """Django's cache, where the other process finishes the moment the waiter looks at the mark."""

        def __getattr__(self, name):
            return getattr(cache, name)

        def get(self, key, default=None):
            if key == f"{full_key}:loading" and cache.get(key) is not None:
                cache.set(full_key, "from elsewhere", 60)
                cache.delete(key)
            return cache.get(key, default)

    monkeypatch.setattr(caching, "cache", ReleasedWhileLooking())
    assert fresh.get_or_load("k", lambda: "loaded here") == "from elsewhere"


def test_events_invalidate_the_caches_tied_to_them(fresh):
    invalidate_on("test_event", fresh.name)
    fresh.get_or_load("k", lambda: 1)
    cache_event("test_event")
    assert fresh.get_or_load("k", lambda: 2) == 2


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{settings_dict['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
        )
    env.update(DJANGO_SETTINGS_MODULE="enreach.settings", DEBUG="true")
    return env


@pytest.mark.django_db(transaction=True)
def test_cache_stats_in_another_process_sees_these_counts():
    netbox = named_cache("netbox")
    netbox.invalidate()
    cache.clear()
    netbox.get_or_load("probe", lambda: "x")
    netbox.get_or_load("probe", lambda: "y")
    result = subprocess.run(
        [sys.executable, "manage.py", "cache_stats", "--json"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    stats = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert stats["netbox"]["hits"] == 1 and stats["netbox"]["misses"] == 1 and stats["netbox"]["loads"] == 1
    assert stats["netbox"]["size"] == 1 and stats["netbox"]["ttl"] == 300
    table = subprocess.run(
        [sys.executable, "manage.py", "cache_stats"], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True
    )
    assert table.stdout.splitlines()[0].split() == [
        "Cache",
        "Hits",
        "Misses",
        "Loads",
        "Evictions",
        "Size",
        "TTL",
        "(s)",
    ]


def test_cache_clear_command(fresh, capsys):
    from django.core.management import CommandError, call_command

    named_cache("netbox").get_or_load("k", lambda: 1)
    call_command("cache_clear", "netbox")
    assert named_cache("netbox").stats().size == 0
    with pytest.raises(CommandError, match="Unknown cache"):
        call_command("cache_clear", "nope")


@pytest.mark.django_db(transaction=True)
def test_changing_a_global_key_invalidates_the_netbox_cache():
    from accounts.audit import AuditContext
    from accounts.global_keys import global_key_set

    netbox = named_cache("netbox")
    netbox.get_or_load("status", lambda: "old")
    global_key_set(name="netbox", value="0123456789abcdef0123456789abcdef01234567", label="", by=AuditContext.cli())
    assert netbox.get_or_load("status", lambda: "new") == "new"
