"""Our Prometheus metrics, correct across processes.

The web server's workers, the django-q2 workers and management commands are separate processes, so plain
process-local counters would each see a slice. Instead:

- counters that happen anywhere (NetBox and Confluence requests, named-cache events) are prometheus_client
  counters. Under gunicorn and the queue cluster ``PROMETHEUS_MULTIPROC_DIR`` is set: every process writes its
  counts to a file there and ``/metrics`` sums them all (``metrics_exposition``), so a scrape gives the same totals
  whichever worker serves it, and a restart of Redis or of the cache loses nothing;
- what apps read from the database at scrape time (runs and the queue: ``exports.metrics``) comes from the
  collectors they register in their ``AppConfig.ready`` (``collector_register``). Counts that must survive
  restarts (runs finished, runs abandoned) are read there, from the rows that record them: a process's own counter
  file is removed once gunicorn restarts after the process is gone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

COUNTERS = {
    "enreach_netbox_requests_total": ("NetBox API requests by endpoint and status.", ("endpoint", "status")),
    "enreach_confluence_requests_total": ("Confluence API requests by operation and status.", ("operation", "status")),
    "enreach_cache_events_total": ("Named cache events (hit, miss, load, eviction).", ("cache", "event")),
    "enreach_notification_attempts_total": (
        "Notification delivery attempts by event and outcome (delivered, failed, retry).",
        ("event", "outcome"),
    ),
}
_COUNTERS = {
    name: Counter(name.removesuffix("_total"), documentation, labels)
    for name, (documentation, labels) in COUNTERS.items()
}


def counter_add(name: str, labels: Mapping[str, str], amount: int = 1) -> None:
    """Add to one of our counters. Never raises: metrics must not break the work they count."""
    if name not in _COUNTERS or amount <= 0:
        return
    try:
        _COUNTERS[name].labels(**{label: labels.get(label, "") for label in COUNTERS[name][1]}).inc(amount)
    except Exception as exc:  # a full disk under PROMETHEUS_MULTIPROC_DIR must not fail an export
        logger.warning("could not record metric %s: %s", name, exc)


def counter_declare(name: str, labels: Mapping[str, str]) -> None:
    """Expose a counter's series at 0 before it first counts (so ``increase()`` in an alert sees its first event)."""
    if name in _COUNTERS:
        _COUNTERS[name].labels(**{label: labels.get(label, "") for label in COUNTERS[name][1]})


def multiprocess_enabled() -> bool:
    """True when prometheus_client runs in multiprocess mode (gunicorn, qcluster: see gunicorn.conf.py)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def metrics_exposition() -> bytes:
    """The text exposition of every metric: of all processes in multiprocess mode, else of this process."""
    if not multiprocess_enabled():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    for collector in _collectors:
        registry.register(collector)
    return generate_latest(registry)


_collectors: list[Collector] = []


def collector_register(collector: Collector) -> None:
    """Add an app's collector of metrics read at scrape time (from the database, say), once per process.

    Apps call this from their ``AppConfig.ready``: the project package knows no app. In multiprocess mode the
    collectors answer beside the counters summed over every process (``metrics_exposition``).
    """
    if any(type(known) is type(collector) for known in _collectors):
        return
    _collectors.append(collector)
    REGISTRY.register(collector)
