"""Our Prometheus metrics, correct across processes.

The web server's workers, the django-q2 workers and management commands are separate processes, so plain
process-local counters would each see a slice. Instead:

- counters that happen anywhere (NetBox and Confluence requests, named-cache events) are prometheus_client
  counters. Under gunicorn and the queue cluster ``PROMETHEUS_MULTIPROC_DIR`` is set: every process writes its
  counts to a file there and ``/metrics`` sums them all (``metrics_exposition``), so a scrape gives the same totals
  whichever worker serves it, and a restart of Redis or of the cache loses nothing;
- everything about runs and the queue is read from the database at scrape time (``EnreachCollector``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

COUNTERS = {
    "enreach_netbox_requests_total": ("NetBox API requests by endpoint and status.", ("endpoint", "status")),
    "enreach_confluence_requests_total": ("Confluence API requests by operation and status.", ("operation", "status")),
    "enreach_cache_events_total": ("Named cache events (hit, miss, load, eviction).", ("cache", "event")),
    "enreach_export_runs_abandoned_total": (
        "Runs failed by the sweeper because their worker went silent.",
        ("retried",),
    ),
}
_COUNTERS = {
    name: Counter(name.removesuffix("_total"), documentation, labels)
    for name, (documentation, labels) in COUNTERS.items()
}
# Both outcomes exist from the start at 0, so `increase()` in an alert sees the first abandoned run.
for _retried in ("true", "false"):
    _COUNTERS["enreach_export_runs_abandoned_total"].labels(retried=_retried)
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))


def counter_add(name: str, labels: Mapping[str, str], amount: int = 1) -> None:
    """Add to one of our counters. Never raises: metrics must not break the work they count."""
    if name not in _COUNTERS or amount <= 0:
        return
    try:
        _COUNTERS[name].labels(**{label: labels.get(label, "") for label in COUNTERS[name][1]}).inc(amount)
    except Exception as exc:  # a full disk under PROMETHEUS_MULTIPROC_DIR must not fail an export
        logger.warning("could not record metric %s: %s", name, exc)


def multiprocess_enabled() -> bool:
    """True when prometheus_client runs in multiprocess mode (gunicorn, qcluster: see gunicorn.conf.py)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def metrics_exposition() -> bytes:
    """The text exposition of every metric: of all processes in multiprocess mode, else of this process."""
    if not multiprocess_enabled():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(EnreachCollector())
    return generate_latest(registry)


class EnreachCollector(Collector):
    """Collects run and queue metrics from the database (and the broker) at scrape time."""

    def describe(self) -> Iterator[Any]:
        # Registering a collector without describe() makes the registry call collect(), which would query the
        # database and the cache at import time.
        yield CounterMetricFamily("enreach_export_runs", "", labels=("trigger", "status"))
        yield HistogramMetricFamily("enreach_export_duration_seconds", "", labels=("step",))
        yield GaugeMetricFamily("enreach_export_objects", "", labels=("kind",))
        yield GaugeMetricFamily("enreach_export_last_success_timestamp_seconds", "")
        yield GaugeMetricFamily("enreach_queue_tasks", "", labels=("state",))

    def collect(self) -> Iterator[Any]:
        for part in (self._runs, self._queue):
            try:
                yield from part()
            except Exception as exc:  # a broken database or broker shows up in /api/health/; the scrape answers
                logger.warning("metrics collection failed: %s", exc)

    def _runs(self) -> Iterator[Any]:
        from django.db.models import Count

        from exports.models import ExportRun

        runs = CounterMetricFamily(
            "enreach_export_runs", "Export runs by trigger and final or current status.", labels=("trigger", "status")
        )
        for row in ExportRun.objects.values("trigger", "status").annotate(n=Count("id")).order_by():
            runs.add_metric([row["trigger"], row["status"]], row["n"])
        yield runs

        durations: dict[str, list[float]] = {}
        for timings in ExportRun.objects.exclude(timings={}).values_list("timings", flat=True).order_by("-id")[:1000]:
            for step, seconds in (timings or {}).items():
                durations.setdefault(step, []).append(float(seconds))
        histogram = HistogramMetricFamily(
            "enreach_export_duration_seconds", "Export step durations (last 1000 runs).", labels=("step",)
        )
        for step, values in sorted(durations.items()):
            buckets = [(_bound(bound), sum(1 for v in values if v <= bound)) for bound in DURATION_BUCKETS]
            histogram.add_metric([step], buckets, sum_value=sum(values))
        yield histogram

        last = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED).order_by("-finished").first()
        objects = GaugeMetricFamily(
            "enreach_export_objects", "Objects in the latest successful export.", labels=("kind",)
        )
        last_success = GaugeMetricFamily(
            "enreach_export_last_success_timestamp_seconds", "When the latest successful export finished."
        )
        if last is not None and last.finished is not None:
            objects.add_metric(["devices"], last.devices or 0)
            objects.add_metric(["vms"], last.vms or 0)
            last_success.add_metric([], last.finished.timestamp())
        yield objects
        yield last_success

    def _queue(self) -> Iterator[Any]:
        from django_q.brokers import get_broker
        from django_q.models import Failure, Success

        broker = get_broker()
        tasks = GaugeMetricFamily("enreach_queue_tasks", "django-q2 tasks by state.", labels=("state",))
        tasks.add_metric(["queued"], broker.queue_size() or 0)
        tasks.add_metric(["succeeded"], Success.objects.count())
        tasks.add_metric(["failed"], Failure.objects.count())
        yield tasks


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


_registered = False


def metrics_register() -> None:
    """Register the collector once per process."""
    global _registered
    if not _registered:
        REGISTRY.register(EnreachCollector())
        _registered = True
