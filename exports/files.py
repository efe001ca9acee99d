"""The files of a run: writing them (the merged CSV and the workbook in a forked child while this process writes
the devices and VMs CSVs and runs the companions, ``exports.companions``), reusing the previous run's files when
nothing changed, and pruning old runs' folders."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from enreach.forked import ChildProcessFailed, Mailbox, forked
from exports import columns, companions, transform
from exports.atomic import FILE_MODE, FileInfo
from exports.column_sets import column_set_for_run
from exports.companions import Companion, CompanionPlan, CompanionWrite, KindRows
from exports.constants import DEVICES_CSV, MERGED_CSV, VMS_CSV, WORKBOOK
from exports.csvfiles import write_csv
from exports.errors import ExportError
from exports.fetch import Fetched
from exports.models import ExportArtifact, ExportRun
from exports.recorder import RunRecorder
from exports.workbook import read_workbook_order, write_workbook

logger = logging.getLogger(__name__)

# The files every run writes, in the order they are listed; companions may add others (``artifact_kind``).
ARTIFACT_KINDS = {
    DEVICES_CSV: ExportArtifact.Kind.DEVICES,
    VMS_CSV: ExportArtifact.Kind.VMS,
    MERGED_CSV: ExportArtifact.Kind.MERGED,
    WORKBOOK: ExportArtifact.Kind.WORKBOOK,
}


def artifact_kind(name: str) -> str:
    """The artifact kind of a run's file: one of the four every run writes, or one a companion declared."""
    return ARTIFACT_KINDS.get(name) or companions.artifact_kinds()[name]


@dataclass(frozen=True)
class FilesPlan:
    """What shapes a run's files beyond the rows: the settings, and each companion's plan (its settings read from the
    settings and the database before the export forks its writing child, which must not use the database)."""

    workbook_columns: tuple[str, ...]
    excel_safe: bool
    companions: tuple[tuple[Companion, CompanionPlan], ...] = field(default=())
    column_set: columns.ColumnSet = columns.DEFAULT_SET

    @property
    def digest(self) -> str:
        """The same for two runs whose files, from the same rows, are the same: the previous run's files are reused
        only when nothing changed in NetBox and this matches. Each companion contributes its own digest (the
        data-quality report: its rules, their settings, the day when a rule compares dates with it)."""
        shape = {
            "workbook_columns": self.workbook_columns,
            "excel_safe": self.excel_safe,
            "companions": {companion.name: plan.digest for companion, plan in self.companions},
        }
        if self.column_set.digest:  # the default set leaves the digest as it always was
            shape["columns"] = self.column_set.digest
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def files_plan() -> FilesPlan:
    column_set = column_set_for_run()
    order = settings.EXPORT_WORKBOOK_COLUMNS
    if len(order) == 1 and order[0].lower().endswith(".xlsx"):
        order = read_workbook_order(Path(order[0]))
    planned = []
    for companion in companions.companions():
        plan = companion.prepare()
        if plan is not None:
            planned.append((companion, plan))
    return FilesPlan(
        workbook_columns=column_set.workbook_order(order or None),
        excel_safe=settings.EXPORT_CSV_EXCEL_SAFE,
        companions=tuple(planned),
        column_set=column_set,
    )


@dataclass
class Writing:
    """A run's files in the making: ``files()`` waits for them all; ``companions`` is what each companion did."""

    files: Callable[[], dict[str, FileInfo]]
    companions: dict[str, CompanionWrite]


@contextlib.contextmanager
def files_writing(fetched: Fetched, folder: Path, recorder: RunRecorder, plan: FilesPlan) -> Iterator[Writing]:
    """Write the files; yields a ``Writing`` whose ``files()`` waits for them all.

    Once the rows are built, a forked child writes the merged CSV and the workbook (the larger half of the work)
    while this process runs the companions (the data-quality report), writes the devices and VMs CSVs and then runs
    the caller's block (encoding and saving the snapshots): both CPU cores instead of one. The companions' messages
    reach the child through a mailbox before it starts the workbook, to which they may add sheets. Leaving the
    block with an error stops the child.
    """
    assert fetched.devices is not None and fetched.vms is not None
    folder.mkdir(parents=True, exist_ok=True)
    column_set = plan.column_set
    device_rows = transform.device_rows(fetched.devices, fetched.lookups, column_set)
    vm_rows = transform.vm_rows(fetched.vms, fetched.lookups, column_set)
    excel_safe, workbook_columns = plan.excel_safe, plan.workbook_columns
    device_columns, vm_columns, merged_columns = (
        column_set.device_columns,
        column_set.vm_columns,
        column_set.merged_columns,
    )
    with_sheets = [
        (companion, companion_plan) for companion, companion_plan in plan.companions if companion_plan.sheets
    ]
    mailbox = Mailbox() if with_sheets else None

    def merged_files() -> dict[str, FileInfo]:
        merged = transform.merged_rows(device_rows, vm_rows, column_set)  # built where it is used: in the child
        files = {MERGED_CSV: write_csv(folder / MERGED_CSV, merged_columns, merged, excel_safe=excel_safe)}
        workbook_rows = transform.reorder(merged, merged_columns, workbook_columns)
        sheets = []
        if mailbox is not None:  # the companions' messages are ready by now, or nearly
            messages = mailbox.receive()
            assert isinstance(messages, dict)
            for companion, companion_plan in with_sheets:
                assert companion_plan.sheets is not None
                sheets += companion_plan.sheets(messages.get(companion.name), folder)
        book = write_workbook(
            folder / WORKBOOK,
            workbook_columns,
            workbook_rows,
            extra_sheets=sheets,
            numeric_columns=column_set.numeric_columns(),
            text_columns=column_set.text_columns(),
            date_columns=column_set.date_columns(),
            datetime_columns=column_set.datetime_columns(),
        )
        return {**files, WORKBOOK: book}

    with mailbox or contextlib.nullcontext(), forked(merged_files, enabled=settings.EXPORT_PARALLEL_WRITE) as result:
        files: dict[str, FileInfo] = {}
        rows = {
            "device": KindRows("device", device_columns, lambda: iter((device_rows,)), folder / DEVICES_CSV),
            "vm": KindRows("vm", vm_columns, lambda: iter((vm_rows,)), folder / VMS_CSV),
        }
        done = {companion.name: _companion_write(companion, companion_plan, rows, folder)
                for companion, companion_plan in plan.companions}  # fmt: skip
        if mailbox is not None:
            mailbox.send({name: outcome.message for name, outcome in done.items()})
        for outcome in done.values():
            files.update(outcome.files)
        files[DEVICES_CSV] = write_csv(folder / DEVICES_CSV, device_columns, device_rows, excel_safe=excel_safe)
        files[VMS_CSV] = write_csv(folder / VMS_CSV, vm_columns, vm_rows, excel_safe=excel_safe)
        total = len(device_rows) + len(vm_rows)
        files_total = len(ARTIFACT_KINDS) + sum(len(companion_plan.artifacts) for _, companion_plan in plan.companions)
        recorder.progress(rows_written=total, rows_total=total, files_written=len(files), files_total=files_total)
        order = [*ARTIFACT_KINDS, *(name for _, companion_plan in plan.companions for name in companion_plan.artifacts)]

        def written() -> dict[str, FileInfo]:
            try:
                files.update(result())
            except ChildProcessFailed as exc:
                raise ExportError(f"The process writing the merged CSV and the workbook {exc}.") from None
            written_files = {name: files[name] for name in order if name in files}
            # A companion that failed writes one file less than planned: the run is complete all the same.
            recorder.progress(files_written=len(written_files), files_total=len(written_files))
            return written_files

        yield Writing(files=written, companions=done)


def _companion_write(companion: Companion, plan: CompanionPlan, rows: dict[str, KindRows], folder: Path) -> Any:
    """A companion's write; one that breaks its contract and raises costs its own part, never the export."""
    started = time.perf_counter()
    try:
        return plan.write(rows, folder)
    except Exception:
        logger.exception("companion %s failed while the run wrote its files", companion.name)
        return CompanionWrite(seconds=time.perf_counter() - started)


def files_reuse(previous: ExportRun, folder: Path) -> dict[str, FileInfo]:
    """Link (or copy) the previous run's files into this run's folder: same content, no rewrite."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for artifact in previous.artifacts.all():
        source = Path(settings.DATA_DIR) / artifact.path
        target = folder / artifact.name
        temp = folder / f".{artifact.name}.tmp"
        if not source.is_file():
            raise ExportError(f"The previous run's file {artifact.name} is missing; run the export with --force.")
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
            os.chmod(temp, FILE_MODE)
        os.replace(temp, target)
        files[artifact.name] = FileInfo(path=target, size=artifact.size, sha256=artifact.sha256, rows=artifact.rows)
    if not set(ARTIFACT_KINDS) <= set(files):
        raise ExportError("The previous run's files are incomplete; run the export with --force.")
    return files


def export_files_prune() -> int:
    """Delete the files of successful runs beyond the newest ``EXPORT_KEEP_RUNS``; returns how many runs lost theirs.

    Never those of a run that finished less than ``EXPORT_KEEP_HOURS`` ago: people may be downloading them, or be
    about to from a page they opened, however many runs started since.
    """
    keep = settings.EXPORT_KEEP_RUNS
    young = timezone.now() - timedelta(hours=settings.EXPORT_KEEP_HOURS)
    with_files = ExportRun.objects.filter(status=ExportRun.Status.SUCCEEDED, artifacts__isnull=False).distinct()
    kept = list(with_files.order_by("-finished", "-id").values_list("pk", flat=True)[:keep])
    old_runs = list(with_files.exclude(pk__in=kept).filter(finished__lt=young).order_by("-finished", "-id"))
    for run in old_runs:
        shutil.rmtree(Path(settings.DATA_DIR) / "runs" / f"{run.pk:06d}", ignore_errors=True)
        run.artifacts.all().delete()
    return len(old_runs)
