"""Authorization matrix of the accounts API (run by enreach/tests/test_authorization_matrix.py).

``owner`` is the admin making the admin requests and owning the read-only token; ``other`` is a member who is none
of the requesting users. Profile resources are one's own: another user's token is a 404 for everybody.
"""

from __future__ import annotations

from accounts.global_keys import global_key_set
from accounts.models import User
from accounts.tokens import api_token_create

# ROLES = ("anonymous", "viewer", "operator", "member", "admin", "read_only_token")
NEW_PASSWORD = "An0ther-long-passphrase-for-tests"


def make_objects(*, owner: User, other: User) -> dict[str, object]:
    """A token of the owner, a token of ``other``, and the global key ``netbox``."""
    own, _ = api_token_create(user=owner, label="owner's")
    theirs, _ = api_token_create(user=other, label="other's")
    global_key_set(name="netbox", value="0123456789abcdef0123456789abcdef01234567", label="NetBox")
    return {"own_token": own.pk, "other_token": theirs.pk, "other": other.pk}


def _status(anonymous: int = 401, *, viewer: int, operator: int, member: int, admin: int, ro: int) -> dict[str, int]:
    return {
        "anonymous": anonymous,
        "viewer": viewer,
        "operator": operator,
        "member": member,
        "admin": admin,
        "read_only_token": ro,
    }


def everyone(status: int, *, read_only_token: int | None = None) -> dict[str, int]:
    """Every signed-in user gets ``status``; the read-only token too unless told (unsafe methods: 403)."""
    ro = status if read_only_token is None else read_only_token
    return _status(viewer=status, operator=status, member=status, admin=status, ro=ro)


def admins(status: int, *, safe: bool) -> dict[str, int]:
    """Only the admin role; the admin's read-only token for safe methods only."""
    return _status(viewer=403, operator=403, member=403, admin=status, ro=status if safe else 403)


CASES = [
    ("GET", "/api/auth/me", None, everyone(200)),
    # Profile: one's own.
    ("GET", "/api/profile/", None, everyone(200)),
    (
        "PATCH",
        "/api/profile/",
        {"display_name": "Renamed", "preferences": {"theme": "dark"}},
        everyone(200, read_only_token=403),
    ),
    (
        "POST",
        "/api/profile/password/",
        {"current_password": "matrix-Passphrase-for-every-role-7", "new_password": NEW_PASSWORD},
        everyone(200, read_only_token=403),
    ),
    ("GET", "/api/profile/tokens/", None, everyone(200)),
    ("POST", "/api/profile/tokens/", {"label": "ci", "read_only": True}, everyone(201, read_only_token=403)),
    (
        "DELETE",
        "/api/profile/tokens/{own_token}/",
        None,
        _status(viewer=404, operator=404, member=404, admin=204, ro=403),
    ),
    ("DELETE", "/api/profile/tokens/{other_token}/", None, everyone(404, read_only_token=403)),
    # Admin API: users and roles need the admin role, keys need keys.manage (admins).
    ("GET", "/api/admin/users/", None, admins(200, safe=True)),
    (
        "POST",
        "/api/admin/users/",
        {"username": "newbie", "password": NEW_PASSWORD, "role": "viewer"},
        admins(201, safe=False),
    ),
    ("GET", "/api/admin/users/{other}/", None, admins(200, safe=True)),
    ("PATCH", "/api/admin/users/{other}/", {"role": "operator"}, admins(200, safe=False)),
    ("DELETE", "/api/admin/users/{other}/", None, admins(405, safe=False)),
    ("POST", "/api/admin/users/{other}/deactivate/", None, admins(200, safe=False)),
    ("POST", "/api/admin/users/{other}/reset-password/", {"password": NEW_PASSWORD}, admins(200, safe=False)),
    ("GET", "/api/admin/roles/", None, admins(200, safe=True)),
    ("GET", "/api/admin/roles/viewer/", None, admins(200, safe=True)),
    ("PATCH", "/api/admin/roles/viewer/", {"capabilities": ["export.download", "chat.use"]}, admins(200, safe=False)),
    ("GET", "/api/admin/keys/", None, admins(200, safe=True)),
    ("GET", "/api/admin/keys/netbox/", None, admins(200, safe=True)),
    ("PUT", "/api/admin/keys/backup/", {"value": "backup-passphrase-0042", "label": "Backup"}, admins(201, safe=False)),
    ("PUT", "/api/admin/keys/netbox/", {"label": "NetBox (prod)"}, admins(200, safe=False)),
    ("DELETE", "/api/admin/keys/netbox/", None, admins(204, safe=False)),
]
