"""Fixtures shared by every app's tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create

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
