"""The data-quality report of a run: the findings CSV and the workbook's "Data quality" sheet, and the report as a
companion of the export (``exports.companions``): evaluated in the export process while the forked child writes the
workbook, whose "Data quality" sheet the child reads back from the findings CSV.

No Django here but the settings' values handed in by ``quality.services``: the writing child may not use the
database.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import Any

from exports.atomic import FileInfo
from exports.cells import EXCEL_MAX_ROWS
from exports.companions import CompanionWrite, RunRows
from exports.csvfiles import write_csv
from exports.workbook import ExtraSheet
from quality.kept import kept_file_write
from quality.rules import (
    FINDING_COLUMNS,
    KIND_DEVICE,
    KIND_VM,
    FindingSpools,
    QualityConfig,
    QualitySummary,
    RowSet,
    RuleResult,
    describe,
    quality_evaluate,
)

QUALITY_CSV = "data_quality.csv"
QUALITY_SHEET = "Data quality"
SUMMARY_HEADER: tuple[str, ...] = ("Rule", "Label", "Severity", "Objects", "Error")


def quality_file_write(
    row_sets: Sequence[RowSet], config: QualityConfig, path: Path, *, kept: bool = False, previous: Path | None = None
) -> tuple[FileInfo | None, QualitySummary]:
    """Evaluate the rules and write the findings CSV at ``path``: the findings wait in anonymous files beside it,
    a file per rule, until every row has passed, then go to the CSV rule by rule. With ``kept``, the results are
    kept row by row beside ``path`` for the next run (``quality.kept``), and ``previous`` (the previous run's
    folder, with the row sets' ``picks``) lets an incremental run check only its new rows: the same file.

    Never raises (a report must not fail the export): a failure is the summary's ``error``, with no file."""
    started = time.perf_counter()
    try:
        if kept:
            info, report = kept_file_write(row_sets, config, path, previous=previous)
        else:
            with FindingSpools(path.parent) as spools:
                report = quality_evaluate(row_sets, config, findings=spools, folder=path.parent)
                info = write_csv(path, FINDING_COLUMNS, spools)
    except Exception as exc:
        enabled = [rule for rule, setting in config.rules if setting.enabled]
        error = f"The data-quality report failed: {describe(exc)}"
        results = [RuleResult(r.id, r.label, r.severity, r.columns, 0, error) for r in enabled]
        return None, QualitySummary(results, 0, time.perf_counter() - started, error)
    report.seconds = time.perf_counter() - started
    return info, report.summary


def quality_sheet(summary: QualitySummary, findings_csv: Path, *, max_rows: int = EXCEL_MAX_ROWS) -> ExtraSheet:
    """The workbook's "Data quality" sheet: one row per rule, an empty row, then every finding, read back from the
    findings CSV as the sheet is written: the sheet holds what the artifact holds, the findings need not travel
    between processes, and they are never all in memory. Findings beyond what a sheet holds (``max_rows``) are left
    to the CSV, and a last row says how many."""
    head: list[tuple[Any, ...]] = [SUMMARY_HEADER]
    head += [(r.rule, r.label, r.severity, r.count, r.error) for r in summary.results]
    head += [(), FINDING_COLUMNS]
    room = max_rows - len(head)
    shown = summary.findings if summary.findings <= room else room - 1
    tail = (
        [] if shown == summary.findings else [(f"{summary.findings - shown:,} more findings in {findings_csv.name}",)]
    )

    def findings() -> Iterator[tuple[Any, ...]]:
        with findings_csv.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for finding in islice(reader, shown):
                netbox_id = finding[_ID_AT]
                if netbox_id.isascii() and netbox_id.isdigit():  # ids are numbers, as in the CMDB sheet
                    finding[_ID_AT] = int(netbox_id)  # type: ignore[call-overload]
                yield tuple(finding)

    rows = chain(head, findings(), tail)
    return ExtraSheet(QUALITY_SHEET, rows, shape=(len(head) + shown + len(tail), len(FINDING_COLUMNS)))


_ID_AT = FINDING_COLUMNS.index("id")


# --- the export's companion -------------------------------------------------------------------------------------


def report_write(
    config: QualityConfig, rows: RunRows, folder: Path, *, renames: Mapping[str, str] | None = None
) -> CompanionWrite:
    """The companion's write: evaluate the rules over the run's devices and VMs (batch by batch) and write
    ``data_quality.csv``, keeping the results row by row for the next run (``quality.kept``: an incremental run's
    report checks only the rows made anew); the summary goes to the writing child and is recorded with the run.
    Never raises.
    ``renames``: header -> contract name of renamed contract columns, which the rules read by contract name."""
    renames = renames or {}
    kinds = [rows[kind] for kind in (KIND_DEVICE, KIND_VM) if kind in rows]
    row_sets = [
        RowSet(
            (),
            tuple(renames.get(c, c) for c in each.columns),
            each.kind,
            batches=each.batches,
            picks=each.picks,
            spool=each.spool,
        )
        for each in kinds
    ]
    previous = {each.previous for each in kinds}
    info, summary = quality_file_write(
        row_sets, config, folder / QUALITY_CSV, kept=True, previous=previous.pop() if len(previous) == 1 else None
    )
    return CompanionWrite(
        files={QUALITY_CSV: info} if info is not None else {}, message=summary, result=summary, seconds=summary.seconds
    )


def report_sheets(summary: Any, folder: Path) -> list[ExtraSheet]:
    """The companion's sheets, in the writing child: the "Data quality" sheet, unless the report failed."""
    if not isinstance(summary, QualitySummary) or summary.error:
        return []
    return [quality_sheet(summary, folder / QUALITY_CSV)]
