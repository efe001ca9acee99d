from django.apps import AppConfig


def _key_changed(name: str) -> None:
    from integrations.caching import cache_event

    cache_event("key_changed")


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
