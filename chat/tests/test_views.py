"""The chat page: who may open it, which conversation it opens, what it says before the first question."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.roles import Role
from chat.provider import chat_user_key_set
from chat.services import chat_session_create


@pytest.fixture
def alice(make_user):
    return make_user(Role.MEMBER, username="alice")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_members_get_the_page_and_the_nav_link(alice, llm):
    response = _client(alice).get("/chat/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="/chat/">Chat</a>' in html and 'id="chat-composer"' in html
    assert 'src="/static/chat/chat.js"' in html
    # The page keeps to the Content-Security-Policy of the site: no inline script or style.
    assert "<script>" not in html and "<style" not in html and "style=" not in html


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_users_without_chat_use_get_403_and_no_nav_link(make_user, role):
    client = _client(make_user(role))
    assert client.get("/chat/").status_code == 403
    assert 'href="/chat/"' not in client.get("/").content.decode()


def test_anonymous_is_sent_to_sign_in(db):
    response = Client().get("/chat/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_own_session_opens_and_anybody_elses_is_404(alice, make_user, llm):
    session = chat_session_create(owner=alice, title="Backups <b>AMS1</b>")
    response = _client(alice).get(f"/chat/{session.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-session="{session.pk}"' in html and "Backups &lt;b&gt;AMS1&lt;/b&gt;" in html
    bob = make_user(Role.MEMBER, username="bob")
    assert _client(bob).get(f"/chat/{session.pk}/").status_code == 404
    assert _client(alice).get("/chat/999999/").status_code == 404


def test_without_provider_the_page_says_what_an_admin_must_set(alice, no_provider):
    html = _client(alice).get("/chat/").content.decode()
    assert 'id="chat-not-configured"' in html and "CHAT_API_KEY" in html


def test_without_export_the_page_links_to_the_exports_page(alice, llm):
    html = _client(alice).get("/chat/").content.decode()
    assert 'id="chat-no-export"' in html and 'href="/exports/"' in html
    assert 'id="chat-not-configured"' not in html


def test_with_an_export_the_page_names_it(alice, llm, export):
    html = _client(alice).get("/chat/").content.decode()
    assert f"CMDB of export #{export.pk}" in html and 'id="chat-no-export"' not in html


def test_own_key_shows_only_masked(alice, no_provider):
    chat_user_key_set(user=alice, value="sk-alice-own-secret-key-7890")
    html = _client(alice).get("/chat/").content.decode()
    assert "••••7890" in html and "sk-alice-own-secret" not in html
    # With their own key the user can chat although no provider is configured globally.
    assert 'id="chat-not-configured"' not in html
