"""Authorization matrix of the chat API (run by enreach/tests/test_authorization_matrix.py).

``owner`` is the admin making the admin requests and owning the read-only token; ``other`` is a member who is none
of the requesting users. Sessions are their owner's alone: anybody else's is a 404, for admins too. Roles without
``chat.use`` (viewer, operator) get 403 before any lookup. No case reaches a chat provider: posting to one's own
session sends an empty message (400), so the matrix is the same whatever CHAT_API_KEY the environment holds.
"""

from __future__ import annotations

from chat.services import chat_session_create

# ROLES = ("anonymous", "viewer", "operator", "member", "admin", "read_only_token")


def make_objects(*, owner, other) -> dict[str, object]:
    """A session of the owner (the admin) and one of ``other``."""
    own = chat_session_create(owner=owner, title="Owner's chat")
    theirs = chat_session_create(owner=other, title="Other's chat")
    return {"own": own.pk, "theirs": theirs.pk}


def _status(*, member: int, admin: int, ro: int) -> dict[str, int]:
    return {"anonymous": 401, "viewer": 403, "operator": 403, "member": member, "admin": admin, "read_only_token": ro}


CASES = [
    ("GET", "/api/chat/sessions/", None, _status(member=200, admin=200, ro=200)),
    ("POST", "/api/chat/sessions/", {"title": "Matrix"}, _status(member=201, admin=201, ro=403)),
    # The owner's session: the admin (and their read-only token, for reads) reach it; the member does not.
    ("GET", "/api/chat/sessions/{own}/", None, _status(member=404, admin=200, ro=200)),
    ("PATCH", "/api/chat/sessions/{own}/", {"title": "Renamed"}, _status(member=404, admin=200, ro=403)),
    ("DELETE", "/api/chat/sessions/{own}/", None, _status(member=404, admin=204, ro=403)),
    ("GET", "/api/chat/sessions/{own}/messages/", None, _status(member=404, admin=200, ro=200)),
    ("POST", "/api/chat/sessions/{own}/messages/", {"content": ""}, _status(member=404, admin=400, ro=403)),
    # Somebody else's session: a 404 for everybody allowed to chat, admins included.
    ("GET", "/api/chat/sessions/{theirs}/", None, _status(member=404, admin=404, ro=404)),
    ("PATCH", "/api/chat/sessions/{theirs}/", {"title": "Mine"}, _status(member=404, admin=404, ro=403)),
    ("DELETE", "/api/chat/sessions/{theirs}/", None, _status(member=404, admin=404, ro=403)),
    ("GET", "/api/chat/sessions/{theirs}/messages/", None, _status(member=404, admin=404, ro=404)),
    ("POST", "/api/chat/sessions/{theirs}/messages/", {"content": "hi"}, _status(member=404, admin=404, ro=403)),
    # One's own provider key.
    ("GET", "/api/chat/key/", None, _status(member=200, admin=200, ro=200)),
    ("PUT", "/api/chat/key/", {"value": "sk-matrix-own-key-0000"}, _status(member=200, admin=200, ro=403)),
    ("DELETE", "/api/chat/key/", None, _status(member=204, admin=204, ro=403)),
]
