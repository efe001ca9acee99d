"""Fixtures shared by every app's tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from devtools.netbox import FakeNetbox

PASSWORD = "correct-horse-battery-staple"

# The test modules that depend on the database engine. Every test runs on SQLite (`make test-sqlite`); these run on
# PostgreSQL as well (`make test-postgres` selects the `postgres` marker this file gives them). The rule: a module is
# here when what it tests runs SQL that the two engines may treat differently — models and migrations (data
# migrations, seeded roles), queries, selectors, filters, search and ordering (case-insensitive and JSON lookups,
# subqueries, pagination), transactions and locking (select_for_update, atomic counters, the database cache that
# rate limits count in), the export run and queue state machine (heartbeats, the sweeper, retries, the django-q2
# database broker, the notification outbox's claims), outage handling (what a dead PostgreSQL looks like), and
# anything with raw SQL or engine-specific behaviour (the snapshots' JSONB insert, the metrics' JSON casts, integer
# bounds of ids). A module that only renders pages, parses files, speaks to a loopback test server or checks
# permissions through the ORM's plain reads and writes runs once, on SQLite; so do the browser tests, the fuzz run
# and the deploy test (which starts PostgreSQL itself).
POSTGRES_MODULES = (
    # accounts: case-insensitive usernames, locked token and key rotation, raw-SQL rate-limit counters, seeded roles
    "accounts/tests/test_admin_api.py",
    "accounts/tests/test_authentication.py",
    "accounts/tests/test_directory.py",
    "accounts/tests/test_keys.py",
    "accounts/tests/test_login_throttle.py",
    "accounts/tests/test_profile_api.py",
    "accounts/tests/test_roles.py",
    "accounts/tests/test_throttling.py",
    # chat: sessions' pagination and ordering, the history's order, retention by date
    "chat/tests/test_api.py",
    "chat/tests/test_history.py",
    "chat/tests/test_retention.py",
    # cmdb: an object's stored changes across runs, named views' visibility queries
    "cmdb/tests/test_history.py",
    "cmdb/tests/test_named_views.py",
    # enreach: ids beyond 64 bits, metrics' JSON casts, the database health check and outages
    "enreach/tests/test_bounded_input.py",
    "enreach/tests/test_docs.py",
    "enreach/tests/test_health.py",
    "enreach/tests/test_observability.py",
    "enreach/tests/test_outage.py",
    # exports: the run state machine, snapshots (raw JSONB) and the streamed runs reading them back in id order,
    # changes, column sets (JSON search), limits, selectors
    "exports/tests/test_afterrun.py",
    "exports/tests/test_api.py",
    "exports/tests/test_changes.py",
    "exports/tests/test_column_sets.py",
    "exports/tests/test_commands.py",
    "exports/tests/test_contacts_incremental.py",
    "exports/tests/test_companions.py",
    "exports/tests/test_dashboard.py",
    "exports/tests/test_limits.py",
    "exports/tests/test_runs.py",
    "exports/tests/test_services.py",
    "exports/tests/test_snapshots.py",
    "exports/tests/test_streaming.py",
    "exports/tests/test_views.py",
    # integrations: cache counts shared across processes (the database cache)
    "integrations/tests/test_caching.py",
    # notifications: the outbox (bulk insert ignoring conflicts, locked claims, JSON contains), two real qclusters
    "notifications/tests/test_api.py",
    "notifications/tests/test_delivery.py",
    "notifications/tests/test_events.py",
    "notifications/tests/test_workers.py",
    # quality: the models' move between apps (a migration), findings' queries
    "quality/tests/test_migrations.py",
    "quality/tests/test_quality_web.py",
    # suggestions: counts as subqueries, case-insensitive search, ordering
    "suggestions/tests/test_api.py",
    "suggestions/tests/test_services.py",
    "suggestions/tests/test_views.py",
)


# The markers of the long tests, longest first (see pytest_collection_modifyitems).
LONG_FIRST = ("fuzz", "browser")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of ``POSTGRES_MODULES`` ``postgres`` (a listed module that does not exist is an error), and
    put the long tests first: the schemathesis groups, then the browser tests.

    pytest-xdist hands each worker a first chunk of consecutive tests and the rest to whichever worker runs short; a
    test of minutes handed out late keeps one worker busy while the other has nothing left, so the longest go first.
    This hook runs before pytest-django's, whose stable sort then puts every test using the database without
    transactions before the transactional ones (a transactional test's flush empties the roles the migrations
    seeded): the long tests, all transactional (a live server), come first among the transactional tests. Every
    other test keeps its order.
    """
    root = Path(config.rootpath)
    missing = [module for module in POSTGRES_MODULES if not (root / module).is_file()]
    if missing:
        raise pytest.UsageError(f"conftest.POSTGRES_MODULES names modules that do not exist: {missing}")
    modules = {root / module for module in POSTGRES_MODULES}
    for item in items:
        if item.path in modules:
            item.add_marker(pytest.mark.postgres)
    items.sort(key=lambda item: _long_rank(item))


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


def _long_rank(item: pytest.Item) -> int:
    """0 for a fuzz test, 1 for a browser test, 2 for the rest (``LONG_FIRST``)."""
    return next((rank for rank, mark in enumerate(LONG_FIRST) if item.get_closest_marker(mark)), len(LONG_FIRST))
