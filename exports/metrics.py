"""The exports' metrics, read from the database and the broker at scrape time. Registered in ``ExportsConfig.ready``.

Read from the database, not counted in a process, so they are the same whichever process answers the scrape and
survive restarts of every process: a counter never goes down while the runs it counts are kept.

- ``enreach_export_runs{status}``: a gauge, the runs in each status now;
- ``enreach_export_runs_finished_total{trigger,outcome}``: a counter, the runs that finished (``succeeded``,
  ``failed``);
- ``enreach_export_duration_seconds{step}``: a histogram with one observation per step of every finished run;
- ``enreach_export_runs_abandoned_total{retried}``: runs the sweeper failed because their worker went silent;
- ``enreach_export_objects{kind}``, ``enreach_export_last_success_timestamp_seconds``: the latest success;
- ``enreach_queue_tasks{state}``, ``enreach_queue_workers``, ``enreach_export_queue_age_seconds``: the task queue,
  its live workers and how long the oldest queued run has waited (0 when none waits).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Exists, FloatField, OuterRef, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from enreach.health import queue_workers
from enreach.outage import database_unreachable, outage_noted
from exports.models import ExportRun
from exports.selectors import export_queue_age
from exports.steps import STEP_LABELS

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# The steps a run records in its timings (the data-quality report's own time too).
TIMED_STEPS = (*STEP_LABELS, "quality")
FINISHED = (ExportRun.Status.SUCCEEDED, ExportRun.Status.FAILED)
ABANDONED_PREFIX = "Abandoned:"


class ExportsCollector(Collector):
    """Collects run and queue metrics from the database (and the broker) at scrape time."""

    def describe(self) -> Iterator[Any]:
        # Registering a collector without describe() makes the registry call collect(), which would query the
        # database and the cache at import time.
        yield GaugeMetricFamily("enreach_export_runs", "", labels=("status",))
        yield CounterMetricFamily("enreach_export_runs_finished", "", labels=("trigger", "outcome"))
        yield CounterMetricFamily("enreach_export_runs_abandoned", "", labels=("retried",))
        yield HistogramMetricFamily("enreach_export_duration_seconds", "", labels=("step",))
        yield GaugeMetricFamily("enreach_export_objects", "", labels=("kind",))
        yield GaugeMetricFamily("enreach_export_last_success_timestamp_seconds", "")
        yield GaugeMetricFamily("enreach_queue_tasks", "", labels=("state",))
        yield GaugeMetricFamily("enreach_queue_workers", "")
        yield GaugeMetricFamily("enreach_export_queue_age_seconds", "")

    def collect(self) -> Iterator[Any]:
        for part in (self._runs, self._durations, self._latest, self._queue, self._liveness):
            try:
                yield from part()
            except Exception as exc:  # a broken database or broker shows up in /api/health/; the scrape answers
                if database_unreachable(exc):
                    outage_noted(exc, where="metrics")  # once per outage, not five times per scrape
                else:
                    logger.warning("metrics collection failed: %s", exc)

    def _runs(self) -> Iterator[Any]:
        by_status = dict.fromkeys(ExportRun.Status.values, 0)
        finished: dict[tuple[str, str], int] = {}
        for row in ExportRun.objects.values("trigger", "status").annotate(n=Count("id")).order_by():
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
            if row["status"] in FINISHED:
                finished[(row["trigger"], row["status"])] = row["n"]
        runs = GaugeMetricFamily("enreach_export_runs", "Export runs in each status now.", labels=("status",))
        for status, count in by_status.items():
            runs.add_metric([status], count)
        yield runs
        outcomes = CounterMetricFamily(
            "enreach_export_runs_finished",
            "Export runs finished, by trigger and outcome.",
            labels=("trigger", "outcome"),
        )
        for trigger in ExportRun.Trigger.values:
            for outcome in FINISHED:
                outcomes.add_metric([trigger, outcome], finished.get((trigger, outcome), 0))
        yield outcomes

        retried = ExportRun.objects.filter(retry_of=OuterRef("pk"))
        abandoned = (
            ExportRun.objects.filter(status=ExportRun.Status.FAILED, error__startswith=ABANDONED_PREFIX)
            .annotate(retried=Exists(retried))
            .values("retried")
            .annotate(n=Count("id"))
            .order_by()
        )
        counts = {bool(row["retried"]): row["n"] for row in abandoned}
        family = CounterMetricFamily(
            "enreach_export_runs_abandoned",
            "Runs failed by the sweeper because their worker went silent; retried: queued again.",
            labels=("retried",),
        )
        for value in (True, False):
            family.add_metric(["true" if value else "false"], counts.get(value, 0))
        yield family

    def _durations(self) -> Iterator[Any]:
        """One observation per step of every finished run, counted by the database in one query."""
        runs = ExportRun.objects.filter(status__in=FINISHED).annotate(
            **{f"t_{step}": Cast(KT(f"timings__{step}"), FloatField()) for step in TIMED_STEPS}
        )
        aggregates: dict[str, Any] = {}
        for step in TIMED_STEPS:
            timed = Q(**{f"t_{step}__isnull": False})
            aggregates[f"{step}__count"] = Count("id", filter=timed)
            aggregates[f"{step}__sum"] = Sum(f"t_{step}", filter=timed)
            for index, bound in enumerate(DURATION_BUCKETS):
                aggregates[f"{step}__{index}"] = Count("id", filter=Q(**{f"t_{step}__lte": bound}))
        totals = runs.aggregate(**aggregates)
        histogram = HistogramMetricFamily(
            "enreach_export_duration_seconds",
            "Export step durations, one observation per finished run.",
            labels=("step",),
        )
        for step in TIMED_STEPS:
            count = totals[f"{step}__count"] or 0
            if not count:
                continue
            buckets = [
                (repr(float(bound)), totals[f"{step}__{index}"] or 0) for index, bound in enumerate(DURATION_BUCKETS)
            ]
            histogram.add_metric([step], [*buckets, ("+Inf", count)], sum_value=float(totals[f"{step}__sum"] or 0.0))
        yield histogram

    def _latest(self) -> Iterator[Any]:
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

    def _liveness(self) -> Iterator[Any]:
        age = GaugeMetricFamily(
            "enreach_export_queue_age_seconds", "How long the oldest queued export run has waited (0: none waits)."
        )
        age.add_metric([], export_queue_age())
        yield age
        workers = GaugeMetricFamily(
            "enreach_queue_workers", "django-q2 worker processes alive now (clusters reporting to the broker)."
        )
        workers.add_metric([], queue_workers()[1])  # raises while the broker is down: no figure rather than a 0
        yield workers
