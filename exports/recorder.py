"""The run recorder: keeps an export run's row up to date while it executes (current step, per-step timings,
throttled progress, log lines), and logs each line under this module's logger with the run's context.

While the database is unreachable the run goes on: an update that cannot be written is skipped (the outage is
logged once), and the next one writes everything the row is missing."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from enreach.logs import log_context
from enreach.outage import database_unreachable, outage_noted
from enreach.tracing import span
from exports.models import ExportRun
from exports.steps import step_label

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ExportRun], None]


class RunRecorder:
    """Keeps the run row up to date: current step, per-step timings, progress (throttled) and log lines."""

    def __init__(self, run: ExportRun, on_progress: ProgressCallback | None) -> None:
        self.run = run
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._last_save = 0.0

    def log(self, message: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        with self._lock:
            self.run.log += f"{stamp} {message}\n"
        logger.info("export run %s: %s", self.run.pk, message)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.run.step = name
        with log_context(step=name), span(f"export.{name}", **{"export.run_id": self.run.pk}):
            self.log(f"{step_label(name)}…")
            self.save(force=True)
            started = time.perf_counter()
            yield
            self.run.timings[name] = round(time.perf_counter() - started, 3)

    def progress(self, *, persist: bool = True, **values: int) -> None:
        """Record progress; ``persist=False`` from other threads, which must not use the database."""
        with self._lock:
            self.run.progress.update(values)
        if persist:
            self.save()

    def save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_save < 1.0:
            return
        self._last_save = now
        self.run.heartbeat = timezone.now()
        try:
            with self._lock:
                ExportRun.objects.filter(pk=self.run.pk).update(
                    step=self.run.step,
                    progress=dict(self.run.progress),
                    timings=dict(self.run.timings),
                    log=self.run.log,
                    heartbeat=self.run.heartbeat,
                )
        except (OperationalError, InterfaceError) as exc:
            if not database_unreachable(exc) or connection.in_atomic_block:
                raise
            outage_noted(exc, where=f"export run {self.run.pk}")
            with contextlib.suppress(Exception):
                connection.close()  # broken; the next save opens a new one
        if self.on_progress is not None:
            self.on_progress(self.run)
