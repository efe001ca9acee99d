"""Single sign-on with OpenID Connect (authorization code flow with PKCE), through Authlib's Django client.

The doors are ``integrations.directory.views`` (and the backend ``integrations.directory.backends``); this module
is the protocol, loaded only when single sign-on is used.

- ``/accounts/oidc/login/`` reads the provider's discovery document (``OIDC_DISCOVERY_URL``), keeps ``state``, the
  ``nonce`` and the PKCE verifier in the session, and sends the browser to the provider.
- ``/accounts/oidc/callback/`` checks ``state`` (a forged or replayed one is refused), trades the code for tokens
  with the PKCE verifier and the client secret, and validates the ID token: signature against the provider's JWKS,
  ``iss``, ``aud`` (must hold ``OIDC_CLIENT_ID``), ``exp``, ``nonce``, ``at_hash``. The groups or roles claim
  (``OIDC_ROLES_CLAIM``, from the ID token, else from the userinfo endpoint) is mapped to a role by
  ``accounts.directory`` exactly as LDAP groups are.
- Sign-out ends the provider's session too (RP-initiated logout) when it advertises an ``end_session_endpoint``.

A provider that cannot be reached, or answers something that fails validation, gives a clear error page (local
sign-in keeps working); callbacks count as sign-in attempts for the rate limits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.django_client import DjangoIntegration, DjangoOAuth2App
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.http import urlencode
from joserfc.errors import JoseError

from accounts.directory import DirectoryIdentity
from accounts.keys import secret_get
from accounts.models import User
from integrations.directory.config import provider_name
from integrations.directory.errors import SignInError

logger = logging.getLogger(__name__)


def oidc_client() -> DjangoOAuth2App:
    """An Authlib client for the configured provider (built per request: settings and the global key may change)."""
    return DjangoOAuth2App(
        DjangoIntegration("oidc"),
        name="oidc",
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=secret_get("oidc", settings.OIDC_CLIENT_SECRET),
        server_metadata_url=settings.OIDC_DISCOVERY_URL,
        client_kwargs={
            "scope": settings.OIDC_SCOPES,
            "code_challenge_method": "S256",
            "default_timeout": float(settings.OIDC_TIMEOUT),
        },
    )


# --- Claims ---------------------------------------------------------------------------------------------------------


def claim_get(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into objects (Keycloak's ``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def claim_groups(claims: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    """The groups or roles a claim holds: a list of strings, or one string (some providers send a lone value so).
    None when the claim is absent."""
    value = claim_get(claims, path)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if isinstance(item, str | int))
    return ()


def identity_from_claims(claims: Mapping[str, Any], *, groups: tuple[str, ...]) -> DirectoryIdentity:
    """A ``DirectoryIdentity`` from validated ID token (and userinfo) claims."""
    username = ""
    for name in (settings.OIDC_USERNAME_CLAIM, "preferred_username", "email", "sub"):
        value = claims.get(name) if name else None
        if isinstance(value, str) and value.strip():
            username = value.strip()
            break
    return DirectoryIdentity(
        source=User.Source.OIDC,
        directory_id=str(claims["sub"]),
        username=username[:150],
        email=str(claims.get("email") or "") if claims.get("email_verified", True) is not False else "",
        first_name=str(claims.get("given_name") or ""),
        last_name=str(claims.get("family_name") or ""),
        display_name=str(claims.get("name") or ""),
        groups=groups,
    )


def _unreachable(exc: Exception) -> SignInError:
    logger.warning("OIDC provider unavailable: %s", type(exc).__name__)
    return SignInError(
        f"{provider_name()} cannot be reached right now, so single sign-on is unavailable. Try again later; "
        "local accounts can still sign in with their password.",
        status=502,
        code="provider_unavailable",
    )


# --- The flow -------------------------------------------------------------------------------------------------------


def oidc_authorize_redirect(request: HttpRequest, *, redirect_uri: str) -> HttpResponse:
    """The redirect to the provider's authorization endpoint (state, nonce and PKCE verifier kept in the session).
    Raises ``SignInError`` when the provider's discovery document cannot be read."""
    extra = {"hd": settings.OIDC_HOSTED_DOMAIN} if settings.OIDC_HOSTED_DOMAIN else {}
    try:
        return oidc_client().authorize_redirect(request, redirect_uri, **extra)  # type: ignore[no-any-return]
    except (requests.RequestException, ValueError, KeyError, RuntimeError, AuthlibBaseError) as exc:
        raise _unreachable(exc) from None


def oidc_callback_identity(request: HttpRequest) -> tuple[DirectoryIdentity, str]:
    """Trade the callback's code for tokens, validate the ID token, and read who this is: the identity and the raw
    ID token (the hint for the provider's sign-out). Raises ``SignInError``."""
    if request.GET.get("error"):
        # The provider refused (the person cancelled, or is not assigned to the application).
        description = (request.GET.get("error_description") or request.GET["error"])[:300]
        raise SignInError(f"{provider_name()} did not sign you in: {description}", status=403, code="provider_refused")
    client = oidc_client()
    try:
        # Authlib checks "aud" only through "azp" unless told (an ID token for another client carrying our id in
        # azp would pass): the audience must hold our client id, and the issuer be the discovery document's.
        issuer = client.load_server_metadata().get("issuer")
        options = {"aud": {"essential": True, "value": settings.OIDC_CLIENT_ID}}
        if issuer:
            options["iss"] = {"essential": True, "values": [issuer]}
        token = client.authorize_access_token(request, claims_options=options)
    except MismatchingStateError:
        raise SignInError(
            "This sign-in response does not belong to a sign-in started here (its state does not match). "
            "Start again from the sign-in page.",
            status=400,
            code="state_mismatch",
        ) from None
    except (requests.RequestException, ValueError) as exc:
        raise _unreachable(exc) from None
    except OAuthError as exc:
        raise SignInError(
            f"{provider_name()} refused the sign-in ({exc.error}). Start again from the sign-in page.",
            status=400,
            code="token_refused",
        ) from None
    except JoseError as exc:
        logger.warning("OIDC ID token refused: %s", exc.error)
        raise SignInError(
            f"The identity {provider_name()} sent could not be verified ({exc.error}: {exc.description or ''}). "
            "You are not signed in.",
            status=403,
            code="id_token_invalid",
        ) from None
    claims: dict[str, Any] = dict(token.get("userinfo") or {})
    if not claims.get("sub"):
        raise SignInError(
            f"{provider_name()} sent no ID token (is 'openid' in OIDC_SCOPES?).", status=403, code="no_id_token"
        )
    if settings.OIDC_HOSTED_DOMAIN and claims.get("hd") != settings.OIDC_HOSTED_DOMAIN:
        raise SignInError(
            f"Only accounts of {settings.OIDC_HOSTED_DOMAIN} may sign in here.", status=403, code="hosted_domain"
        )
    groups = claim_groups(claims, settings.OIDC_ROLES_CLAIM)
    if groups is None and client.load_server_metadata().get("userinfo_endpoint"):
        # Not in the ID token (Okta and Keycloak can put groups in userinfo only): ask the userinfo endpoint.
        try:
            userinfo = client.userinfo(token=token)
        except (requests.RequestException, ValueError) as exc:
            raise _unreachable(exc) from None
        if str(userinfo.get("sub")) == str(claims["sub"]):
            groups = claim_groups(userinfo, settings.OIDC_ROLES_CLAIM)
            claims = {**userinfo, **claims}
    return identity_from_claims(claims, groups=groups or ()), str(token.get("id_token") or "")


def oidc_end_session_url(*, id_token: str, post_logout_redirect_uri: str) -> str | None:
    """The provider's sign-out address for this session (RP-initiated logout), or None when it has none.
    Raises ``SignInError`` when the provider cannot be reached."""
    try:
        end_session = oidc_client().load_server_metadata().get("end_session_endpoint")
    except (requests.RequestException, ValueError) as exc:
        raise _unreachable(exc) from None
    if not end_session:
        return None
    params = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_CLIENT_ID,
        "post_logout_redirect_uri": post_logout_redirect_uri,
    }
    return f"{end_session}{'&' if '?' in end_session else '?'}{urlencode(params)}"
