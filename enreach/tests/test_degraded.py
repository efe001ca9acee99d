"""Degraded, never down: with Redis unreachable the cache answers misses, pages and the API keep working, and the
health check says what is down (with the reason for admins only)."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import cache

from accounts.tokens import api_token_create
from conftest import PASSWORD
from enreach.tests.redis_server import RedisServer


@pytest.fixture
def redis(tmp_path, settings):
    """The default cache on a throwaway redis-server, as in production."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    settings.CACHES = {"default": {"BACKEND": "enreach.cache_backends.RedisCache", "LOCATION": server.url}}
    yield server
    server.stop()


def test_the_redis_cache_answers_misses_while_redis_is_down_and_recovers_by_itself(redis, caplog):
    cache.set("kept", "value", 60)
    assert cache.get("kept") == "value"
    redis.stop()

    with caplog.at_level(logging.WARNING, logger="enreach.cache_backends"):
        assert cache.get("kept") is None and cache.get("kept", "fallback") == "fallback"
        assert cache.add("new", 1) is False
        cache.set("new", 1)
        assert cache.get_many(["kept", "new"]) == {}
        assert cache.delete("kept") is False and cache.has_key("kept") is False
        with pytest.raises(ValueError):
            cache.incr("counter")
        with pytest.raises(Exception, match=r"Connection refused|Error"):
            cache.ping()
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited: one line, not one per call

    redis.start()  # same port, empty: nothing in the app was restarted
    cache.set("back", "again", 60)
    assert cache.get("back") == "again"


@pytest.mark.django_db
def test_pages_tokens_and_lists_work_while_redis_is_down(redis, make_user, client):
    user = make_user("viewer")
    _, secret = api_token_create(user=user)
    redis.stop()

    from rest_framework.test import APIClient

    api = APIClient()
    assert api.get("/api/exports/runs/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    assert api.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    assert api.get("/api/exports/runs/", HTTP_AUTHORIZATION="Bearer ent_wrong").status_code == 401
    assert api.get("/api/exports/latest/netbox_devices_export.csv").status_code == 401
    from django.contrib.sessions.models import Session

    assert client.login(username=user.username, password=PASSWORD)  # the sign-in throttle fails open
    assert Session.objects.count() == 1  # in the database
    assert client.get("/exports/").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_health_names_the_cache_that_is_down_and_shows_the_reason_to_admins_only(redis, make_user, client):
    redis.stop()

    public = client.get("/api/health/")
    assert public.status_code == 503
    body = public.json()
    assert body["status"] == "down" and body["down"] == ["cache"]
    assert body["checks"]["cache"] == {"status": "down", "backend": "redis"}
    assert "error" not in str(body) and "latency" not in str(body)

    client.force_login(make_user("viewer"))
    assert "error" not in client.get("/api/health/").json()["checks"]["cache"]

    client.force_login(make_user("admin"))
    admin_view = client.get("/api/health/").json()["checks"]["cache"]
    assert admin_view["status"] == "down" and "Connection" in admin_view["error"]

    redis.start()
    assert client.get("/api/health/").status_code == 200
