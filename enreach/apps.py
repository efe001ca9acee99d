from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_cache_table(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    # `migrate` is the only schema step of a deploy: the database cache's table comes with it (a no-op with Redis
    # or when the table exists).
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


class EnreachConfig(AppConfig):
    """Process-wide set-up: tracing when configured, the cache table on migrate, the home page's quick actions."""

    name = "enreach"
    verbose_name = "Enreach tools"

    def ready(self) -> None:
        from enreach import panels
        from enreach.tracing import tracing_setup
        from enreach.views import quick_actions_panel

        tracing_setup()
        panels.register(
            "home", "quick-actions", template="enreach/_home_quick_actions.html", context=quick_actions_panel, order=200
        )
        post_migrate.connect(_create_cache_table, sender=self)
