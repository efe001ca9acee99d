"""The site shell's panels: pages compose what the apps register, in order, each shown to whom its app decides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from enreach import panels

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(settings) -> Iterator[None]:
    """The panels as the apps registered them, restored after the test; this folder's templates findable."""
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], Path(__file__).parent / "templates"]}
    ]
    saved = dict(panels._registry)
    yield
    panels._registry.clear()
    panels._registry.update(saved)


def test_the_apps_fill_the_home_page_in_order_and_the_list_prints():
    home = [panel.name for panel in panels.panels("home")]
    assert home == ["latest-export", "quick-actions", "quality"]
    assert [panel.name for panel in panels.panels("home-alerts")] == ["exports"]
    assert [panel.name for panel in panels.panels("home-actions")] == ["exports", "suggestions", "profile"]
    assert [panel.name for panel in panels.panels("export-run")] == ["publications"]
    assert "quality/_panel.html" in str(panels.panels("home")[-1])


def test_the_home_page_composes_the_registered_panels_and_leaves_out_those_without_context(client_for, registry):
    panels.register("home", "greeting", template="enreach/tests/greeting.html", context=lambda request: {
        "who": request.user.username}, order=150)  # fmt: skip
    panels.register("home", "hidden", template="enreach/tests/greeting.html", context=lambda request: None, order=160)
    panels.register("home-actions", "wave", template="enreach/tests/greeting.html",
                    context=lambda request: {"who": "action"}, order=50)  # fmt: skip

    page = client_for("viewer").get("/").content.decode()

    assert page.count('class="greeting"') == 2  # the panel and the action; the hidden one is left out
    latest, greeting, actions = page.index('id="latest-export"'), page.index("Hello viewer"), page.index("Hello action")
    assert latest < greeting < page.index('id="quick-actions"') < actions  # in order; the action inside its card
    assert 'name="csrfmiddlewaretoken"' in page  # panels are rendered with the request


def test_users_see_only_the_panels_their_capabilities_allow(client, make_user):
    from conftest import PASSWORD

    user = make_user("viewer")
    user.groups.clear()  # no capability at all
    client.login(username=user.username, password=PASSWORD)
    page = client.get("/").content.decode()
    assert 'id="quick-actions"' in page and "Propose a suggestion" in page and "Profile and tokens" in page
    for absent in ('id="latest-export"', 'id="quality-panel"', 'id="run-now"', 'id="alert-netbox"'):
        assert absent not in page
