"""Authorization matrix of the suggestions API (run by enreach/tests/test_authorization_matrix.py).

Any signed-in user reads, proposes, likes and comments; only the author or a holder of ``suggestions.manage`` (the
admin role) edits or deletes; read-only tokens refuse every unsafe method. The objects belong to ``other``, a member
who is none of the requesting users, so "member" below is a member who is not the author.
"""

from __future__ import annotations

from suggestions.models import Suggestion
from suggestions.services import suggestion_comment_create, suggestion_create, suggestion_like

# ROLES = ("anonymous", "viewer", "operator", "member", "admin", "read_only_token")


def make_objects(*, owner, other) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A suggestion by ``other`` with a comment by ``other`` and a like by ``owner``."""
    suggestion: Suggestion = suggestion_create(author=other, title="Dark mode", summary="Please")
    comment = suggestion_comment_create(suggestion=suggestion, author=other, text="+1")
    suggestion_like(suggestion=suggestion, user=owner)
    return {"suggestion": suggestion.pk, "comment": comment.pk}


def _status(*, anonymous: int = 401, signed_in: int, admin: int | None = None, read_only_token: int) -> dict[str, int]:
    return {
        "anonymous": anonymous,
        "viewer": signed_in,
        "operator": signed_in,
        "member": signed_in,
        "admin": signed_in if admin is None else admin,
        "read_only_token": read_only_token,
    }


READ = _status(signed_in=200, read_only_token=200)
EVERYONE_WRITES = _status(signed_in=200, read_only_token=403)
EVERYONE_CREATES = _status(signed_in=201, read_only_token=403)
MANAGERS_ONLY = _status(signed_in=403, admin=200, read_only_token=403)

CASES = [
    ("GET", "/api/suggestions/", None, READ),
    ("POST", "/api/suggestions/", {"title": "Export to PDF"}, EVERYONE_CREATES),
    ("GET", "/api/suggestions/{suggestion}/", None, READ),
    ("PATCH", "/api/suggestions/{suggestion}/", {"title": "Darker mode"}, MANAGERS_ONLY),
    ("PATCH", "/api/suggestions/{suggestion}/", {"status": "accepted"}, MANAGERS_ONLY),
    ("DELETE", "/api/suggestions/{suggestion}/", None, _status(signed_in=403, admin=204, read_only_token=403)),
    ("POST", "/api/suggestions/{suggestion}/like/", None, EVERYONE_WRITES),
    ("DELETE", "/api/suggestions/{suggestion}/like/", None, EVERYONE_WRITES),
    ("POST", "/api/suggestions/{suggestion}/comments/", {"text": "Agreed"}, EVERYONE_CREATES),
    ("PATCH", "/api/suggestions/{suggestion}/comments/{comment}/", {"text": "Edited"}, MANAGERS_ONLY),
    ("DELETE", "/api/suggestions/{suggestion}/comments/{comment}/", None, MANAGERS_ONLY),
]
