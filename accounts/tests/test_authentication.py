from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.tokens import api_token_create

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_bearer_token_authenticates_and_is_stored_hashed(make_user):
    user = make_user("operator")
    token, secret = api_token_create(user=user, label="ci")
    response = bearer(secret).get("/api/auth/me")
    assert response.status_code == 200
    assert response.json()["username"] == user.username
    assert not ApiToken.objects.filter(key_hash__contains=secret).exists()
    assert secret not in str(ApiToken.objects.values_list())
    token.refresh_from_db()
    assert token.last_used is not None


def test_me_lists_role_and_sorted_capabilities(make_user):
    _, secret = api_token_create(user=make_user("member"))
    body = bearer(secret).get("/api/auth/me").json()
    assert body["role"] == "member"
    assert body["capabilities"] == ["chat.use", "export.download", "export.run"]
    assert set(body) == {
        "id", "username", "display_name", "email", "role", "capabilities", "is_active", "created", "last_login",
    }  # fmt: skip


@pytest.mark.parametrize("state", ["revoked", "expired", "unknown", "inactive"])
def test_unusable_tokens_are_rejected(make_user, state):
    user = make_user("viewer")
    token, secret = api_token_create(user=user)
    if state == "revoked":
        token.revoked = timezone.now()
        token.save()
    elif state == "expired":
        token.expires = timezone.now() - timedelta(seconds=1)
        token.save()
    elif state == "unknown":
        secret += "x"
    else:
        user.is_active = False
        user.save()
    assert bearer(secret).get("/api/auth/me").status_code == 401


def test_read_only_token_refuses_unsafe_methods(make_user):
    _, secret = api_token_create(user=make_user("admin"), read_only=True)
    client = bearer(secret)
    assert client.get("/api/auth/me").status_code == 200
    assert client.post("/api/auth/me", {}).status_code == 403
