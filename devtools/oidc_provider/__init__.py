"""A real OpenID Connect provider on loopback: django-oauth-toolkit with OIDC enabled, run as its own small Django
project (own settings, SQLite and RSA signing key) in a subprocess. Not a mock of our client: discovery, the
authorization endpoint with its own sign-in page, PKCE (required), the token endpoint with client authentication,
signed ID tokens, JWKS, userinfo and RP-initiated logout are django-oauth-toolkit's.

``OidcProvider`` starts it and lets a test shape it as providers do:

- ``user(username, password, claims=..., userinfo_only=...)`` writes ``users.json``, read at every sign-in and token:
  the claims are exactly what Entra ID, Keycloak, Okta, Authentik or Google Workspace would send (see ``SHAPES``);
  ``userinfo_only`` leaves claims out of the ID token (they are then only at the userinfo endpoint).
- ``fault(aud="another-client")`` makes it issue ID tokens for another audience.
- ``stop()`` takes it down.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from devtools.ldap_server import free_port

REPO = Path(__file__).resolve().parents[2]

# What each provider puts in its ID token (or userinfo) for one user in one group, as their documentation shows.
SHAPES: dict[str, dict[str, Any]] = {
    # Entra ID: app roles in "roles" (recommended), group object ids in "groups"; the UPN as preferred_username.
    "entra": {
        "preferred_username": "{username}@contoso.onmicrosoft.com",
        "name": "Eve Entra",
        "oid": "5f4b7c1e-8d4a-4d3e-9c1b-2a7e6f0d9b11",
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "roles": ["CMDB.Admin"],
        "groups": ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"],
        "email": "{username}@contoso.com",
    },
    # Keycloak: group paths from the "Group Membership" mapper, realm roles nested in realm_access.roles.
    "keycloak": {
        "preferred_username": "{username}",
        "email": "{username}@example.org",
        "email_verified": True,
        "given_name": "Kay",
        "family_name": "Cloak",
        "name": "Kay Cloak",
        "groups": ["/cmdb/operators", "/staff"],
        "realm_access": {"roles": ["cmdb-member", "offline_access", "uma_authorization"]},
    },
    # Okta: a "groups" claim of group names (filtered by the authorization server's claim rule).
    "okta": {
        "preferred_username": "{username}@example.okta.com",
        "email": "{username}@example.com",
        "name": "Otto Okta",
        "groups": ["Everyone", "CMDB Viewers"],
    },
    # Authentik: group names in "groups" (profile scope), nickname and preferred_username the username.
    "authentik": {
        "preferred_username": "{username}",
        "nickname": "{username}",
        "email": "{username}@authentik.example",
        "email_verified": True,
        "name": "Ada Authentik",
        "given_name": "Ada Authentik",
        "groups": ["authentik Admins", "cmdb-members"],
    },
    # Google Workspace: no groups at all; the hosted domain in "hd".
    "google": {
        "email": "{username}@example-workspace.com",
        "email_verified": True,
        "hd": "example-workspace.com",
        "name": "Gail Google",
        "given_name": "Gail",
        "family_name": "Google",
    },
}


def shape(name: str, username: str, **overrides: Any) -> dict[str, Any]:
    """The claims of ``SHAPES[name]`` for ``username`` (``{username}`` filled in), with ``overrides``."""
    filled = json.loads(json.dumps(SHAPES[name]).replace("{username}", username))
    return {**filled, **overrides}


class OidcProvider:
    """django-oauth-toolkit as an OpenID Connect provider on a loopback port, in its own process."""

    def __init__(self, *, redirect_uris: list[str], client_id: str = "enreach-tools") -> None:
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(24)
        self.redirect_uris = redirect_uris
        self.state = Path(tempfile.mkdtemp(prefix="enreach-oidc-"))
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self._users: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self) -> OidcProvider:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.state / "signing-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self._write("users.json", self._users)
        self._write("faults.json", {})
        logout_uris = [uri.replace("/accounts/oidc/callback/", "/accounts/login/") for uri in self.redirect_uris]
        last = ""
        for _ in range(3):
            self.port = free_port()
            command = [
                sys.executable, "-m", "devtools.oidc_provider", "--state", str(self.state), "--port", str(self.port),
                f"--client-id={self.client_id}", f"--client-secret={self.client_secret}",
                *[f"--redirect-uri={uri}" for uri in self.redirect_uris],
                *[f"--post-logout-redirect-uri={uri}" for uri in logout_uris],
            ]  # fmt: skip
            env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
            env["PYTHONPATH"] = str(REPO)
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            assert self.process.stdout is not None
            line = self.process.stdout.readline()  # "ready <port>" once it serves, or EOF when it died
            if line.startswith("ready"):
                return self
            last = self._kill()
        raise RuntimeError(f"The OIDC provider did not start: {last[-1500:]}")

    def _write(self, name: str, data: Any) -> None:
        path = self.state / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def user(
        self, username: str, password: str, *, claims: dict[str, Any], userinfo_only: list[str] | None = None
    ) -> None:
        """Add or change a user (their claims apply from the next token on)."""
        self._users[username] = {"password": password, "claims": claims, "userinfo_only": userinfo_only or []}
        self._write("users.json", self._users)

    def fault(self, **faults: Any) -> None:
        """Misbehave from now on: ``aud="x"`` issues ID tokens for audience x. ``fault()`` behaves again."""
        self._write("faults.json", faults)

    def _kill(self) -> str:
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        err = self.process.stderr.read() if self.process.stderr else ""
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        self.process = None
        return err

    def stop(self) -> None:
        """Take the provider down (its port then refuses connections)."""
        self._kill()

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def wait_gone(port: int, timeout: float = 5.0) -> None:
    """Wait until nothing listens on ``port`` any more."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.05)
        except OSError:
            return
