"""LDAP / Active Directory sign-in against a real OpenLDAP server (Debian's slapd) on loopback.

The server is started by the ``slapd`` fixture with a generated config and CA (``devtools.ldap_server``); the
tests change the directory with ldapmodify / ldapdelete as an administrator would, and sign in through the real
sign-in page. Two shapes: OpenLDAP (inetOrgPerson + groupOfNames, StartTLS, ppolicy locks) and Active Directory
(sAMAccountName, userAccountControl, nested groups, LDAPS).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from accounts.errors import AccountError
from accounts.models import ApiToken, AuditEntry, User
from accounts.services import user_create, user_set_password
from accounts.tokens import api_token_create
from devtools.ldap_server import BASE_DN, BIND_DN, BIND_PASSWORD, Slapd, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

PASSWORD = "Directory-passphrase-31"
AD_FILTER = "(&(sAMAccountName=%(user)s)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    with Slapd() as server:
        yield server


@pytest.fixture
def groups(slapd: Slapd) -> dict[str, str]:
    """Fresh groupOfNames for each role (unique names: the server is shared by the module's tests)."""
    n = next(_names)
    return {role: slapd.add_group(f"cmdb-{role}s-{n}", []) for role in ("admin", "member", "operator", "viewer")}


@pytest.fixture
def ldap_on(settings, slapd: Slapd, groups: dict[str, str]) -> dict[str, str]:
    """The app configured as the README says for OpenLDAP: StartTLS with the CA file, a service account."""
    settings.AUTH_LDAP_SERVER_URI = slapd.uri
    settings.AUTH_LDAP_START_TLS = True
    settings.AUTH_LDAP_CA_FILE = slapd.ca_file
    settings.AUTH_LDAP_BIND_DN = BIND_DN
    settings.AUTH_LDAP_BIND_PASSWORD = BIND_PASSWORD
    settings.AUTH_LDAP_USER_SEARCH_BASE = f"ou=people,{BASE_DN}"
    settings.AUTH_LDAP_USER_SEARCH_FILTER = "(uid=%(user)s)"
    settings.AUTH_LDAP_GROUP_SEARCH_BASE = f"ou=groups,{BASE_DN}"
    settings.AUTH_LDAP_GROUP_TYPE = "groupOfNames"
    settings.AUTH_LDAP_ROLE_GROUPS = ";".join(f"{role}={dn}" for role, dn in groups.items())
    settings.AUTH_LDAP_DEFAULT_ROLE = ""
    settings.AUTH_LDAP_TIMEOUT = 3.0
    return groups


def person(slapd: Slapd, *groups: str, given: str = "Ada", surname: str = "Lovelace") -> tuple[str, str]:
    """A new person in the directory, member of ``groups``: (uid, dn)."""
    uid = f"person{next(_names)}"
    dn = slapd.add_person(uid, PASSWORD, given=given, surname=surname, mail=f"{uid}@enreach.test")
    for group in groups:
        slapd.group_add_member(group, dn)
    return uid, dn


def sign_in(username: str, password: str = PASSWORD, client: Client | None = None):
    client = client or Client()
    response = client.post("/accounts/login/", {"username": username, "password": password}, follow=True)
    return client, response


def signed_in_as(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def test_first_sign_in_creates_the_user_with_the_mapped_role(slapd, ldap_on):
    uid, dn = person(slapd, ldap_on["operator"])
    assert not User.objects.filter(username=uid).exists()

    client, response = sign_in(uid)

    user = signed_in_as(client)
    assert user is not None and user.username == uid
    assert (user.role, user.source, user.directory_id, user.is_active) == ("operator", "ldap", dn, True)
    assert (user.first_name, user.last_name, user.email) == ("Ada", "Lovelace", f"{uid}@enreach.test")
    assert user.display_name == "Ada Lovelace"
    assert not user.has_usable_password()
    assert user.has_capability("export.run") and not user.has_capability("chat.use")
    assert response.request["PATH_INFO"] == "/"
    entry = AuditEntry.objects.get(action="user.sign_in", target=f"user:{uid}")
    assert entry.detail == {"method": "ldap", "role": "operator", "groups": [ldap_on["operator"]]}
    created = AuditEntry.objects.get(action="user.create", target=f"user:{uid}")
    assert created.source == "ldap" and created.detail == {"role": "operator"}


def test_the_highest_mapped_role_wins(slapd, ldap_on):
    uid, _ = person(slapd, ldap_on["viewer"], ldap_on["admin"], ldap_on["operator"])
    client, _ = sign_in(uid)
    user = signed_in_as(client)
    assert user is not None and user.role == "admin" and user.is_staff and user.is_superuser
    assert client.get("/admin/").status_code == 200


def test_a_group_change_in_the_directory_changes_the_role_at_the_next_sign_in(slapd, ldap_on):
    uid, dn = person(slapd, ldap_on["operator"])
    sign_in(uid)
    assert User.objects.get(username=uid).role == "operator"

    slapd.group_remove_member(ldap_on["operator"], dn)
    slapd.group_add_member(ldap_on["member"], dn)
    client, _ = sign_in(uid)

    user = signed_in_as(client)
    assert user is not None and user.role == "member" and user.has_capability("chat.use")
    change = AuditEntry.objects.get(action="user.role", target=f"user:{uid}")
    assert change.source == "ldap" and change.actor is None
    assert change.detail == {"from": "operator", "to": "member", "groups": [ldap_on["member"]]}


def test_a_user_in_no_mapped_group_is_refused_with_a_clear_message(slapd, ldap_on):
    uid, _ = person(slapd)  # in no group
    client, response = sign_in(uid)
    body = response.content.decode()
    assert "is not in any group that gives access to Enreach tools" in body
    assert "didn't match" not in body
    assert signed_in_as(client) is None
    assert not User.objects.filter(username=uid).exists()
    refused = AuditEntry.objects.get(action="user.sign_in_refused", target=f"user:{uid}")
    assert refused.detail == {"method": "ldap", "reason": "no_role"}


def test_the_default_role_lets_a_user_in_no_mapped_group_in(settings, slapd, ldap_on):
    settings.AUTH_LDAP_DEFAULT_ROLE = "viewer"
    uid, _ = person(slapd)
    client, _ = sign_in(uid)
    user = signed_in_as(client)
    assert user is not None and user.role == "viewer"


def test_removed_from_every_mapped_group_means_deactivated_and_tokens_revoked_at_the_next_attempt(slapd, ldap_on):
    uid, dn = person(slapd, ldap_on["member"])
    sign_in(uid)
    user = User.objects.get(username=uid)
    _, secret = api_token_create(user=user, label="ci")
    slapd.group_remove_member(ldap_on["member"], dn)

    client, response = sign_in(uid)

    assert "is not in any group that gives access" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active and signed_in_as(client) is None
    assert ApiToken.objects.get(user=user).revoked is not None
    assert APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_a_disabled_user_is_refused_and_their_tokens_revoked(slapd, ldap_on):
    uid, dn = person(slapd, ldap_on["operator"])
    session_client, _ = sign_in(uid)
    user = User.objects.get(username=uid)
    _, secret = api_token_create(user=user, label="laptop")
    assert APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200

    slapd.lock(dn)  # pwdAccountLockedTime: slapd now refuses the bind, as a real server does
    client, response = sign_in(uid)

    assert signed_in_as(client) is None
    # The person only learns that the sign-in failed (the password may be anybody's guess)...
    assert "didn't match" in response.content.decode()
    # ...while the account is deactivated, its tokens revoked and its open session ended.
    user.refresh_from_db()
    assert not user.is_active
    assert APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    revoke = AuditEntry.objects.get(action="token.revoke", target__startswith="token:")
    assert revoke.detail["reason"] == "directory_disabled" and revoke.source == "ldap"
    assert session_client.get("/").status_code == 302
    assert AuditEntry.objects.get(action="user.deactivate", target=f"user:{uid}").detail["reason"] == "disabled"


def test_a_wrong_password_changes_nothing(slapd, ldap_on):
    uid, _ = person(slapd, ldap_on["viewer"])
    sign_in(uid)
    client, response = sign_in(uid, "not-the-password")
    assert signed_in_as(client) is None and "didn't match" in response.content.decode()
    assert User.objects.get(username=uid).is_active


def test_directory_sync_deactivates_a_removed_user_and_follows_group_changes(slapd, ldap_on, capsys):
    gone, gone_dn = person(slapd, ldap_on["member"])
    moved, moved_dn = person(slapd, ldap_on["viewer"])
    stays, _ = person(slapd, ldap_on["operator"])
    for uid in (gone, moved, stays):
        sign_in(uid)
    _, secret = api_token_create(user=User.objects.get(username=gone), label="script")
    slapd.delete(gone_dn)
    slapd.group_add_member(ldap_on["admin"], moved_dn)

    call_command("directory_sync")

    out = capsys.readouterr().out
    assert f"Deactivated:  {gone}" in out and f"Role changed: {moved}" in out
    assert not User.objects.get(username=gone).is_active
    assert APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert User.objects.get(username=moved).role == "admin"
    assert User.objects.get(username=stays).is_active and User.objects.get(username=stays).role == "operator"
    entry = AuditEntry.objects.get(action="user.deactivate", target=f"user:{gone}")
    assert entry.source == "ldap" and entry.detail == {"reason": "removed", "tokens_revoked": 1}


def test_the_sync_schedule_exists_while_ldap_is_configured(settings, ldap_on):
    from django_q.models import Schedule

    from integrations.directory.sync import SCHEDULE_NAME, directory_sync_schedule_sync

    assert directory_sync_schedule_sync() in {"created", "updated"}
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert schedule.schedule_type == Schedule.DAILY
    assert schedule.func == "integrations.directory.tasks.directory_sync_task"
    from integrations.directory.tasks import directory_sync_task

    assert directory_sync_task().startswith("checked ")
    settings.AUTH_LDAP_SERVER_URI = ""
    assert directory_sync_schedule_sync() == "removed"
    assert not Schedule.objects.filter(name=SCHEDULE_NAME).exists()


def test_a_local_account_is_not_taken_over_by_the_directory(slapd, ldap_on):
    uid, _ = person(slapd, ldap_on["admin"])
    local = user_create(username=uid, password="Local-passphrase-77", role="viewer")
    client, response = sign_in(uid)
    assert "is a local account of Enreach tools" in response.content.decode()
    assert signed_in_as(client) is None
    local.refresh_from_db()
    assert (local.source, local.role) == ("local", "viewer")
    client, _ = sign_in(uid, "Local-passphrase-77")
    assert signed_in_as(client) == local


def test_local_passwords_of_directory_users_are_off_unless_allowed(settings, slapd, ldap_on):
    uid, _ = person(slapd, ldap_on["viewer"])
    sign_in(uid)
    user = User.objects.get(username=uid)
    with pytest.raises(AccountError, match="local passwords are off for directory users"):
        user_set_password(user=user, password="Local-fallback-passphrase-5")
    settings.DIRECTORY_ALLOW_LOCAL_PASSWORDS = True
    user_set_password(user=user, password="Local-fallback-passphrase-5")
    settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"  # the directory is down
    client, _ = sign_in(uid, "Local-fallback-passphrase-5")
    assert signed_in_as(client) == user
    settings.DIRECTORY_ALLOW_LOCAL_PASSWORDS = False
    client, _ = sign_in(uid, "Local-fallback-passphrase-5")
    assert signed_in_as(client) is None


def test_one_sign_in_is_one_attempt_and_the_limit_holds_for_directory_users(settings, slapd, ldap_on):
    settings.LOGIN_FAILURE_LIMIT = 2
    uid, _ = person(slapd, ldap_on["viewer"])
    client = Client()
    sign_in(uid, "wrong", client)  # looked at by the LDAP and the local backend: counted once
    assert signed_in_as(sign_in(uid, client=client)[0]) is not None
    client.logout()
    for _ in range(2):
        sign_in(uid, "wrong", client)
    client, response = sign_in(uid, client=client)
    assert "Too many failed sign-ins" in response.content.decode() and signed_in_as(client) is None


def test_the_bind_password_may_be_the_global_key(settings, slapd, ldap_on):
    from accounts.global_keys import global_key_set

    settings.AUTH_LDAP_BIND_PASSWORD = "not-the-service-password"
    uid, _ = person(slapd, ldap_on["viewer"])
    assert signed_in_as(sign_in(uid)[0]) is None
    global_key_set(name="ldap", value=BIND_PASSWORD)
    assert signed_in_as(sign_in(uid)[0]) is not None


def test_no_password_reaches_a_log(settings, slapd, ldap_on, caplog):
    caplog.set_level(logging.DEBUG)
    uid, _ = person(slapd, ldap_on["viewer"])
    sign_in(uid)
    sign_in(uid, "Wrong-passphrase-for-the-log")
    settings.AUTH_LDAP_BIND_PASSWORD = "Refused-bind-secret-for-the-log"
    sign_in(uid)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Binding as" in logged  # django-auth-ldap's debug lines were captured
    for secret in (PASSWORD, BIND_PASSWORD, "Wrong-passphrase-for-the-log", "Refused-bind-secret-for-the-log"):
        assert secret not in logged


def test_the_break_glass_admin_signs_in_with_ldap_down(settings, ldap_on, caplog):
    """A directory of its own, stopped mid-test: LDAP users cannot sign in, nobody is deactivated for it, and the
    local admin still can."""
    with Slapd() as own:
        group = own.add_group("cmdb-admins", [])
        dn = own.add_person("dora", PASSWORD, given="Dora", surname="Directory")
        own.group_add_member(group, dn)
        settings.AUTH_LDAP_SERVER_URI = own.uri
        settings.AUTH_LDAP_CA_FILE = own.ca_file
        settings.AUTH_LDAP_ROLE_GROUPS = f"admin={group}"
        assert signed_in_as(sign_in("dora")[0]) is not None
        user_create(username="breakglass", password="Break-glass-passphrase-1", role="admin")
        own.stop()

        client, response = sign_in("dora")
        assert signed_in_as(client) is None and response.status_code == 200
        assert User.objects.get(username="dora").is_active  # down is not "removed"
        with pytest.raises(CommandError, match="Directory sync failed: The LDAP directory failed"):
            call_command("directory_sync")
        assert User.objects.get(username="dora").is_active

        client, _ = sign_in("breakglass", "Break-glass-passphrase-1")
        assert signed_in_as(client).username == "breakglass"
        assert client.get("/admin/").status_code == 200
        assert "LDAP sign-in unavailable, trying local accounts" in caplog.text


# --- Active Directory shape, over LDAPS ----------------------------------------------------------------------------


@pytest.fixture
def ad_on(settings, slapd: Slapd) -> dict[str, str]:
    """Active Directory as the README configures it: ldaps://, sAMAccountName, nested groups, the disabled clause
    left out of the filter so the test reaches the userAccountControl check too."""
    n = next(_names)
    admins = slapd.add_ad_group(f"CMDB Admins {n}", [])
    operators = slapd.add_ad_group(f"CMDB Operators {n}", [])
    settings.AUTH_LDAP_SERVER_URI = slapd.ldaps_uri
    settings.AUTH_LDAP_START_TLS = False
    settings.AUTH_LDAP_CA_FILE = slapd.ca_file
    settings.AUTH_LDAP_BIND_DN = BIND_DN
    settings.AUTH_LDAP_BIND_PASSWORD = BIND_PASSWORD
    settings.AUTH_LDAP_USER_SEARCH_BASE = f"ou=corp,{BASE_DN}"
    settings.AUTH_LDAP_USER_SEARCH_FILTER = "(&(sAMAccountName=%(user)s)(objectClass=user))"
    settings.AUTH_LDAP_USER_ATTR_MAP = {"first_name": "givenName", "last_name": "sn", "email": "mail"}
    settings.AUTH_LDAP_GROUP_SEARCH_BASE = f"ou=corp,{BASE_DN}"
    settings.AUTH_LDAP_GROUP_TYPE = "activeDirectory"
    # DNs in another spelling than the directory's: compared case- and space-insensitively.
    settings.AUTH_LDAP_ROLE_GROUPS = f"admin={admins.upper()};operator={operators.replace(',', ', ')}"
    settings.AUTH_LDAP_DEFAULT_ROLE = ""
    return {"admin": admins, "operator": operators}


def test_active_directory_nested_group_gives_the_role_over_ldaps(slapd, ad_on):
    sam = f"ad{next(_names)}"
    dn = slapd.add_ad_user(sam, PASSWORD, given="Grace", surname="Hopper")
    team = slapd.add_ad_group(f"Team {sam}", [dn])
    slapd.group_add_member(ad_on["operator"], team)  # the user is in the operators only through their team

    client, _ = sign_in(sam)

    user = signed_in_as(client)
    assert user is not None and (user.role, user.directory_id) == ("operator", dn)
    assert (user.email, user.display_name) == (f"{sam}@corp.enreach.test", "Grace Hopper")


def test_active_directory_disabled_account_is_refused_and_tokens_revoked(settings, slapd, ad_on):
    sam = f"ad{next(_names)}"
    dn = slapd.add_ad_user(sam, PASSWORD)
    slapd.group_add_member(ad_on["admin"], dn)
    sign_in(sam)
    user = User.objects.get(username=sam)
    _, secret = api_token_create(user=user, label="t")

    slapd.ad_set_disabled(dn, True)  # userAccountControl |= ACCOUNTDISABLE
    client, response = sign_in(sam)
    assert "Your directory account is disabled" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active and signed_in_as(client) is None
    assert APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401

    # With AD's usual filter the disabled account is not even found: the sync deactivates it as removed.
    slapd.ad_set_disabled(dn, False)
    sign_in(sam)
    assert User.objects.get(username=sam).is_active
    slapd.ad_set_disabled(dn, True)
    settings.AUTH_LDAP_USER_SEARCH_FILTER = AD_FILTER
    call_command("directory_sync")
    assert not User.objects.get(username=sam).is_active


def test_permission_checks_ask_nothing_of_the_directory(slapd, ldap_on, django_assert_max_num_queries):
    uid, _ = person(slapd, ldap_on["member"])
    client, _ = sign_in(uid)
    user = signed_in_as(client)
    assert user is not None
    # Permissions come from the role's group (the local backend), not from django-auth-ldap's settings and keys.
    user = User.objects.get(pk=user.pk)
    user.get_all_permissions()  # warm the local backend's cache
    with django_assert_max_num_queries(0):
        assert user.has_capability("chat.use") and not user.has_capability("keys.manage")
