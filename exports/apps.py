from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_schedule(sender: AppConfig, **kwargs: Any) -> None:
    from exports.runs import export_sweep_schedule_sync
    from exports.schedule import export_schedule_sync

    export_schedule_sync()
    export_sweep_schedule_sync()


def _worker_spawned(sender: object, **kwargs: Any) -> None:
    """A queue worker has started: import pandas now, while it waits for work, so that no export run in it waits
    for the import (about 0.4 s of CPU; the data-quality report needs it). Processes that never run an export, such
    as the web workers and ``manage.py check``, do not load it."""
    from django.conf import settings

    if settings.EXPORT_QUALITY:
        import pandas  # noqa: F401


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from enreach.health import health_component_register
        from enreach.metrics import collector_register
        from exports import checks  # noqa: F401  (registers the checks)
        from exports.metrics import ExportsCollector
        from exports.selectors import export_queue_health

        collector_register(ExportsCollector())
        # The health check's "queue": live workers and the oldest queued run; degraded when runs wait for nobody.
        health_component_register("queue", export_queue_health)

        post_spawn.connect(_worker_spawned, dispatch_uid="exports.worker_spawned")
        # Every `migrate` (so every `make run` and deployment) brings the schedule in line with EXPORT_SCHEDULE.
        post_migrate.connect(_sync_schedule, sender=self)
