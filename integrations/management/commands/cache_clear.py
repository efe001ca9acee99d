"""Clear one named cache or all of them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.caching import all_caches


class Command(BaseCommand):
    """Drop every entry of the named cache (or of all caches). Counts are kept."""

    help = "Clear a named cache (or all named caches)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="The cache to clear; all caches when omitted.")

    def handle(self, *args: Any, **options: Any) -> None:
        caches = {cache.name: cache for cache in all_caches()}
        name = options["name"]
        if name and name not in caches:
            raise CommandError(f"Unknown cache {name!r}; known caches: {', '.join(sorted(caches))}.")
        for cache in [caches[name]] if name else caches.values():
            cache.invalidate()
            self.stdout.write(f"Cleared {cache.name}.")
