from django.apps import AppConfig


class CmdbConfig(AppConfig):
    """Browse the CMDB of an export: the rows query layer, its API, the grid page and filtered downloads."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "cmdb"
    verbose_name = "CMDB"

    def ready(self) -> None:
        from cmdb.services import cmdb_table_build
        from exports import afterrun

        # The run's table file is written once, when the run succeeds; every process maps it.
        afterrun.register("cmdb-table", lambda run: cmdb_table_build(run=run), order=150, statuses=("succeeded",))
