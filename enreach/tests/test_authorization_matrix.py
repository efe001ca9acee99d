"""The authorisation matrix: every API endpoint by {anonymous, viewer, operator, member, admin, read-only token}.

Each app lists its endpoints in ``<app>/tests/authz.py``:

    def make_objects(*, owner, other) -> dict[str, object]: ...   # values for the {placeholders} of the paths
    CASES = [(method, path, json body or None, {role: expected status for all six roles}), ...]

Here every (case, role) pair runs on a fresh database holding one user per role, ``owner`` (the admin user, who is
also the owner of the read-only token) and ``other`` (a second member, who is none of the requesting users).
Requests are sent signed in by session, except for ``read_only_token``: a read-only personal token of the admin,
sent as ``Authorization: Bearer``. NetBox is not configured (``NETBOX_URL`` empty) and ``DATA_DIR`` is a temporary
folder, so nothing leaves the machine.

``test_every_api_route_is_in_the_matrix`` fails when an URL pattern under /api/ is not matched by any case path:
a new endpoint must be added to its app's authz.py.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import user_create
from accounts.tokens import api_token_create

ROLES = ("anonymous", "viewer", "operator", "member", "admin", "read_only_token")
# Public or page routes under /api/, checked by test_api_security.py instead.
EXCLUDED_ROUTES = {"api/health/", "api/schema/", "api/docs/", "api/redoc/"}
PASSWORD = "matrix-Passphrase-for-every-role-7"


def _authz_modules() -> list[Any]:
    """``<app>.tests.authz`` of every project app that has one."""
    root = Path(settings.BASE_DIR)
    modules = []
    for config in apps.get_app_configs():
        if not Path(config.path).resolve().is_relative_to(root) or ".venv" in Path(config.path).parts:
            continue
        try:
            modules.append(importlib.import_module(f"{config.name}.tests.authz"))
        except ModuleNotFoundError as exc:
            if exc.name not in (f"{config.name}.tests", f"{config.name}.tests.authz"):
                raise  # the module exists but imports something missing: a real error
    return modules


MODULES = _authz_modules()
CASES = [(module, case) for module in MODULES for case in module.CASES]


def _case_id(module: Any, index: int, case: tuple[Any, ...]) -> str:
    return f"{module.__name__.split('.')[0]}-{index}-{case[0]} {case[1]}"


PARAMS = [
    pytest.param(module, case, role, id=f"{_case_id(module, i, case)} [{role}]")
    for module in MODULES
    for i, case in enumerate(module.CASES)
    for role in ROLES
]


@pytest.fixture
def world(db: None, settings: Any, tmp_path: Path) -> dict[str, Any]:
    """One user per role, ``other`` and the admin's read-only token, with NetBox unconfigured."""
    settings.NETBOX_URL = ""
    settings.NETBOX_TOKEN = ""
    settings.DATA_DIR = tmp_path / "data"
    users: dict[str, User] = {
        role: user_create(username=f"matrix-{role}", password=PASSWORD, role=role)
        for role in ("viewer", "operator", "member", "admin")
    }
    other = user_create(username="matrix-other", password=PASSWORD, role="member")
    _, secret = api_token_create(user=users["admin"], label="matrix read-only", read_only=True)
    return {"users": users, "owner": users["admin"], "other": other, "read_only_secret": secret}


def _client(world: dict[str, Any], role: str) -> APIClient:
    client = APIClient()
    if role == "read_only_token":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['read_only_secret']}")
    elif role != "anonymous":
        client.force_login(world["users"][role])
    return client


def _fill(value: Any, objects: dict[str, object]) -> Any:
    """Fill ``{placeholders}`` in a path or in the string values of a body."""
    if isinstance(value, str) and "{" in value:
        return value.format(**objects)
    if isinstance(value, dict):
        return {k: _fill(v, objects) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, objects) for v in value]
    return value


def test_the_matrix_has_cases_for_every_role():
    assert MODULES, "no <app>/tests/authz.py found"
    for module, (method, path, _body, expected) in CASES:
        assert set(expected) == set(ROLES), f"{module.__name__}: {method} {path} must list exactly {ROLES}"
        assert method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"), f"{method} {path}"


@pytest.mark.parametrize(("module", "case", "role"), PARAMS)
def test_role_gets_exactly_the_expected_status(world, module, case, role):
    method, path, body, expected = case
    objects = module.make_objects(owner=world["owner"], other=world["other"])
    url = _fill(path, objects)
    client = _client(world, role)
    kwargs: dict[str, Any] = {"format": "json"}
    if body is not None:
        kwargs["data"] = _fill(body, objects)
    response = getattr(client, method.lower())(url, **kwargs)
    content = b"" if getattr(response, "streaming", False) else response.content
    assert response.status_code == expected[role], (
        f"{method} {url} as {role}: expected {expected[role]}, got {response.status_code}: {content[:300]!r}"
    )


# --- Completeness ---------------------------------------------------------------------------------------------------


def _routes(patterns: Any = None, prefix: str = "") -> Iterator[str]:
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route


def normalise(route: str) -> str:
    """A route pattern with every parameter as ``{}``: ``api/exports/runs/{}/artifacts/{}``."""
    route = re.sub(r"\(\?P<\w+>(?:[^()]|\([^()]*\))*\)", "{}", route)
    route = re.sub(r"<(?:\w+:)?\w+>", "{}", route)
    return route.replace("^", "").replace("$", "").replace("\\", "").replace("/?", "/").lstrip("/")


def _route_regex(normalised: str) -> re.Pattern[str]:
    # Trailing slashes are ignored on both sides (``^me/?$`` serves /api/auth/me and /api/auth/me/).
    return re.compile(re.escape(normalised.rstrip("/")).replace(re.escape("{}"), "[^/]+"))


def api_routes() -> set[str]:
    """Normalised routes under /api/, without format-suffix variants and the excluded public ones."""
    routes = {normalise(r) for r in _routes() if "format" not in r}
    return {r for r in routes if r.startswith("api/") and r not in EXCLUDED_ROUTES}


def _case_path(path: str) -> str:
    """A case path as a concrete-looking path: placeholders become one segment, the query string goes."""
    return re.sub(r"\{\w+\}", "x", path.split("?")[0]).strip("/")


def uncovered(routes: set[str], paths: list[str]) -> list[str]:
    """The routes that none of the case ``paths`` matches."""
    case_paths = {_case_path(path) for path in paths}
    return sorted(r for r in routes if not any(_route_regex(r).fullmatch(p) for p in case_paths))


def test_every_api_route_is_in_the_matrix():
    routes = api_routes()
    assert "api/auth/me/" in routes and "api/admin/keys/{}/" in routes
    missing = uncovered(routes, [path for _, (_, path, _, _) in CASES])
    assert not missing, "API routes not covered by any <app>/tests/authz.py case:\n" + "\n".join(missing)


def test_a_route_without_a_case_is_reported():
    paths = [path for _, (_, path, _, _) in CASES]
    without_keys = [path for path in paths if not path.startswith("/api/admin/keys/")]
    newly_missing = set(uncovered(api_routes(), without_keys)) - set(uncovered(api_routes(), paths))
    assert newly_missing == {"api/admin/keys/", "api/admin/keys/{}/"}


def test_every_case_path_is_a_route():
    regexes = [_route_regex(r) for r in api_routes()]
    unknown = sorted(
        {path for _, (_, path, _, _) in CASES if not any(rx.fullmatch(_case_path(path)) for rx in regexes)}
    )
    assert not unknown, f"case paths that match no API route: {unknown}"
