"""Create the first admin account on first start."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.services import admin_ensure


class Command(BaseCommand):
    """Create an admin from ENREACH_ADMIN_USERNAME/ENREACH_ADMIN_PASSWORD when no active admin exists.

    Without a configured password one is generated and printed once.
    """

    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        user, generated = admin_ensure(
            username=settings.ENREACH_ADMIN_USERNAME, password=settings.ENREACH_ADMIN_PASSWORD
        )
        if user is None:
            self.stdout.write("An admin account exists already.")
        elif generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin account {user.username!r} with generated password: {generated}\n"
                    "It is shown this once: sign in and change it, or set ENREACH_ADMIN_PASSWORD."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Created admin account {user.username!r}."))
