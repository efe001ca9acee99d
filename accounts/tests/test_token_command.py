"""`manage.py users token-create`: a first API token for automation, without a browser."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken


def token_create(*args: str) -> str:
    out = StringIO()
    call_command("users", "token-create", *args, stdout=out)
    return out.getvalue().strip()


def test_token_create_prints_only_a_token_that_authenticates(make_user):
    make_user("operator", username="bot")
    secret = token_create("bot")
    assert "\n" not in secret and " " not in secret
    api = APIClient()
    assert api.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").json()["username"] == "bot"
    stored = ApiToken.objects.get(user__username="bot")
    assert stored.key_hash != secret and secret not in stored.prefix + stored.label  # only the hash is kept


def test_token_create_read_only_with_expiry(make_user):
    make_user("operator", username="reader")
    data = json.loads(token_create("reader", "--read-only", "--expires", "30", "--json"))
    token = ApiToken.objects.get(prefix=data["prefix"])
    assert token.read_only and data["read_only"] is True
    assert abs(token.expires - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {data['token']}")
    assert api.get("/api/exports/runs/").status_code == 200
    assert api.post("/api/exports/runs/", {}, format="json").status_code == 403


@pytest.mark.parametrize("args", [("nobody",), ("bot", "--expires", "0")])
def test_token_create_refuses_unknown_users_and_bad_expiry(make_user, args):
    make_user("viewer", username="bot")
    with pytest.raises(CommandError):
        token_create(*args)
