from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _key_changed(name: str) -> None:
    from integrations.caching import cache_event

    cache_event("key_changed")


def _sync_schedule(sender: AppConfig, **kwargs: Any) -> None:
    from integrations.directory.sync import directory_sync_schedule_sync

    directory_sync_schedule_sync()


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from accounts.keys import key_change_hook_register
        from integrations.caching import invalidate_on

        # Named caches live in the shared cache backend, so this invalidates them for every process.
        key_change_hook_register(_key_changed)

        # NetBox's status goes stale when its credentials change or an export lands.
        invalidate_on("key_changed", "netbox")
        invalidate_on("export_succeeded", "netbox")
        # The custom field definitions a column set is checked against: another NetBox, or one that changed.
        invalidate_on("key_changed", "netbox_custom_fields")
        invalidate_on("export_succeeded", "netbox_custom_fields")

        # Every `migrate` brings the daily directory sync in line with AUTH_LDAP_SERVER_URI.
        post_migrate.connect(_sync_schedule, sender=self)
