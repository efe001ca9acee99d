"""django-oauth-toolkit's validator, with each user's claims taken from users.json: the shapes of Entra ID, Keycloak,
Okta, Authentik and Google Workspace are whatever the test writes there. ``faults.json`` makes the provider
misbehave on purpose (``{"aud": "another-client"}``: ID tokens for another audience; ``azp`` likewise)."""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator

from devtools.oidc_provider.backends import faults, users


class UsersFileValidator(OAuth2Validator):
    # Every claim goes out whatever the scopes (as providers configured to send groups do).
    oidc_claim_scope = None

    def _entry(self, request: Any) -> dict[str, Any]:
        return users().get(request.user.username, {})

    def get_claim_dict(self, request: Any) -> dict[str, Any]:
        entry = self._entry(request)
        return {"sub": f"sub-{request.user.username}", **entry.get("claims", {})}

    def get_id_token_dictionary(self, token: Any, token_handler: Any, request: Any) -> Any:
        claims, expiration = super().get_id_token_dictionary(token, token_handler, request)
        for name in self._entry(request).get("userinfo_only", []):  # Okta and Keycloak can leave groups out
            claims.pop(name, None)
        return claims, expiration

    def finalize_id_token(self, id_token: dict[str, Any], token: Any, token_handler: Any, request: Any) -> str:
        fault = faults()
        for claim in ("aud", "azp"):
            if claim in fault:
                id_token[claim] = fault[claim]
        return str(super().finalize_id_token(id_token, token, token_handler, request))
