"""The exports' metrics read from the database and the broker at scrape time: runs by trigger and status, step
durations, the latest export's objects and time, and the task queue. Registered in ``ExportsConfig.ready``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from exports.models import ExportRun

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))


class ExportsCollector(Collector):
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
        # Imported at scrape time: the queue's modules cost every process's start-up otherwise.
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
