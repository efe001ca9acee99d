from typing import Any

from django.apps import AppConfig


def _worker_spawned(sender: object, **kwargs: Any) -> None:
    """A queue worker has started: import numpy now, while it waits for work, so that no export run in it waits
    for the import (the data-quality report's duplicate rules need it; pandas only for dates in unusual forms).
    Processes that never run an export, such as the web workers and ``manage.py check``, do not load it."""
    from django.conf import settings

    if settings.EXPORT_QUALITY:
        import numpy  # noqa: F401


class QualityAppConfig(AppConfig):
    """The data-quality report: rules over every export's rows, their findings, counts and trend, their pages, API
    and admin. It joins each run as a companion of its writing (``exports.companions``)."""

    name = "quality"
    verbose_name = "Data quality"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from enreach import panels
        from exports import companions
        from quality.selectors import quality_home_panel
        from quality.services import QUALITY_COMPANION

        companions.register(QUALITY_COMPANION)
        panels.register("home", "quality", template="quality/_panel.html", context=quality_home_panel, order=300)
        panels.register("exports", "quality", template="quality/_panel.html", context=quality_home_panel, order=100)
        post_spawn.connect(_worker_spawned, dispatch_uid="quality.worker_spawned")
