"""Failed sign-ins are rate limited per username and address, with a clear message."""

import re

import pytest
from django.test import Client

from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str, ip: str = "127.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip, follow=True)


def test_after_too_many_failures_even_the_right_password_waits(settings, make_user):
    settings.LOGIN_FAILURE_LIMIT = 3
    user = make_user("viewer", username="lena")
    client = Client()
    for _ in range(3):
        response = sign_in(client, "lena", "wrong")
        assert "Too many failed sign-ins" not in response.content.decode()
    blocked = sign_in(client, "LENA", PASSWORD)
    body = blocked.content.decode()
    assert re.search(r"Too many failed sign-ins for this account from your address\. Try again in \d+ \w+\.", body)
    assert "_auth_user_id" not in client.session
    # Another address, or another account from this address, is not blocked.
    assert sign_in(Client(), "lena", PASSWORD, ip="10.1.2.3").context["user"] == user
    make_user("viewer", username="mo")
    assert sign_in(Client(), "mo", PASSWORD).context["user"].username == "mo"


def test_a_success_resets_the_count(settings, make_user):
    settings.LOGIN_FAILURE_LIMIT = 3
    make_user("viewer", username="nina")
    client = Client()
    for _ in range(2):
        sign_in(client, "nina", "wrong")
    assert sign_in(client, "nina", PASSWORD).context["user"].username == "nina"
    client.logout()
    for _ in range(2):
        sign_in(client, "nina", "wrong")
    assert sign_in(client, "nina", PASSWORD).context["user"].username == "nina"


def test_the_admin_sign_in_is_limited_too(settings, make_user):
    settings.LOGIN_FAILURE_LIMIT = 2
    make_user("admin", username="olga")
    client = Client()
    for _ in range(2):
        client.post("/admin/login/", {"username": "olga", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "olga", "password": PASSWORD}, follow=True)
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
