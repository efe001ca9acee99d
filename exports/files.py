"""The files of a run: writing them (the merged CSV and the workbook in a forked child while this process writes
the devices and VMs CSVs), reusing the previous run's files when nothing changed, and pruning old runs' folders."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from enreach.forked import ChildProcessFailed, Mailbox, forked
from exports import columns, quality, transform, writers
from exports.constants import DEVICES_CSV, MERGED_CSV, QUALITY_CSV, VMS_CSV, WORKBOOK
from exports.errors import ExportError
from exports.fetch import Fetched
from exports.models import ExportArtifact, ExportRun
from exports.quality_services import quality_config_current
from exports.recorder import RunRecorder

ARTIFACT_KINDS = {
    DEVICES_CSV: ExportArtifact.Kind.DEVICES,
    VMS_CSV: ExportArtifact.Kind.VMS,
    MERGED_CSV: ExportArtifact.Kind.MERGED,
    WORKBOOK: ExportArtifact.Kind.WORKBOOK,
    QUALITY_CSV: ExportArtifact.Kind.QUALITY,
}
OPTIONAL_ARTIFACTS = frozenset((QUALITY_CSV,))  # absent when the data-quality report is off or failed


@dataclass(frozen=True)
class FilesPlan:
    """What shapes a run's files beyond the rows: the settings and the data-quality configuration, read from the
    settings and the database before the export forks its writing child (which must not use the database)."""

    workbook_columns: tuple[str, ...]
    excel_safe: bool
    quality_config: quality.QualityConfig | None
    quality_sheet: bool

    @property
    def digest(self) -> str:
        """The same for two runs whose files, from the same rows, are the same: the previous run's files are reused
        only when nothing changed in NetBox and this matches. The day is in it when a rule compares dates with it."""
        report = None
        if self.quality_config is not None:
            enabled = [(rule, setting) for rule, setting in self.quality_config.rules if setting.enabled]
            report = {
                "rules": [[r.id, r.label, r.severity, s.threshold, list(s.allowed)] for r, s in enabled],
                "today": str(self.quality_config.today) if {r.id for r, _ in enabled} & quality.DATED_RULE_IDS else "",
                "sheet": self.quality_sheet,
            }
        shape = {"workbook_columns": self.workbook_columns, "excel_safe": self.excel_safe, "report": report}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def files_plan() -> FilesPlan:
    order = settings.EXPORT_WORKBOOK_COLUMNS
    if len(order) == 1 and order[0].lower().endswith(".xlsx"):
        order = writers.read_workbook_order(Path(order[0]))
    return FilesPlan(
        workbook_columns=columns.workbook_column_order(order or None),
        excel_safe=settings.EXPORT_CSV_EXCEL_SAFE,
        quality_config=quality_config_current() if settings.EXPORT_QUALITY else None,
        quality_sheet=settings.EXPORT_QUALITY_SHEET,
    )


@contextlib.contextmanager
def files_writing(
    fetched: Fetched, folder: Path, recorder: RunRecorder, plan: FilesPlan
) -> Iterator[Callable[[], dict[str, writers.FileInfo]]]:
    """Write the files; yields a function that waits for them all.

    Once the rows are built, a forked child writes the merged CSV and the workbook (the larger half of the work)
    while this process runs the data-quality report, writes the devices and VMs CSVs and then runs the caller's
    block (encoding and saving the snapshots): both CPU cores instead of one. The report's summary reaches the child
    through a mailbox before it starts the workbook, whose "Data quality" sheet it reads from the findings CSV.
    Leaving the block with an error stops the child.
    """
    assert fetched.devices is not None and fetched.vms is not None
    folder.mkdir(parents=True, exist_ok=True)
    device_rows = transform.device_rows(fetched.devices, fetched.lookups)
    vm_rows = transform.vm_rows(fetched.vms, fetched.lookups)
    excel_safe, workbook_columns, quality_config = plan.excel_safe, plan.workbook_columns, plan.quality_config
    mailbox = Mailbox() if quality_config is not None and plan.quality_sheet else None

    def merged_files() -> dict[str, writers.FileInfo]:
        merged = transform.merged_rows(device_rows, vm_rows)  # built where it is used: in the child
        files = {
            MERGED_CSV: writers.write_csv(folder / MERGED_CSV, columns.MERGED_COLUMNS, merged, excel_safe=excel_safe)
        }
        workbook_rows = transform.reorder(merged, columns.MERGED_COLUMNS, workbook_columns)
        sheets = []
        if mailbox is not None:  # the parent's report is ready by now, or nearly
            summary = mailbox.receive()
            assert isinstance(summary, quality.QualitySummary)
            if not summary.error:
                sheets.append(quality.quality_sheet(summary, folder / QUALITY_CSV))
        workbook = writers.write_workbook(folder / WORKBOOK, workbook_columns, workbook_rows, extra_sheets=sheets)
        return {**files, WORKBOOK: workbook}

    with mailbox or contextlib.nullcontext(), forked(merged_files, enabled=settings.EXPORT_PARALLEL_WRITE) as result:
        files: dict[str, writers.FileInfo] = {}
        if quality_config is not None:
            row_sets = [
                quality.RowSet(device_rows, columns.DEVICE_COLUMNS, quality.KIND_DEVICE),
                quality.RowSet(vm_rows, columns.VM_COLUMNS, quality.KIND_VM),
            ]
            info, fetched.quality = quality.quality_file_write(row_sets, quality_config, folder / QUALITY_CSV)
            if mailbox is not None:
                mailbox.send(fetched.quality)
            if info is not None:
                files[QUALITY_CSV] = info
        files[DEVICES_CSV] = writers.write_csv(
            folder / DEVICES_CSV, columns.DEVICE_COLUMNS, device_rows, excel_safe=excel_safe
        )
        files[VMS_CSV] = writers.write_csv(folder / VMS_CSV, columns.VM_COLUMNS, vm_rows, excel_safe=excel_safe)
        rows = len(device_rows) + len(vm_rows)
        files_total = len(ARTIFACT_KINDS) - (0 if quality_config is not None else len(OPTIONAL_ARTIFACTS))
        recorder.progress(rows_written=rows, rows_total=rows, files_written=len(files), files_total=files_total)

        def written() -> dict[str, writers.FileInfo]:
            try:
                files.update(result())
            except ChildProcessFailed as exc:
                raise ExportError(f"The process writing the merged CSV and the workbook {exc}.") from None
            written_files = {name: files[name] for name in ARTIFACT_KINDS if name in files}
            # A failed data-quality report writes one file less than planned: the run is complete all the same.
            recorder.progress(files_written=len(written_files), files_total=len(written_files))
            return written_files

        yield written


def files_reuse(previous: ExportRun, folder: Path) -> dict[str, writers.FileInfo]:
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
            os.chmod(temp, writers.FILE_MODE)
        os.replace(temp, target)
        files[artifact.name] = writers.FileInfo(
            path=target, size=artifact.size, sha256=artifact.sha256, rows=artifact.rows
        )
    if not set(ARTIFACT_KINDS) - OPTIONAL_ARTIFACTS <= set(files):
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
