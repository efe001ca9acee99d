"""Companions: work other apps register to run *during* a run's writing, beside the forked child, not after it.

The after-run steps (``exports.afterrun``) follow a finished run. Some work is better done while the run writes:
the data-quality report reads the rows the export already holds, so it runs in the export process while the forked
child writes the workbook, and the child adds the report's sheet to that workbook once its data sheets are
written. A companion is registered from its app's ``AppConfig.ready()`` (``register(Companion(...))``) and the pipeline
(``exports.files``, ``exports.services``) calls it through this registry, in ``order``, without importing its app.

The contract, in the order a run meets it:

1. ``prepare()``, in the export process before anything is written (it may read the settings and the database,
   which the child may not): ``None`` when the companion is off for this run, else a ``CompanionPlan``. Its
   ``digest`` (JSON-able) joins the run's files digest (``FilesPlan.digest``): the previous run's files are reused
   only when nothing changed in NetBox *and* every companion's digest is the previous run's. ``artifacts`` names the
   files it may add (file name -> ``ExportArtifact.Kind``); all are optional.
2. ``plan.write(rows, folder)``, in the export process once the child is forked and before the devices and VMs CSVs
   are written. ``rows`` holds the run's rows *by kind* (``RunRows``: ``"device"`` and ``"vm"``), each a
   ``KindRows`` with its ``columns`` and ``batches()``, a fresh iterator of row batches (sequences of rows in
   ``columns`` order) on every call; a companion must not assume one batch or a list it may keep: today a kind is
   one batch (the rows in memory), a streaming pipeline hands batches read back from ``csv_path`` (the kind's CSV in
   the run folder, written once ``write`` returns at the latest). It writes its files into ``folder`` and returns a
   ``CompanionWrite``: the files written (name -> ``FileInfo``), a small picklable ``message`` for the child, its
   ``result`` (kept in the export process for ``record``) and the ``seconds`` it took (``run.timings[name]``). It
   must not raise: a failing report is a result that says so, and the export goes on.
3. ``plan.sheets(message, folder)``, in the writing child (only when ``plan.sheets`` is set; it waits for the
   message): extra workbook sheets (``exports.workbook.ExtraSheet``) after the CMDB sheet. No database here.
4. ``record(run, result)``, in the transaction that stores the run's files and counts: what the companion keeps.
5. ``reuse(previous)`` when the run reuses the previous run's files (nothing changed in NetBox): the result to
   ``record`` for this run, read from the previous run, or ``None``.

A companion may keep hidden files beside the run's row spools for the next run (``kept``): they are linked into a run
that reuses the previous run's files, and removed with the row spools when the run is no longer the newest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exports.atomic import FileInfo
    from exports.models import ExportRun
    from exports.workbook import ExtraSheet

Row = Sequence[Any]
Batch = Sequence[Row]


@dataclass(frozen=True, slots=True)
class KindRows:
    """One kind's rows of a run: its columns, its batches of rows (a fresh iterator per call), its CSV's path."""

    kind: str
    columns: tuple[str, ...]
    batches: Callable[[], Iterator[Batch]]
    csv_path: Path
    # An incremental run whose rows reuse the previous run's: that run's folder, and beside each batch of
    # ``batches()`` (in step with it) each row's pick: ``-1`` for a row made anew, else how many of the previous
    # run's rows of the kind to pass over (dropped or made anew since) before the one this row is, unchanged.
    # None: any row may be new.
    previous: Path | None = None
    picks: Callable[[], Iterator[Sequence[int]]] | None = None
    # The kind's rows spooled (``exports.spool.RowSpool``), indexed by id when its ``index`` says so: a companion
    # may read single rows, or the rows' ids, without reading every batch. None: read the batches.
    spool: Path | None = None


RunRows = Mapping[str, KindRows]  # "device" and "vm"


@dataclass(frozen=True, slots=True)
class CompanionWrite:
    """What a companion did while the run wrote: files added, a message for the child, its result and time."""

    files: dict[str, FileInfo] = field(default_factory=dict)
    message: Any = None
    result: Any = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class CompanionPlan:
    """A companion's part in one run, prepared before the run writes (see the module's contract)."""

    digest: Any
    write: Callable[[RunRows, Path], CompanionWrite]
    artifacts: Mapping[str, str] = field(default_factory=dict)
    sheets: Callable[[Any, Path], list[ExtraSheet]] | None = None


@dataclass(frozen=True, slots=True)
class Companion:
    """A registered companion: its name (the key of its timing and digest), its place in the order, its hooks."""

    name: str
    order: int
    prepare: Callable[[], CompanionPlan | None]
    record: Callable[[ExportRun, Any], None]
    reuse: Callable[[ExportRun], Any]
    artifacts: Mapping[str, str] = field(default_factory=dict)  # every file it may ever add: name -> kind
    kept: tuple[str, ...] = ()  # hidden files it keeps beside the row spools for the next run

    def __str__(self) -> str:
        return f"{self.order:>4}  {self.name:<16} {', '.join(self.artifacts) or '(no files)'}"


_registry: dict[str, Companion] = {}


def register(companion: Companion) -> Companion:
    """Register (or replace, by name) a companion."""
    _registry[companion.name] = companion
    return companion


def unregister(name: str) -> Companion | None:
    """Remove a companion (tests); returns it, or ``None``."""
    return _registry.pop(name, None)


def companions() -> list[Companion]:
    """The registered companions in the order they run."""
    return sorted(_registry.values(), key=lambda companion: (companion.order, companion.name))


def kept_files() -> tuple[str, ...]:
    """Every hidden file a registered companion keeps beside a run's row spools."""
    return tuple(name for companion in companions() for name in companion.kept)


def artifact_kinds() -> dict[str, str]:
    """Every file a registered companion may add, with its artifact kind."""
    return {name: kind for companion in companions() for name, kind in companion.artifacts.items()}
