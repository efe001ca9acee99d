"""Global keys: encrypted at rest, resolved database-first, rotated, and nothing secret left in the database."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from accounts import keys
from accounts.global_keys import global_key_delete, global_key_set
from accounts.keys import KeyUnavailable, secret_get
from accounts.models import GlobalKey
from integrations.exceptions import IntegrationError
from integrations.services import netbox_status_get

pytestmark = pytest.mark.django_db

SECRET = "atl-0123456789-ABCDEFGHIJ-secret-tail"


def all_database_text() -> str:
    """Every value of every row of every table, as one string."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                chunks.extend(v.decode(errors="replace") if isinstance(v, bytes | memoryview) else str(v) for v in row)
    return "\n".join(chunks)


def test_no_plaintext_secret_token_or_password_in_the_database(make_user):
    from conftest import PASSWORD

    admin = make_user("admin")
    client = APIClient()
    client.force_login(admin)
    assert (
        client.put("/api/admin/keys/atlassian/", {"value": SECRET, "label": "Confluence"}, format="json").status_code
        == 201
    )
    token = client.post("/api/profile/tokens/", {"label": "ci"}, format="json").json()["token"]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert bearer.get("/api/auth/me").status_code == 200
    dump = all_database_text()
    assert "atlassian" in dump and "ent_" in dump  # the scan does see these tables
    assert SECRET not in dump and SECRET[:-4] not in dump
    assert token not in dump and token[12:] not in dump
    assert PASSWORD not in dump


def test_secret_get_prefers_the_database_then_the_environment():
    assert secret_get("netbox", "from-env") == "from-env"
    global_key_set(name="netbox", value=SECRET)
    assert secret_get("netbox", "from-env") == SECRET
    global_key_delete(name="netbox")
    assert secret_get("netbox", "from-env") == "from-env"


def test_netbox_client_uses_the_global_key_first(netbox, settings):
    settings.NETBOX_TOKEN = "0" * 40  # a token the server rejects
    with pytest.raises(IntegrationError):
        netbox_status_get()
    global_key_set(name="netbox", value=netbox.token, label="NetBox")
    assert netbox_status_get()["token"] == "valid"
    # The URL can come from the key too.
    settings.NETBOX_URL = ""
    global_key_set(name="netbox", value=None, url=netbox.url)
    assert netbox_status_get()["devices"] == 40


def test_change_hooks_run_after_commit(django_capture_on_commit_callbacks):
    seen: list[str] = []

    def hook(name: str) -> None:
        seen.append(name)

    keys.key_change_hook_register(hook)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            global_key_set(name="backup", value=SECRET)
            assert seen == []  # not before the commit
        with django_capture_on_commit_callbacks(execute=True):
            global_key_delete(name="backup")
    finally:
        keys._hooks.remove(hook)
    assert seen == ["backup", "backup"]


def test_rotation_re_encrypts_every_value_with_the_new_key(settings):
    old = Fernet.generate_key().decode()
    settings.ENREACH_ENCRYPTION_KEY = old
    global_key_set(name="netbox", value=SECRET)
    global_key_set(name="backup", value="backup-passphrase-1234")
    before = GlobalKey.objects.get(name="netbox")
    new = Fernet.generate_key().decode()
    settings.ENREACH_ENCRYPTION_KEY = new
    with pytest.raises(KeyUnavailable, match="keys_rotate"):
        secret_get("netbox")
    with pytest.raises(CommandError):
        call_command("keys_rotate", f"--old-key={Fernet.generate_key().decode()}", stdout=io.StringIO())
    out = io.StringIO()
    # "--old-key=KEY": a Fernet key may start with "-", which argparse would take for an option.
    call_command("keys_rotate", f"--old-key={old}", stdout=out)
    assert "Re-encrypted 2 global keys" in out.getvalue()
    assert secret_get("netbox") == SECRET and secret_get("backup") == "backup-passphrase-1234"
    after = GlobalKey.objects.get(name="netbox")
    assert after.value_encrypted != before.value_encrypted and after.updated == before.updated
    # Several keys: the first encrypts, all decrypt.
    settings.ENREACH_ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},{new}"
    assert secret_get("netbox") == SECRET


def test_without_an_encryption_key_production_refuses_to_store_or_read(settings):
    global_key_set(name="netbox", value=SECRET)
    settings.ENREACH_ENCRYPTION_KEY = ""
    settings.ENREACH_ENCRYPTION_DEV_FALLBACK = False
    with pytest.raises(KeyUnavailable, match="ENREACH_ENCRYPTION_KEY must be set"):
        secret_get("netbox")
    assert secret_get("unset-key", "env") == "env"  # nothing stored: the environment still works
    client = APIClient()
    from accounts.services import user_create

    client.force_login(user_create(username="root", password="Root-passphrase-123", role="admin"))
    response = client.put("/api/admin/keys/backup/", {"value": "whatever-long-value"}, format="json")
    assert response.status_code == 400 and "ENREACH_ENCRYPTION_KEY" in str(response.json())


def test_development_key_is_derived_from_secret_key(settings):
    settings.ENREACH_ENCRYPTION_KEY = ""
    settings.ENREACH_ENCRYPTION_DEV_FALLBACK = True
    assert keys.configured_keys() == [keys.development_key(settings.SECRET_KEY)]
    Fernet(keys.configured_keys()[0])  # a valid Fernet key


def test_a_malformed_encryption_key_fails_the_system_check(settings):
    from accounts.checks import encryption_key_check

    settings.ENREACH_ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},not-a-key"
    errors = encryption_key_check()
    assert [e.id for e in errors] == ["accounts.E001"] and "key #2" in errors[0].msg
    settings.ENREACH_ENCRYPTION_KEY = Fernet.generate_key().decode()
    assert encryption_key_check() == []
