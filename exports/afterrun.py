"""After a run: the steps other apps register to act on a finished export run, in order, each recorded on the run.

The export core announces a finished run once (``after_run_execute``): when ``exports.services`` has stored a run's
files and changes (succeeded) or its failure (failed), and when the sweeper (``exports.runs``) fails a run that was
abandoned by its worker, never started, or could not be queued. It does not know who listens: apps register their
steps from their own ``AppConfig.ready()``::

    from exports import afterrun
    afterrun.register("publishing", publishing_step, order=200, statuses=("succeeded",))

A step is ``func(run) -> str | None`` (a short note for the run's log, or ``None``); raising ``afterrun.Skip`` with
a reason records it as skipped. Steps run in ``order`` (then by name), only those registered for the run's status.
Each step's outcome (``succeeded``, ``failed`` or ``skipped``), its seconds, its error and its note are recorded on
the run (``ExportRun.after_run``, a JSON list, saved after every step) and in its log. A failing step fails only
itself: never the export (already finished), never the steps after it. ``steps()`` is the registry as an ordered
list you can print. Orders: quality 100 (kept: the report's counts are stored by its companion, see
``exports.companions``), the CMDB table 150, publishing 200, notifications 300.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from exports.models import ExportRun

logger = logging.getLogger(__name__)

StepFunc = Callable[[ExportRun], "str | None"]
OUTCOMES = ("succeeded", "failed", "skipped")
FINISHED = (ExportRun.Status.SUCCEEDED.value, ExportRun.Status.FAILED.value)


class Skip(Exception):
    """Raised by a step that has nothing to do for this run; its message is the reason recorded."""


@dataclass(frozen=True, slots=True)
class AfterRunStep:
    """A registered step: its name, its function, its place in the order and the run statuses it acts on."""

    name: str
    func: StepFunc
    order: int
    statuses: tuple[str, ...]

    def __str__(self) -> str:
        where = f"{self.func.__module__}.{getattr(self.func, '__qualname__', self.func)}"
        return f"{self.order:>4}  {self.name:<16} on {', '.join(self.statuses):<18} {where}"


_registry: dict[str, AfterRunStep] = {}


def register(name: str, func: StepFunc, *, order: int, statuses: Iterable[str] = FINISHED) -> AfterRunStep:
    """Register (or replace, by name) the step ``name``; ``statuses`` are the run statuses it acts on."""
    wanted = tuple(statuses)
    unknown = sorted(set(wanted) - set(FINISHED))
    if not name or unknown or not wanted:
        raise ValueError(f"after-run step {name!r}: statuses must be among {FINISHED}, got {wanted}")
    step = AfterRunStep(name=name, func=func, order=order, statuses=wanted)
    _registry[name] = step
    return step


def unregister(name: str) -> AfterRunStep | None:
    """Remove a step (tests; an app switched off at run time). Returns it, or ``None`` if it was not registered."""
    return _registry.pop(name, None)


def steps() -> list[AfterRunStep]:
    """The registered steps in the order they run."""
    return sorted(_registry.values(), key=lambda step: (step.order, step.name))


def after_run_execute(*, run: ExportRun) -> list[dict[str, Any]]:
    """Run every step registered for the finished ``run``'s status, in order; record each on the run. Never raises.

    Returns the records (also saved as ``run.after_run``): ``{"step", "outcome", "seconds", "error", "note"}``.
    """
    if run.status not in FINISHED:
        raise ValueError(f"export run {run.pk} is {run.status}: after-run steps follow a finished run only")
    records: list[dict[str, Any]] = []
    run.after_run = records
    for step in steps():
        if run.status not in step.statuses:
            continue
        started = time.perf_counter()
        outcome, error, note = "succeeded", "", ""
        try:
            note = step.func(run) or ""
        except Skip as exc:
            outcome, note = "skipped", str(exc)
        except Exception as exc:  # one failing step fails only itself
            logger.exception("export run %s: after-run step %s failed", run.pk, step.name)
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
        seconds = round(time.perf_counter() - started, 3)
        records.append({"step": step.name, "outcome": outcome, "seconds": seconds, "error": error, "note": note})
        _record(run, step.name, outcome, seconds, error or note)
    return records


def _record(run: ExportRun, name: str, outcome: str, seconds: float, words: str) -> None:
    stamp = timezone.localtime().strftime("%H:%M:%S")
    run.log += f"{stamp} After the run: {name} {outcome} in {seconds:.2f} s{': ' + words if words else ''}\n"
    try:
        ExportRun.objects.filter(pk=run.pk).update(after_run=list(run.after_run), log=run.log)
    except Exception:  # the database may be gone for a moment: the steps still run, the record is what is lost
        logger.exception("export run %s: after-run outcome of %s not recorded", run.pk, name)
