from django.apps import AppConfig


class PublishingConfig(AppConfig):
    """Confluence pages and attachments, and backups, of the export runs: after every successful run (unless it
    was asked not to publish), and on request (commands, API, admin)."""

    name = "publishing"
    verbose_name = "Publishing"

    def ready(self) -> None:
        from enreach import panels
        from exports import afterrun
        from publishing.selectors import publications_panel
        from publishing.services import publishing_after_run

        afterrun.register("publishing", publishing_after_run, order=200, statuses=("succeeded",))
        panels.register(
            "export-run",
            "publications",
            template="publishing/_run_publications.html",
            context=publications_panel,
            order=100,
        )
