from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_schedule(sender: AppConfig, **kwargs: Any) -> None:
    from notifications.services import notifications_schedule_sync

    notifications_schedule_sync()


def _rotate_channels(old_keys: list[str]) -> int:
    from notifications.services import channels_rotate

    return channels_rotate(old_keys=old_keys)


class NotificationsConfig(AppConfig):
    """E-mail and webhook notifications of failed, stale and changing exports."""

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from accounts.keys import key_rotator_register
        from enreach.metrics import counter_declare
        from exports import afterrun
        from notifications.models import EventKind
        from notifications.services import run_finished

        for event in [*EventKind.values, "test"]:
            for outcome in ("delivered", "failed", "retry"):
                counter_declare("enreach_notification_attempts_total", {"event": event, "outcome": outcome})

        # Every finished run, succeeded or failed (also abandoned or never started), after publishing: its outbox rows.
        afterrun.register(
            "notifications", lambda run: run_finished(run=run), order=300, statuses=("succeeded", "failed")
        )
        # `manage.py keys_rotate` re-encrypts the webhooks' URLs and secrets with the global keys.
        key_rotator_register(_rotate_channels)
        # Every `migrate` installs the every-minute sweep: the stale check and re-queueing due deliveries. Its own
        # schedule, because the export core's sweep must not import this app and the after-run registry only
        # offers steps after a run, not a clock.
        post_migrate.connect(_sync_schedule, sender=self)
