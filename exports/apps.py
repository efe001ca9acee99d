from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_schedule(sender: AppConfig, **kwargs: Any) -> None:
    from exports.runs import export_sweep_schedule_sync
    from exports.schedule import export_schedule_sync

    export_schedule_sync()
    export_sweep_schedule_sync()


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from enreach import panels
        from enreach.health import health_component_register
        from enreach.metrics import collector_register
        from exports import (
            checks,  # noqa: F401  (registers the checks)
            dashboard,
        )
        from exports.metrics import ExportsCollector
        from exports.selectors import export_queue_health

        collector_register(ExportsCollector())
        # The home page's panels (enreach.views.home composes them).
        panels.register("home-alerts", "exports", template="exports/_home_alerts.html",
                        context=dashboard.alerts_panel, order=100)  # fmt: skip
        panels.register("home", "latest-export", template="exports/_home_latest.html",
                        context=dashboard.latest_export_panel, order=100)  # fmt: skip
        panels.register("home-actions", "exports", template="exports/_home_actions.html",
                        context=dashboard.run_actions_panel, order=100)  # fmt: skip
        # The health check's "queue": live workers and the oldest queued run; degraded when runs wait for nobody.
        health_component_register("queue", export_queue_health)

        # Every `migrate` (so every `make run` and deployment) brings the schedule in line with EXPORT_SCHEDULE.
        post_migrate.connect(_sync_schedule, sender=self)
