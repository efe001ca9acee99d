from django.apps import AppConfig


class SuggestionsConfig(AppConfig):
    name = "suggestions"
    verbose_name = "Suggestions"

    def ready(self) -> None:
        from enreach import panels

        # Every signed-in user may propose: the home page's quick action to do so.
        panels.register("home-actions", "suggestions", template="suggestions/_home_action.html",
                        context=lambda request: {}, order=300)  # fmt: skip
