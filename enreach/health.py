"""What the health check reports beyond the database, the cache and the broker: components apps register.

An app adds a component from its ``AppConfig.ready`` (the project package knows no app)::

    health_component_register("queue", queue_health)

A component is a function returning a dict with ``status`` (``ok``, ``degraded`` or ``down``) and public details.
``down`` makes the health check answer 503; ``degraded`` keeps it 200 (the site serves) with ``"status":
"degraded"`` and the component named in ``degraded``.

``queue_workers()`` counts the django-q2 worker processes alive now, from the status each cluster writes to the
broker twice a second (it expires 3 s after a cluster stops writing it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HealthProbe = Callable[[], dict[str, Any]]

_components: dict[str, HealthProbe] = {}

# django-q2 cluster states in which its workers take tasks.
_WORKING_STATES = ("Idle", "Working")


def health_component_register(name: str, probe: HealthProbe) -> None:
    """Add (or replace) a component of the health check."""
    _components[name] = probe


def health_components() -> dict[str, HealthProbe]:
    return dict(_components)


def queue_workers() -> tuple[int, int]:
    """(clusters, worker processes) of the django-q2 clusters that are up now. Raises when the broker is down."""
    from django_q.brokers import get_broker
    from django_q.status import Stat

    clusters = [stat for stat in Stat.get_all(broker=get_broker()) if getattr(stat, "status", "") in _WORKING_STATES]
    return len(clusters), sum(len(getattr(stat, "workers", []) or []) for stat in clusters)
