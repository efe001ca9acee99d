from django.apps import AppConfig


class EnreachConfig(AppConfig):
    """Process-wide observability set-up: our metrics collector and, when configured, tracing."""

    name = "enreach"
    verbose_name = "Enreach tools"

    def ready(self) -> None:
        from enreach.metrics import metrics_register
        from enreach.tracing import tracing_setup

        metrics_register()
        tracing_setup()
