from django.apps import AppConfig


class CmdbConfig(AppConfig):
    """Browse the CMDB of an export: the rows query layer, its API, the grid page and filtered downloads."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "cmdb"
    verbose_name = "CMDB"
