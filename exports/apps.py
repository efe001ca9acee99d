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
        from enreach.metrics import collector_register
        from exports import checks  # noqa: F401  (registers the checks)
        from exports.metrics import ExportsCollector

        collector_register(ExportsCollector())

        # Every `migrate` (so every `make run` and deployment) brings the schedule in line with EXPORT_SCHEDULE.
        post_migrate.connect(_sync_schedule, sender=self)
