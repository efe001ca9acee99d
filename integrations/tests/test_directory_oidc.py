"""OpenID Connect single sign-on against a real provider on loopback (django-oauth-toolkit, ``devtools.oidc_provider``).

The app runs in the test process (Django's test client); the person's browser at the provider is a ``requests``
session that signs in on the provider's own page. Every token, key and claim comes from the provider: discovery,
PKCE, client authentication, the signed ID token, userinfo and logout are its own.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEntry, User
from accounts.services import user_create
from accounts.tokens import api_token_create
from devtools.ldap_server import free_port
from devtools.oidc_provider import OidcProvider, shape

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_roles")]

CALLBACK = "http://testserver/accounts/oidc/callback/"
PASSWORD = "provider-passphrase-8"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider(redirect_uris=[CALLBACK]) as server:
        yield server


@pytest.fixture
def sso(settings, provider: OidcProvider) -> OidcProvider:
    provider.fault()
    settings.OIDC_DISCOVERY_URL = provider.discovery_url
    settings.OIDC_CLIENT_ID = provider.client_id
    settings.OIDC_CLIENT_SECRET = provider.client_secret
    settings.OIDC_SCOPES = "openid email profile"
    settings.OIDC_ROLES_CLAIM = "groups"
    settings.OIDC_ROLE_GROUPS = "admin=/cmdb/admins;member=/cmdb/members;operator=/cmdb/operators;viewer=/cmdb/viewers"
    settings.OIDC_DEFAULT_ROLE = ""
    settings.OIDC_NAME = "Test IdP"
    settings.OIDC_HOSTED_DOMAIN = ""
    settings.OIDC_TIMEOUT = 5.0
    return provider


def new_user(provider: OidcProvider, shape_name: str = "keycloak", **claims: object) -> str:
    username = f"sso{next(_names)}"
    provider.user(username, PASSWORD, claims=shape(shape_name, username, **claims))
    return username


class Browser:
    """The person's browser: the app through Django's test client, the provider through a requests session."""

    def __init__(self) -> None:
        self.app = Client()
        self.provider = requests.Session()

    def start(self, next_url: str = "") -> str:
        """Click "Sign in with …": the provider's authorization URL."""
        response = self.app.get("/accounts/oidc/login/" + (f"?{urlencode({'next': next_url})}" if next_url else ""))
        assert response.status_code == 302, response.content[:500]
        return str(response["Location"])

    def authorize(self, authorize_url: str, username: str, password: str = PASSWORD) -> str:
        """Sign in at the provider: the callback URL it sends the browser back to."""
        response = self.provider.get(authorize_url, allow_redirects=False)
        if response.status_code == 302 and "/login/" in response.headers["Location"]:
            login_url = requests.compat.urljoin(authorize_url, response.headers["Location"])
            page = self.provider.get(login_url)
            token = self.provider.cookies["provider_csrftoken"]
            nxt = re.search(r'name="next" value="([^"]*)"', page.text).group(1).replace("&amp;", "&")
            response = self.provider.post(
                login_url,
                data={"username": username, "password": password, "next": nxt, "csrfmiddlewaretoken": token},
                allow_redirects=False,
            )
            assert response.status_code == 302, response.text[:300]
            response = self.provider.get(
                requests.compat.urljoin(login_url, response.headers["Location"]), allow_redirects=False
            )
        assert response.status_code == 302, response.text[:500]
        return str(response.headers["Location"])

    def callback(self, callback_url: str, **replace: str):
        parts = urlsplit(callback_url)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        query.update(replace)
        return self.app.get(parts.path, query)

    def sign_in(self, username: str, next_url: str = ""):
        return self.callback(self.authorize(self.start(next_url), username))

    def user(self) -> User | None:
        user_id = self.app.session.get("_auth_user_id")
        return User.objects.get(pk=user_id) if user_id else None


def test_the_sign_in_page_shows_the_button_only_when_configured(settings, sso):
    page = Client().get("/accounts/login/?next=/exports/").content.decode()
    assert "Sign in with Test IdP" in page and "/accounts/oidc/login/?next=%2Fexports%2F" in page
    settings.OIDC_DISCOVERY_URL = ""
    assert "Sign in with" not in Client().get("/accounts/login/").content.decode()
    assert Client().get("/accounts/oidc/login/").status_code == 404


def test_first_sign_in_creates_the_user_with_the_mapped_role(sso):
    username = new_user(sso, "keycloak")
    browser = Browser()

    response = browser.sign_in(username, next_url="/exports/")

    assert response.status_code == 302 and response["Location"] == "/exports/"
    user = browser.user()
    assert user is not None and user.username == username
    assert (user.role, user.source, user.directory_id) == ("operator", "oidc", f"sub-{username}")
    assert (user.email, user.first_name, user.last_name, user.display_name) == (
        f"{username}@example.org", "Kay", "Cloak", "Kay Cloak",
    )  # fmt: skip
    assert not user.has_usable_password()
    entry = AuditEntry.objects.get(action="user.sign_in", target=f"user:{username}")
    assert entry.detail == {"method": "oidc", "role": "operator", "groups": ["/cmdb/operators"]}
    assert browser.app.get("/").status_code == 200


def test_the_request_carries_pkce_and_the_provider_requires_it(sso):
    authorize_url = Browser().start()
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["client_id"] == [sso.client_id] and "nonce" in query and "state" in query
    # django-oauth-toolkit refuses an authorization request without a challenge (PKCE_REQUIRED).
    bare = {k: v[0] for k, v in query.items() if not k.startswith("code_challenge")}
    location = Browser().authorize(f"{authorize_url.split('?')[0]}?{urlencode(bare)}", new_user(sso))
    assert location.startswith(CALLBACK) and "error=invalid_request" in location and "challenge" in location.lower()


def test_a_group_change_at_the_provider_changes_the_role_at_the_next_sign_in(sso):
    username = new_user(sso, "keycloak")
    Browser().sign_in(username)
    assert User.objects.get(username=username).role == "operator"
    sso.user(username, PASSWORD, claims=shape("keycloak", username, groups=["/cmdb/admins", "/cmdb/viewers"]))

    browser = Browser()
    browser.sign_in(username)

    user = browser.user()
    assert user is not None and user.role == "admin" and user.is_staff
    change = AuditEntry.objects.get(action="user.role", target=f"user:{username}")
    assert change.source == "oidc" and change.detail == {"from": "operator", "to": "admin", "groups": ["/cmdb/admins"]}


@pytest.mark.parametrize(
    ("shape_name", "claim", "role_groups", "role", "userinfo_only"),
    [
        ("entra", "roles", "admin=CMDB.Admin", "admin", []),
        ("entra", "groups", "member=0f1e2d3c-4b5a-6978-8796-A5B4C3D2E1F0", "member", []),
        ("keycloak", "realm_access.roles", "member=cmdb-member", "member", []),
        ("okta", "groups", "viewer=CMDB Viewers", "viewer", []),
        ("okta", "groups", "operator=CMDB Viewers", "operator", ["groups"]),  # groups only at userinfo
        ("authentik", "groups", "admin=cmdb-admins;member=cmdb-members", "member", []),
    ],
)
def test_provider_claim_shapes_map_to_roles(settings, sso, shape_name, claim, role_groups, role, userinfo_only):
    settings.OIDC_ROLES_CLAIM = claim
    settings.OIDC_ROLE_GROUPS = role_groups
    username = f"sso{next(_names)}"
    sso.user(username, PASSWORD, claims=shape(shape_name, username), userinfo_only=userinfo_only)
    browser = Browser()
    browser.sign_in(username)
    user = browser.user()
    assert user is not None and user.role == role and user.source == "oidc"
    expected_username = shape(shape_name, username)["preferred_username"]
    assert user.username == expected_username


def test_google_workspace_has_no_groups_the_default_role_and_the_hosted_domain_decide(settings, sso):
    settings.OIDC_DEFAULT_ROLE = "viewer"
    settings.OIDC_HOSTED_DOMAIN = "example-workspace.com"
    username = new_user(sso, "google")
    authorize_url = Browser().start()
    assert parse_qs(urlsplit(authorize_url).query)["hd"] == ["example-workspace.com"]
    browser = Browser()
    browser.sign_in(username)
    user = browser.user()
    assert user is not None and (user.username, user.role) == (f"{username}@example-workspace.com", "viewer")

    outsider = f"sso{next(_names)}"
    sso.user(outsider, PASSWORD, claims=shape("google", outsider, hd="another.example"))
    response = Browser().sign_in(outsider)
    assert response.status_code == 403 and "Only accounts of example-workspace.com" in response.content.decode()


def test_a_user_in_no_mapped_group_is_refused_with_a_clear_message(sso):
    username = new_user(sso, "keycloak", groups=["/staff"])
    browser = Browser()
    response = browser.sign_in(username)
    assert response.status_code == 403
    body = response.content.decode()
    assert "Sign-in with Test IdP failed" in body
    assert "is not in any group that gives access to Enreach tools" in body
    assert browser.user() is None and not User.objects.filter(username=username).exists()
    refused = AuditEntry.objects.get(action="user.sign_in_refused", target=f"user:{username}")
    assert refused.detail == {"method": "oidc", "reason": "no_role"}


def test_removed_from_every_group_means_deactivated_and_tokens_revoked(sso):
    username = new_user(sso, "keycloak")
    Browser().sign_in(username)
    user = User.objects.get(username=username)
    _, secret = api_token_create(user=user, label="ci")
    sso.user(username, PASSWORD, claims=shape("keycloak", username, groups=[]))

    response = Browser().sign_in(username)

    assert response.status_code == 403
    user.refresh_from_db()
    assert not user.is_active and ApiToken.objects.get(user=user).revoked is not None
    assert APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_a_forged_state_is_refused(sso):
    username = new_user(sso, "keycloak")
    browser = Browser()
    callback = browser.authorize(browser.start(), username)

    response = browser.callback(callback, state="forged-state-value")

    assert response.status_code == 400
    assert "does not belong to a sign-in started here" in response.content.decode()
    assert browser.user() is None and not User.objects.filter(username=username).exists()
    # A callback arriving in a browser that started no sign-in at all (login CSRF) is refused the same way.
    other = Browser()
    response = other.callback(callback)
    assert response.status_code == 400 and other.user() is None
    assert AuditEntry.objects.filter(action="user.sign_in_refused", detail__reason="state_mismatch").count() == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"aud": "another-client"},
        # Issued to another client, naming us as the authorized party: the audience alone must decide.
        {"aud": ["another-client"], "azp": "enreach-tools"},
    ],
)
def test_an_id_token_for_another_audience_is_refused(sso, fault):
    username = new_user(sso, "keycloak")
    sso.fault(**fault)
    browser = Browser()
    response = browser.sign_in(username)
    body = response.content.decode()
    assert response.status_code == 403 and "could not be verified" in body
    assert "&#x27;aud&#x27;" in body or "aud" in body.split("could not be verified")[1][:200]
    assert browser.user() is None and not User.objects.filter(username=username).exists()


def test_the_provider_down_gives_a_clear_error_page_and_local_sign_in_still_works(settings, sso):
    settings.OIDC_DISCOVERY_URL = f"http://127.0.0.1:{free_port()}/o/.well-known/openid-configuration"
    response = Client().get("/accounts/oidc/login/")
    body = response.content.decode()
    assert response.status_code == 502
    assert "Test IdP cannot be reached right now" in body and "local accounts can still sign in" in body
    user_create(username="local-admin", password="Local-admin-passphrase-3", role="admin")
    client = Client()
    client.post("/accounts/login/", {"username": "local-admin", "password": "Local-admin-passphrase-3"})
    assert client.session.get("_auth_user_id")


def test_sign_out_ends_the_providers_session_too(sso):
    username = new_user(sso, "keycloak")
    browser = Browser()
    browser.sign_in(username)

    response = browser.app.post("/accounts/logout/")

    assert browser.user() is None and response.status_code == 200
    location = re.search(r'id="provider-sign-out" href="([^"]+)"', response.content.decode()).group(1)
    location = location.replace("&amp;", "&")
    assert location.startswith(f"{sso.issuer}/logout/?")
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"] and query["id_token_hint"]
    back = browser.provider.get(location, allow_redirects=False)
    assert back.status_code == 302 and back.headers["Location"] == "http://testserver/accounts/login/"
    # Signed out at the provider: the next sign-in asks for the password again.
    again = browser.provider.get(browser.start(), allow_redirects=False)
    assert "/login/" in again.headers["Location"]


def test_a_local_account_is_not_taken_over_by_single_sign_on(sso):
    username = new_user(sso, "keycloak")
    user_create(username=username, password="Local-passphrase-77", role="viewer")
    response = Browser().sign_in(username)
    assert response.status_code == 403 and "is a local account of Enreach tools" in response.content.decode()
    assert User.objects.get(username=username).source == "local"


def test_failed_callbacks_are_rate_limited(settings, sso):
    settings.LOGIN_FAILURE_LIMIT = 2
    browser = Browser()
    for _ in range(2):
        assert browser.app.get("/accounts/oidc/callback/", {"code": "x", "state": "forged"}).status_code == 400
    response = browser.app.get("/accounts/oidc/callback/", {"code": "x", "state": "forged"}, follow=True)
    assert "Too many failed sign-ins" in response.content.decode()
