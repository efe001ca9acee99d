"""Sessions and messages through the API: ownership, permissions, pagination, renaming, deleting."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from chat.models import ChatMessage, ChatSession
from chat.services import chat_session_create


@pytest.fixture
def alice(make_user):
    return make_user(Role.MEMBER, username="alice")


@pytest.fixture
def bob(make_user):
    return make_user(Role.MEMBER, username="bob")


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_list_is_own_sessions_newest_first_with_total(alice, bob):
    for i in range(3):
        chat_session_create(owner=alice, title=f"A{i}")
    chat_session_create(owner=bob, title="B")
    body = client_of(alice).get("/api/chat/sessions/", {"limit": 2}).json()
    assert body["count"] == 3
    assert [s["title"] for s in body["results"]] == ["A2", "A1"]
    assert set(body["results"][0]) == {"id", "title", "context", "provider", "model", "message_count", "created",
                                       "updated"}  # fmt: skip


def test_create_defaults_to_new_chat_with_configured_model(alice, settings):
    settings.CHAT_MODEL = "gpt-z"
    response = client_of(alice).post("/api/chat/sessions/", {}, format="json")
    assert response.status_code == 201
    assert response.json()["title"] == "New chat" and response.json()["model"] == "gpt-z"
    assert ChatSession.objects.get(pk=response.json()["id"]).owner == alice


def test_create_with_title_and_context(alice):
    body = {"title": "  FRA1   questions ", "context": {"site": "FRA1"}}
    data = client_of(alice).post("/api/chat/sessions/", body, format="json").json()
    assert data["title"] == "FRA1 questions" and data["context"] == {"site": "FRA1"}


@pytest.mark.parametrize(
    ("body", "field"),
    [({"title": "x" * 201}, "title"), ({"context": [1, 2]}, "context"), ({"context": "site"}, "context")],
)
def test_create_rejects_bad_input_naming_the_field(alice, body, field):
    response = client_of(alice).post("/api/chat/sessions/", body, format="json")
    assert response.status_code == 400 and field in response.json()


def test_rename_with_patch(alice):
    session = chat_session_create(owner=alice)
    response = client_of(alice).patch(f"/api/chat/sessions/{session.pk}/", {"title": "Renamed"}, format="json")
    assert response.status_code == 200 and response.json()["title"] == "Renamed"
    session.refresh_from_db()
    assert session.title == "Renamed"


def test_rename_to_blank_is_refused(alice):
    session = chat_session_create(owner=alice)
    response = client_of(alice).patch(f"/api/chat/sessions/{session.pk}/", {"title": "  "}, format="json")
    assert response.status_code == 400 and "blank" in response.json()["detail"]


def test_put_is_not_offered(alice):
    session = chat_session_create(owner=alice)
    assert client_of(alice).put(f"/api/chat/sessions/{session.pk}/", {"title": "x"}, format="json").status_code == 405


def test_delete_removes_the_session_and_its_messages(alice):
    session = chat_session_create(owner=alice)
    ChatMessage.objects.create(session=session, role="user", content="hi")
    assert client_of(alice).delete(f"/api/chat/sessions/{session.pk}/").status_code == 204
    assert not ChatSession.objects.exists() and not ChatMessage.objects.exists()


def test_messages_are_listed_in_order(alice):
    session = chat_session_create(owner=alice)
    for role, content in [("user", "one"), ("assistant", "two"), ("user", "three")]:
        ChatMessage.objects.create(session=session, role=role, content=content)
    body = client_of(alice).get(f"/api/chat/sessions/{session.pk}/messages/").json()
    assert body["count"] == 3
    assert [(m["role"], m["content"]) for m in body["results"]] == [
        ("user", "one"), ("assistant", "two"), ("user", "three")
    ]  # fmt: skip


def test_unknown_session_is_404(alice):
    assert client_of(alice).get("/api/chat/sessions/999/messages/").status_code == 404
    assert client_of(alice).get("/api/chat/sessions/999/").status_code == 404


# --- isolation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ADMIN])
def test_nobody_can_touch_another_users_session(make_user, bob, role, llm):
    intruder = client_of(make_user(role))
    session = chat_session_create(owner=bob, title="Bob's")
    ChatMessage.objects.create(session=session, role="user", content="secret question")
    base = f"/api/chat/sessions/{session.pk}/"

    listed = intruder.get("/api/chat/sessions/").json()
    assert listed["count"] == 0
    assert intruder.get(base).status_code == 404
    assert intruder.get(base + "messages/").status_code == 404
    assert intruder.post(base + "messages/", {"content": "hi"}, format="json").status_code == 404
    stream = intruder.post(base + "messages/", {"content": "hi"}, format="json", HTTP_ACCEPT="text/event-stream")
    assert stream.status_code == 404
    assert intruder.patch(base, {"title": "Mine now"}, format="json").status_code == 404
    assert intruder.delete(base).status_code == 404

    session.refresh_from_db()
    assert session.title == "Bob's"
    assert list(session.messages.values_list("content", flat=True)) == ["secret question"]
    assert llm.requests == []


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_roles_without_chat_use_are_refused(client_for, role):
    client = client_for(role)
    assert client.get("/api/chat/sessions/").status_code == 403
    assert client.post("/api/chat/sessions/", {}, format="json").status_code == 403


def test_anonymous_is_401(api_client):
    assert api_client.get("/api/chat/sessions/").status_code == 401


# --- own key ------------------------------------------------------------------------------------------------------


def test_own_key_is_stored_encrypted_and_only_hinted(alice):
    client = client_of(alice)
    assert client.get("/api/chat/key/").json() == {"configured": False, "hint": None}
    response = client.put("/api/chat/key/", {"value": "sk-my-own-secret-key-abcd"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"configured": True, "hint": "••••abcd"}
    assert "sk-my-own" not in str(alice.chat_key.value_encrypted)
    assert client.delete("/api/chat/key/").status_code == 204
    assert client.get("/api/chat/key/").json()["configured"] is False
