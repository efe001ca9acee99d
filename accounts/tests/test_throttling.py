"""Rate limits: atomic counts, the real client address, valid credentials always work, a broken cache fails open."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEntry
from accounts.throttling import client_ip
from accounts.tokens import api_token_create
from conftest import PASSWORD

NEW_PASSWORD = "a-new-and-long-passphrase-42"
PARALLEL = 20


@pytest.fixture(autouse=True)
def _limits(settings, request):
    """Windows far longer than a test (no window boundary mid-test), and no counts left for the next test: the
    database cache's table is not rolled back or flushed with the test database."""
    settings.LOGIN_FAILURE_WINDOW = settings.TOKEN_FAILURE_WINDOW = 365 * 86400
    yield
    if "live_server" in request.fixturenames:  # the other tests' writes are rolled back with their transaction
        caches["default"].clear()


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def sign_in(client: Client, username: str, password: str, ip: str = "127.0.0.1", **extra: Any) -> str:
    response = client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip, follow=True, **extra
    )
    return response.content.decode()


# --- The client's address -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        ("", "10.0.0.1", "6.6.6.6", "10.0.0.1"),  # no proxy trusted: the header is ignored
        ("1", "10.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # one proxy: the address it appended
        ("2", "10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ("1", "10.0.0.1", "", "10.0.0.1"),  # a count but no header: the proxy itself
        ("1", "10.0.0.1", "not-an-ip", "10.0.0.1"),
        ("10.0.0.0/8", "10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ("10.0.0.0/8", "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # not through a trusted proxy
        ("10.0.0.0/8, ::1", "::1", "2001:db8::5", "2001:db8::5"),
    ],
)
def test_client_address_reads_forwarded_for_only_through_trusted_proxies(
    settings, trusted, remote, forwarded, expected
):
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


@pytest.mark.django_db
def test_behind_a_trusted_proxy_one_client_cannot_lock_out_another(settings, make_user):
    settings.TRUSTED_PROXIES = "1"
    settings.LOGIN_FAILURE_LIMIT = 2
    make_user("viewer", username="pat")
    for _ in range(3):
        sign_in(Client(), "pat", "wrong", HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert "Too many failed sign-ins" in sign_in(Client(), "pat", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.66")
    # The same proxy (REMOTE_ADDR), another client: signed in.
    client = Client()
    sign_in(client, "pat", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert "_auth_user_id" in client.session
    entry = AuditEntry.objects.filter(action="user.password_change").first()
    assert entry is None  # nothing else was written on the way


# --- Tokens -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_valid_token_always_works_whatever_others_sent_from_its_address(settings, make_user):
    settings.TOKEN_FAILURE_LIMIT = 2
    _, secret = api_token_create(user=make_user("viewer"))
    codes = [bearer(f"ent_guess{i}").get("/api/auth/me").status_code for i in range(5)]
    assert codes == [401, 401, 429, 429, 429]
    assert bearer(secret).get("/api/auth/me").status_code == 200


@pytest.mark.django_db
def test_token_failures_are_limited_per_prefix_across_addresses(settings, make_user):
    settings.TOKEN_FAILURE_LIMIT = 3
    codes = [
        bearer("ent_AAAAAAAAguess").get("/api/auth/me", REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]


@pytest.mark.django_db
def test_a_revoked_or_inactive_users_token_counts_as_a_failure(settings, make_user):
    settings.TOKEN_FAILURE_LIMIT = 1
    user = make_user("viewer")
    _, secret = api_token_create(user=user)
    user.is_active = False
    user.save()
    assert bearer(secret).get("/api/auth/me").status_code == 401
    assert bearer(secret).get("/api/auth/me").status_code == 429


# --- Passwords ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_address_trying_many_usernames_is_capped(settings, make_user):
    settings.LOGIN_FAILURE_LIMIT = 10
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 5
    make_user("viewer", username="quinn")
    bodies = [sign_in(Client(), f"user{i}", "wrong") for i in range(6)]
    assert ["Too many" in body for body in bodies] == [False] * 5 + [True]
    assert "Too many failed sign-ins from your address" in bodies[-1]
    # Another address is not affected, and its successes do not use up its budget.
    for _ in range(8):
        client = Client()
        sign_in(client, "quinn", PASSWORD, ip="10.9.9.9")
        assert "_auth_user_id" in client.session


@pytest.mark.django_db
def test_current_password_guesses_are_limited_like_sign_ins(settings, make_user):
    settings.LOGIN_FAILURE_LIMIT = 3
    user = make_user("member")
    _, secret = api_token_create(user=user)
    client = bearer(secret)
    codes = [
        client.post(
            "/api/profile/password/", {"current_password": f"guess{i}", "new_password": NEW_PASSWORD}
        ).status_code
        for i in range(3)
    ]
    assert codes == [400, 400, 400]
    blocked = client.post("/api/profile/password/", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert "current-password checks" in blocked.json()["detail"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_the_profile_page_shows_the_current_password_limit(settings, make_user):
    settings.LOGIN_FAILURE_LIMIT = 1
    client = Client()
    client.force_login(make_user("viewer"))
    form = {"action": "password", "current_password": "nope", "new_password": NEW_PASSWORD}
    client.post("/accounts/profile/", form)
    body = client.post("/accounts/profile/", {**form, "current_password": PASSWORD}).content.decode()
    assert "Too many failed current-password checks" in body


# --- Credentials end together -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_changing_ones_password_revokes_ones_tokens(make_user):
    user = make_user("member")
    _, first = api_token_create(user=user)
    _, second = api_token_create(user=user)
    response = bearer(first).post(
        "/api/profile/password/", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 200
    assert response.json() == {
        "detail": "Password changed: other sessions ended, 2 API tokens revoked.",
        "tokens_revoked": 2,
    }
    assert bearer(first).get("/api/auth/me").status_code == 401
    assert bearer(second).get("/api/auth/me").status_code == 401
    reasons = AuditEntry.objects.filter(action="token.revoke").values_list("detail__reason", flat=True)
    assert list(reasons) == ["password_change", "password_change"]
    assert AuditEntry.objects.get(action="user.password_change").detail == {"tokens_revoked": 2}


@pytest.mark.django_db
@pytest.mark.parametrize("door", ["reset-password", "deactivate"])
def test_an_admin_reset_or_deactivation_revokes_the_users_tokens(make_user, door):
    admin = make_user("admin")
    user = make_user("operator")
    _, secret = api_token_create(user=user)
    assert bearer(secret).get("/api/auth/me").status_code == 200
    client = APIClient()
    client.force_login(admin)
    body = {"password": NEW_PASSWORD} if door == "reset-password" else None
    response = client.post(f"/api/admin/users/{user.pk}/{door}/", body, format="json")
    assert response.status_code == 200 and response.json()["tokens_revoked"] == 1
    assert bearer(secret).get("/api/auth/me").status_code == 401
    assert not ApiToken.objects.filter(user=user, revoked__isnull=True).exists()
    action = "user.password_reset" if door == "reset-password" else "user.deactivate"
    assert AuditEntry.objects.get(action=action).detail == {"tokens_revoked": 1}


@pytest.mark.django_db
def test_the_admins_password_reset_says_the_tokens_were_revoked(make_user):
    admin = make_user("admin")
    user = make_user("viewer", username="rita")
    api_token_create(user=user)
    client = Client()
    client.force_login(admin)
    response = client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert "Password of rita reset; 1 API token revoked, sessions ended." in response.content.decode()


# --- A cache that is down -------------------------------------------------------------------------------------------


class MissCache(BaseCache):
    """What the Redis backend does during an outage: every read misses, every write is refused."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return default

    def add(self, key: Any, value: Any, timeout: Any = None, version: Any = None) -> bool:
        return False

    def set(self, key: Any, value: Any, timeout: Any = None, version: Any = None) -> bool:  # type: ignore[override]
        return False

    def delete(self, key: Any, version: Any = None) -> bool:
        return False

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        raise ValueError(f"Key '{key}' not found")


class RaisingCache(MissCache):
    """A cache whose every call raises (a client without the outage handling)."""

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        raise ConnectionError("redis is down")

    def add(self, key: Any, value: Any, timeout: Any = None, version: Any = None) -> bool:
        raise ConnectionError("redis is down")

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        raise ConnectionError("redis is down")


@pytest.mark.django_db
@pytest.mark.parametrize("backend", [MissCache, RaisingCache])
def test_a_broken_cache_lets_requests_through_with_a_warning(settings, make_user, caplog, backend):
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.{backend.__name__}"}}
    settings.LOGIN_FAILURE_LIMIT = settings.TOKEN_FAILURE_LIMIT = 2
    make_user("viewer", username="sam")
    with caplog.at_level(logging.WARNING, logger="accounts.throttling"):
        bodies = [sign_in(Client(), "sam", "wrong") for _ in range(4)]
        codes = [bearer("ent_nope").get("/api/auth/me").status_code for _ in range(4)]
        client = Client()
        sign_in(client, "sam", PASSWORD)
    assert not any("Too many" in body for body in bodies)
    assert codes == [401] * 4
    assert "_auth_user_id" in client.session
    assert "Rate limiting is off for this request: the cache failed" in caplog.text


# --- 20 parallel attempts against a live server ---------------------------------------------------------------------


def _parallel(fn: Any) -> list[Any]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(fn, range(PARALLEL)))


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_bad_tokens_get_at_most_the_limit_of_401s(settings, live_server):
    settings.TOKEN_FAILURE_LIMIT = 5
    codes = _parallel(
        lambda i: (
            requests.get(
                f"{live_server.url}/api/auth/me", headers={"Authorization": f"Bearer ent_guess{i}"}, timeout=60
            ).status_code
        )
    )
    print(f"\n{PARALLEL} parallel bad tokens, limit 5: {codes.count(401)} x 401, {codes.count(429)} x 429")
    assert codes.count(401) == 5 and codes.count(429) == PARALLEL - 5


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_wrong_passwords_check_at_most_the_limit(settings, live_server, make_user):
    settings.LOGIN_FAILURE_LIMIT = 5
    make_user("viewer", username="tess")

    def attempt(i: int) -> str:
        session = requests.Session()
        page = session.get(f"{live_server.url}/accounts/login/", timeout=60).text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        form = {"username": "tess", "password": f"wrong{i}", "csrfmiddlewaretoken": csrf}
        return session.post(f"{live_server.url}/accounts/login/", data=form, timeout=60).text

    bodies = _parallel(attempt)
    checked = sum("Too many failed sign-ins" not in body for body in bodies)
    print(f"\n{PARALLEL} parallel wrong sign-ins, limit 5: {checked} checked, {PARALLEL - checked} refused")
    assert checked == 5


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_wrong_current_passwords_check_at_most_the_limit(settings, live_server, make_user):
    settings.LOGIN_FAILURE_LIMIT = 5
    _, secret = api_token_create(user=make_user("member"))
    codes = _parallel(
        lambda i: (
            requests.post(
                f"{live_server.url}/api/profile/password/",
                json={"current_password": f"guess{i}", "new_password": NEW_PASSWORD},
                headers={"Authorization": f"Bearer {secret}"},
                timeout=60,
            ).status_code
        )
    )
    print(f"\n{PARALLEL} parallel wrong current passwords, limit 5: {codes.count(400)} x 400, {codes.count(429)} x 429")
    assert codes.count(400) == 5 and codes.count(429) == PARALLEL - 5


@pytest.mark.django_db
def test_the_users_command_says_the_tokens_were_revoked(make_user):
    from io import StringIO

    from django.core.management import call_command

    user = make_user("viewer", username="uma")
    api_token_create(user=user)
    api_token_create(user=user)
    err = StringIO()
    call_command("users", "deactivate", "uma", stdout=StringIO(), stderr=err)
    assert "2 API tokens of uma revoked." in err.getvalue()
    assert not ApiToken.objects.filter(user=user, revoked__isnull=True).exists()
