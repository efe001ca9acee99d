"""Show the named caches' shared counts."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations.caching import all_caches

COLUMNS = ("Cache", "Hits", "Misses", "Loads", "Evictions", "Size", "TTL (s)")


class Command(BaseCommand):
    """Hits, misses, loads, evictions, size and TTL of every named cache, as counted by all processes."""

    help = "Show the named caches' hit, miss, load and eviction counts (shared by every process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        stats = [cache.stats() for cache in all_caches()]
        if options["json"]:
            self.stdout.write(json.dumps([asdict(s) for s in stats], indent=2))
            return
        rows = [COLUMNS, *((s.name, s.hits, s.misses, s.loads, s.evictions, s.size, s.ttl) for s in stats)]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            name, *numbers = (str(value) for value in row)
            cells = [name.ljust(widths[0]), *(v.rjust(w) for v, w in zip(numbers, widths[1:], strict=True))]
            self.stdout.write("  ".join(cells).rstrip())
