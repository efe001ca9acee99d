"""Our Prometheus metrics, correct across processes.

The web server, the django-q2 workers and management commands are separate processes, so process-local counters
would each see a slice. Instead:

- counters that happen anywhere (NetBox and Confluence requests, cache events) are kept in the shared Django
  cache (database or Redis) with ``counter_add``;
- everything about runs and the queue is read from the database at scrape time.

``EnreachCollector`` turns both into metrics when ``/metrics`` is scraped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from django.core.cache import cache
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

COUNTERS = {
    "enreach_netbox_requests_total": ("NetBox API requests by endpoint and status.", ("endpoint", "status")),
    "enreach_confluence_requests_total": ("Confluence API requests by operation and status.", ("operation", "status")),
    "enreach_cache_events_total": ("Named cache events (hit, miss, load, eviction).", ("cache", "event")),
}
_INDEX_KEY = "enreach:metrics:index"
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))


def _key(name: str, labels: Mapping[str, str]) -> str:
    return f"enreach:metrics:{name}:" + json.dumps(sorted(labels.items()), separators=(",", ":"))


def counter_add(name: str, labels: Mapping[str, str], amount: int = 1) -> None:
    """Add to a shared counter. Never raises: metrics must not break the work they count."""
    if name not in COUNTERS or amount <= 0:
        return
    key = _key(name, labels)
    try:
        if cache.add(key, amount, timeout=None):
            index = set(cache.get(_INDEX_KEY) or ())
            if key not in index:
                cache.set(_INDEX_KEY, sorted(index | {key}), timeout=None)
        else:
            cache.incr(key, amount)
    except Exception as exc:  # a cache outage must not fail an export
        logger.warning("could not record metric %s: %s", name, exc)


def counters() -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every shared counter with its labels and value."""
    keys = list(cache.get(_INDEX_KEY) or ())
    values = cache.get_many(keys) if keys else {}
    result: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in COUNTERS}
    for key, value in values.items():
        name, _, labels = key.removeprefix("enreach:metrics:").partition(":")
        if name in result:
            result[name].append((dict(json.loads(labels)), float(value)))
    return result


class EnreachCollector(Collector):
    """Collects our metrics at scrape time from the shared cache and the database."""

    def describe(self) -> Iterator[Any]:
        # Registering a collector without describe() makes the registry call collect(), which would query the
        # database and the cache at import time.
        for name, (documentation, labels) in COUNTERS.items():
            yield CounterMetricFamily(name.removesuffix("_total"), documentation, labels=labels)
        yield CounterMetricFamily("enreach_export_runs", "", labels=("trigger", "status"))
        yield HistogramMetricFamily("enreach_export_duration_seconds", "", labels=("step",))
        yield GaugeMetricFamily("enreach_export_objects", "", labels=("kind",))
        yield GaugeMetricFamily("enreach_export_last_success_timestamp_seconds", "")
        yield GaugeMetricFamily("enreach_queue_tasks", "", labels=("state",))

    def collect(self) -> Iterator[Any]:
        try:
            yield from self._shared_counters()
            yield from self._runs()
            yield from self._queue()
        except Exception as exc:  # a broken database shows up in /api/health/; the scrape still answers
            logger.warning("metrics collection failed: %s", exc)

    def _shared_counters(self) -> Iterator[Any]:
        for name, samples in counters().items():
            documentation, label_names = COUNTERS[name]
            family = CounterMetricFamily(name.removesuffix("_total"), documentation, labels=label_names)
            for labels, value in samples:
                family.add_metric([labels.get(label, "") for label in label_names], value)
            yield family

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
