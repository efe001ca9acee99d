"""Fixtures for the suggestion board tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accounts.models import User
from suggestions.models import Suggestion
from suggestions.services import suggestion_create


@pytest.fixture
def make_suggestion(make_user: Callable[..., User]) -> Callable[..., Suggestion]:
    """Create a suggestion through the service: ``make_suggestion(author=user, title="Dark mode")``."""

    def make(*, author: User | None = None, title: str = "Dark mode", **fields: str) -> Suggestion:
        return suggestion_create(author=author or make_user("member"), title=title, **fields)

    return make
