"""manage.py users: the same services and JSON shapes as the admin API."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import AuditEntry, User

pytestmark = pytest.mark.django_db

PASSWORD = "Command-line-passphrase-77"


def users(*args, stdin: str | None = None, monkeypatch=None) -> str:
    out = io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command("users", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def admin_client(make_user):
    client = APIClient()
    client.force_login(make_user("admin", username="boss"))
    return client


def test_cli_and_api_give_the_same_json_for_the_same_user(monkeypatch, admin_client):
    created = json.loads(
        users("create", "carol", "--role", "operator", "--email", "c@example.com", "--password-stdin", "--json",
              stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    )  # fmt: skip
    carol = User.objects.get(username="carol")
    assert carol.check_password(PASSWORD) and carol.role == "operator"
    api = admin_client.get(f"/api/admin/users/{carol.pk}/").json()
    assert created == api
    listed = {u["username"]: u for u in json.loads(users("list", "--json"))}
    api_listed = {u["username"]: u for u in admin_client.get("/api/admin/users/").json()["results"]}
    assert listed == api_listed and listed["carol"] == api
    changed = json.loads(users("set-role", "carol", "member", "--json"))
    assert changed == admin_client.get(f"/api/admin/users/{carol.pk}/").json() and changed["role"] == "member"
    entry = AuditEntry.objects.filter(target="user:carol").first()
    assert entry is not None and entry.source == "cli" and entry.actor_name.startswith("cli:")


def test_set_password_and_deactivate(monkeypatch, make_user):
    dave = make_user("viewer", username="dave")
    users("set-password", "dave", "--password-stdin", stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    dave.refresh_from_db()
    assert dave.check_password(PASSWORD)
    out = users("deactivate", "dave")
    assert "inactive" in out
    dave.refresh_from_db()
    assert not dave.is_active
    assert "dave" in users("list", "--inactive")


def test_generated_password_is_printed_once_on_stderr(make_user):
    out, err = io.StringIO(), io.StringIO()
    call_command("users", "create", "erin", "--generate", "--json", stdout=out, stderr=err)
    password = err.getvalue().split("shown once): ")[1].strip()
    assert User.objects.get(username="erin").check_password(password)
    assert password not in out.getvalue() and json.loads(out.getvalue())["username"] == "erin"


def test_errors_are_one_line_command_errors(monkeypatch, make_user):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        users("set-role", "ghost", "admin")
    with pytest.raises(CommandError, match=r"too short|too common"):
        users("create", "frank", "--password-stdin", stdin="abc\n", monkeypatch=monkeypatch)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="--password-stdin"):
        users("create", "frank")
    last = make_user("admin")
    with pytest.raises(CommandError, match="last active admin"):
        users("set-role", last.username, "viewer")
    with pytest.raises(CommandError, match="last active admin"):
        users("deactivate", last.username)
