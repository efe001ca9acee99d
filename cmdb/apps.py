from django.apps import AppConfig


class CmdbConfig(AppConfig):
    """Browse the CMDB of an export: the rows query layer, its API, the grid page and filtered downloads."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "cmdb"
    verbose_name = "CMDB"

    def ready(self) -> None:
        from cmdb.selectors import cmdb_table_warm
        from exports import afterrun

        afterrun.register("cmdb-table", cmdb_table_warm, order=150, statuses=("succeeded",))
