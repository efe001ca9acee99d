"""Fixtures shared by every app's tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from devtools.netbox import FakeNetbox

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    """Create a user with a role: ``make_user("operator")``."""
    counter = iter(range(1, 10_000))

    def make(role: str = Role.VIEWER, username: str | None = None, **fields: object) -> User:
        return user_create(username=username or f"{role}{next(counter)}", password=PASSWORD, role=role, **fields)

    return make


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for(make_user: Callable[..., User]) -> Callable[[str], APIClient]:
    """An API client signed in (by session) as a new user of the given role."""

    def make(role: str) -> APIClient:
        client = APIClient()
        client.force_login(make_user(role))
        return client

    return make


@pytest.fixture
def netbox(settings, tmp_path) -> Iterator[FakeNetbox]:
    """A NetBox-shaped server on loopback, with the app configured to export from it into ``tmp_path``."""
    with FakeNetbox(devices=40, vms=60) as server:
        settings.NETBOX_URL = server.url
        settings.NETBOX_TOKEN = server.token
        settings.NETBOX_BACKOFF = 0.01
        settings.NETBOX_RETRIES = 2
        settings.DATA_DIR = tmp_path / "data"
        yield server


# The data migrations that seed the roles and their capabilities, with their seeding functions.
ROLE_SEEDS = (
    ("accounts.migrations.0002_seed_roles", "seed"),
    ("exports.migrations.0002_role_permissions", "grant"),
    ("quality.migrations.0001_initial", "grant"),
    ("accounts.migrations.0007_columns_manage_capability", "grant"),
    ("quality.migrations.0002_any_column", "grant"),
)


@pytest.fixture
def seeded_roles(transactional_db: None) -> None:
    """The roles and capabilities the migrations seed, seeded again for a transactional test.

    A transactional test's flush empties every table, so the seeded roles are gone for the next one. Restoring them
    with ``serialized_rollback`` collides with the content types and permissions the flush re-creates under new ids
    (UNIQUE constraint failed), so the seeding functions (idempotent) run again instead.
    """
    from django.apps import apps

    for module, function in ROLE_SEEDS:
        getattr(importlib.import_module(module), function)(apps, None)
