"""Chat history in the Django admin: visible to admins, read-only."""

from __future__ import annotations

from accounts.roles import Role
from chat.models import ChatMessage
from chat.services import chat_session_create


def test_admin_reads_sessions_and_messages_but_cannot_change_them(make_user, client):
    admin_user = make_user(Role.ADMIN)  # admins are staff
    session = chat_session_create(owner=make_user(Role.MEMBER), title="Storage questions")
    message = ChatMessage.objects.create(session=session, role="user", content="How many NAS boxes?")
    client.force_login(admin_user)

    listing = client.get("/admin/chat/chatsession/")
    assert listing.status_code == 200 and "Storage questions" in listing.content.decode()
    detail = client.get(f"/admin/chat/chatsession/{session.pk}/change/")
    assert detail.status_code == 200 and "How many NAS boxes?" in detail.content.decode()
    assert client.get(f"/admin/chat/chatmessage/{message.pk}/change/").status_code == 200
    assert client.get("/admin/chat/chatmessage/").status_code == 200

    assert client.get("/admin/chat/chatsession/add/").status_code == 403
    assert client.get(f"/admin/chat/chatsession/{session.pk}/delete/").status_code == 403
    client.post(f"/admin/chat/chatsession/{session.pk}/change/", {"title": "Hacked"})
    session.refresh_from_db()
    assert session.title == "Storage questions"
