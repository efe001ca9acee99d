from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import checks  # noqa: F401  (registers the system checks)
        from enreach import panels

        panels.register("home-actions", "profile", template="accounts/_home_action.html",
                        context=lambda request: {}, order=400)  # fmt: skip
