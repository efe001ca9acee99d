"""After an export: publish its files to Confluence and copy them to the backup target.

Doors: the after-run step ``publishing_after_run`` (registered in ``PublishingConfig.ready``: after a run succeeds,
when ``run.publish``), the
``confluence_publish`` and ``backup_exports`` commands, the API's ``POST /api/exports/runs/{id}/publish/`` and the
admin's "Publish again" / "Back up now" actions. Each attempt is an ``ExportPublication`` row; a failed
publication never changes the export run's own status.

Confluence parts:
- ``cmdb``: ``Systems CMDB.xlsx`` attached to ``CONFLUENCE_CMDB_PAGE_ID`` (a new attachment version, history kept).
- ``devices`` / ``vms``: the page body replaced by a table of every row, and the CSV attached to the page.

Nothing is written that Confluence already holds, so a publish without changes only reads:
- a page is left alone when its whole rendered body (attachments macro, heading, table, filter/sort wrappers;
  everything but the "Last synced" note) is unchanged: its current version's comment carries the sha256 of the
  body we last wrote (``content sha256 …``), or its stored body hashes the same;
- an attachment is uploaded only when the page's attachment of that name does not hold these bytes: the comment
  of its current version carries the sha256 we uploaded (``sha256 …``) and its size matches.
Someone else's edit or upload changes the comment, so the next publish writes again. ``force`` writes anyway.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

from django.conf import settings
from django.utils import timezone

from exports import afterrun, selectors
from exports.columns import DEVICES, VMS, ColumnSet
from exports.constants import DEVICES_CSV, VMS_CSV, WORKBOOK, XML_ILLEGAL_CHARS
from exports.models import ExportArtifact, ExportRun
from integrations.backup.client import (
    BackupFile,
    BackupTarget,
    LocalBackupTarget,
    SftpBackupTarget,
    file_sha256,
    folder_name,
)
from integrations.caching import cache_event
from integrations.confluence.client import ConfluenceAttachment, ConfluenceClient
from integrations.confluence.factory import confluence_client, confluence_configured
from integrations.exceptions import IntegrationError
from publishing.models import ExportPublication

logger = logging.getLogger(__name__)

PARTS = ("cmdb", "devices", "vms")
TARGETS = ("confluence", "backup")
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_SYNC_NOTE = re.compile(r"<p>Last synced from NetBox export on [^<]*</p>")


class PublishError(Exception):
    """Publishing cannot be done as asked (the run did not succeed, unknown part...)."""


@dataclass
class PartResult:
    """What happened (or, in a dry run, would happen) to one Confluence part."""

    part: str
    page_id: str
    action: str  # "updated", "unchanged", "would update", "skipped", "failed"
    detail: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    body_sha256: str = ""

    @property
    def line(self) -> str:
        return f"{self.part}: {self.action}" + (f" ({self.detail})" if self.detail else "")


# --- Storage format ------------------------------------------------------------------------------------------------


def xml_text(value: object) -> str:
    """``value`` as text safe inside storage-format XML: escaped, invalid characters dropped."""
    text = XML_ILLEGAL_CHARS.sub("", "" if value is None else str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def table_storage(columns: Sequence[str], rows: Sequence[dict[str, str]]) -> str:
    """A wide storage-format table: a header row, then one row per record in ``columns`` order."""
    head = "".join(f"<th>{xml_text(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{xml_text(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows)
    return f'<table data-layout="full-width"><tbody><tr>{head}</tr>{body}</tbody></table>'


def _macro(name: str, inner: str) -> str:
    return (
        f'<ac:structured-macro ac:name="{name}" ac:schema-version="1">'
        f"<ac:rich-text-body>{inner}</ac:rich-text-body></ac:structured-macro>"
    )


def page_storage(*, heading: str, table: str, synced: str, table_filter: bool, table_sort: bool) -> str:
    """The page body: attachments macro, heading, sync note, and the table (optionally in filter/sort macros)."""
    wrapped = table
    if table_sort:
        wrapped = _macro("table-sort", wrapped)
    if table_filter:
        wrapped = _macro("table-filter", wrapped)
    return (
        '<ac:structured-macro ac:name="attachments" ac:schema-version="1">'
        '<ac:parameter ac:name="upload">false</ac:parameter></ac:structured-macro>'
        f"<h2>{xml_text(heading)}</h2>"
        f"<p>Last synced from NetBox export on {xml_text(synced)}</p>"
        f"{wrapped}"
    )


def body_digest(body: str) -> str:
    """sha256 of a storage-format page body without its "Last synced" note: what "unchanged" compares."""
    return hashlib.sha256(_SYNC_NOTE.sub("", body or "", count=1).encode()).hexdigest()


# --- Confluence ----------------------------------------------------------------------------------------------------


def _run_label(run: ExportRun) -> str:
    finished = (run.finished or timezone.now()).astimezone(UTC)
    return f"NetBox export #{run.pk} ({finished:%Y-%m-%d %H:%M} UTC)"


def _artifact(run: ExportRun, name: str) -> ExportArtifact:
    artifact = selectors.artifact_get(run_id=run.pk, name=name)
    if artifact is None:
        raise PublishError(f"Export #{run.pk} has no file {name}.")
    if not selectors.artifact_path(artifact).is_file():
        raise PublishError(f"{name} of export #{run.pk} is no longer on disk (pruned).")
    return artifact


def _csv_rows(artifact: ExportArtifact) -> list[dict[str, str]]:
    with selectors.artifact_path(artifact).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _holds(attachment: ConfluenceAttachment | None, artifact: ExportArtifact) -> bool:
    """True when Confluence's current version of the attachment is the artifact's bytes (as we uploaded them)."""
    return (
        attachment is not None
        and f"sha256 {artifact.sha256}" in attachment.comment
        and attachment.size in (-1, artifact.size)
    )


def table_columns(run: ExportRun, part: str) -> tuple[str, ...]:
    """The headers of a page's table (``CONFLUENCE_DEVICE_TABLE_COLUMNS`` / ``..._VM_...``): each entry a column set
    source (``contract:Role``, ``cf:cost_center``, ``field:platform.slug``), shown under its header in the column
    set the run wrote its files with, or a header as it is. A source the run's set does not show is left out."""
    entries = settings.CONFLUENCE_DEVICE_TABLE_COLUMNS if part == "devices" else settings.CONFLUENCE_VM_TABLE_COLUMNS
    dataset = DEVICES if part == "devices" else VMS
    shown = ColumnSet.from_dict(run.columns or {}).visible(dataset)
    header_of = {column.source: column.header for column in shown}
    headers = {column.header for column in shown}
    picked = []
    for entry in entries:
        entry = entry.strip()
        header = (
            header_of.get(entry) if ":" in entry and entry.split(":", 1)[0] in ("contract", "cf", "field") else entry
        )
        if header and header in headers and header not in picked:
            picked.append(header)
    return tuple(picked)


def _attach(
    client: ConfluenceClient,
    page_id: str,
    artifact: ExportArtifact,
    comment: str,
    current: ConfluenceAttachment | None,
) -> dict[str, Any]:
    path = selectors.artifact_path(artifact)
    attachment = client.attachment_upload(
        page_id,
        name=artifact.name,
        content=path.read_bytes(),
        content_type=CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        comment=f"{comment} · sha256 {artifact.sha256}",
        attachment_id=current.id if current is not None else None,
    )
    return {"name": artifact.name, "id": attachment.id, "version": attachment.version, "sha256": artifact.sha256}


def _publish_table(
    client: ConfluenceClient, run: ExportRun, part: str, page_id: str, *, dry_run: bool, force: bool
) -> PartResult:
    name, heading = (DEVICES_CSV, "Devices") if part == "devices" else (VMS_CSV, "Virtual machines")
    columns = table_columns(run, part)
    artifact = _artifact(run, name)
    body = page_storage(
        heading=heading,
        table=table_storage(columns, _csv_rows(artifact)),
        synced=f"{(run.finished or timezone.now()).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
        table_filter=settings.CONFLUENCE_ENABLE_TABLE_FILTER,
        table_sort=settings.CONFLUENCE_ENABLE_TABLE_SORT,
    )
    digest = body_digest(body)
    result = PartResult(part=part, page_id=page_id, action="updated", body_sha256=digest)
    page = client.page_get(page_id)
    page_same = not force and (f"sha256 {digest}" in page.version_message or body_digest(page.body) == digest)
    current = client.attachment_find(page_id, artifact.name)
    file_same = not force and _holds(current, artifact)
    if dry_run:
        result.action = "unchanged" if page_same and file_same else "would update"
        result.detail = (
            f"page {page.title!r} v{page.version} {'unchanged' if page_same else 'would get v' + str(page.version + 1)}"
            f", {artifact.rows} rows; {artifact.name} {'unchanged' if file_same else 'would be uploaded'}"
        )
        return result
    comment = f"Uploaded by {_run_label(run)}"
    if page_same:
        result.action = "unchanged"
        notes = [f"page {page.title!r} v{page.version} already shows these {artifact.rows} rows"]
    else:
        updated = client.page_update(
            page_id, title=page.title, body=body, version_comment=f"{comment} · content sha256 {digest}"
        )
        notes = [f"page {page.title!r} v{updated.version}, {artifact.rows} rows"]
    if file_same:
        assert current is not None
        notes.append(f"{artifact.name} v{current.version} unchanged")
    else:
        result.attachments.append(_attach(client, page_id, artifact, comment, current))
        notes.append(f"{artifact.name} v{result.attachments[0]['version']} uploaded")
    result.detail = "; ".join(notes)
    return result


def _publish_cmdb(client: ConfluenceClient, run: ExportRun, page_id: str, *, dry_run: bool, force: bool) -> PartResult:
    artifact = _artifact(run, WORKBOOK)
    result = PartResult(part="cmdb", page_id=page_id, action="updated")
    current = client.attachment_find(page_id, artifact.name)
    if not force and _holds(current, artifact):
        assert current is not None
        result.action = "unchanged"
        result.detail = f"{artifact.name} v{current.version} already holds these {artifact.size} bytes"
    elif dry_run:
        result.action = "would update"
        result.detail = f"would upload {artifact.name} ({artifact.size} bytes) to page {page_id}"
    else:
        result.attachments.append(_attach(client, page_id, artifact, f"Uploaded by {_run_label(run)}", current))
        result.detail = f"{artifact.name} v{result.attachments[0]['version']} uploaded"
    return result


def confluence_publish(
    *, run: ExportRun, parts: Sequence[str] = PARTS, dry_run: bool = False, force: bool = False
) -> tuple[ExportPublication | None, list[PartResult]]:
    """Publish a successful run's files to the configured Confluence pages.

    Returns the recorded publication (None for a dry run) and one result per part. Parts whose page id is not
    configured are skipped; a part that fails does not stop the others, and when Confluence cannot be reached
    at all every part fails with that reason. Only what changed is written; ``force`` writes a new page version
    and new attachment versions anyway. Never raises for a Confluence failure: the publication is recorded as
    failed with Confluence's reason. Raises ``PublishError`` for a run that did not succeed or an unknown part.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise PublishError(f"Unknown part(s): {', '.join(unknown)}. Choose from {', '.join(PARTS)}.")
    if run.status != ExportRun.Status.SUCCEEDED:
        raise PublishError(f"Export #{run.pk} did not succeed ({run.status}); there is nothing to publish.")
    page_ids = {
        "cmdb": settings.CONFLUENCE_CMDB_PAGE_ID,
        "devices": settings.CONFLUENCE_DEVICES_PAGE_ID,
        "vms": settings.CONFLUENCE_VMS_PAGE_ID,
    }
    publication = None
    if not dry_run:
        publication = ExportPublication.objects.create(run=run, target=ExportPublication.Target.CONFLUENCE)
    results: list[PartResult] = []
    client: ConfluenceClient | None = None
    unreachable = ""
    try:
        client = confluence_client()
    except IntegrationError as exc:
        unreachable = str(exc)
    try:
        for part in [p for p in PARTS if p in parts]:
            page_id = str(page_ids[part] or "")
            if not page_id:
                results.append(PartResult(part, "", "skipped", f"CONFLUENCE_{part.upper()}_PAGE_ID is not set"))
                continue
            if client is None:
                results.append(PartResult(part, page_id, "failed", unreachable))
                continue
            try:
                if part == "cmdb":
                    results.append(_publish_cmdb(client, run, page_id, dry_run=dry_run, force=force))
                else:
                    results.append(_publish_table(client, run, part, page_id, dry_run=dry_run, force=force))
            except (IntegrationError, PublishError, OSError, ValueError) as exc:
                logger.warning("publishing %s of export %s failed: %s", part, run.pk, exc)
                results.append(PartResult(part, page_id, "failed", str(exc)))
    finally:
        if client is not None:
            client.flush_metrics()
            client.close()
    if any(r.attachments or r.action == "updated" for r in results) and not dry_run:
        cache_event("confluence_written")
    if publication is not None:
        failed = [r for r in results if r.action == "failed"]
        _finish(
            publication,
            status=ExportPublication.Status.FAILED if failed else ExportPublication.Status.SUCCEEDED,
            detail="\n".join(r.line for r in results),
            outcome={"parts": [asdict(r) for r in results]},
        )
    return publication, results


# --- Backups -------------------------------------------------------------------------------------------------------


def backup_configured() -> bool:
    return bool(settings.BACKUP_HOST or settings.BACKUP_LOCAL_PATH)


def _backup_target() -> BackupTarget:
    if settings.BACKUP_HOST:
        return SftpBackupTarget(
            host=settings.BACKUP_HOST,
            port=settings.BACKUP_PORT,
            user=settings.BACKUP_USER,
            password=settings.BACKUP_PASSWORD,
            private_key=settings.BACKUP_PRIVATE_KEY,
            known_hosts=settings.BACKUP_KNOWN_HOSTS,
            remote_path=settings.BACKUP_REMOTE_PATH,
            timeout=settings.BACKUP_TIMEOUT,
        )
    return LocalBackupTarget(settings.BACKUP_LOCAL_PATH)


def export_backup(*, run: ExportRun, dry_run: bool = False) -> ExportPublication:
    """Copy a successful run's files to the backup target, verify each copy, keep the newest N backups.

    Each copy is read back and its sha256 compared with the one the export recorded; when any differs nothing of
    this backup is kept and old backups are not pruned. A dry run checks the files on disk (sha256 too), connects
    to the target and reports what retention would remove, writing nothing; its publication is not saved. Never
    raises for a backup failure: the attempt is recorded as failed with one line per failed file. Raises
    ``PublishError`` for a run that did not succeed.
    """
    if run.status != ExportRun.Status.SUCCEEDED:
        raise PublishError(f"Export #{run.pk} did not succeed ({run.status}); there is nothing to back up.")
    publication = ExportPublication(run=run, target=ExportPublication.Target.BACKUP)
    if not dry_run:
        publication.save()
    if not backup_configured():
        _finish(publication, status=ExportPublication.Status.SKIPPED, detail="No backup target configured.")
        return publication
    target: BackupTarget | None = None
    try:
        files, problems = [], []
        for artifact in run.artifacts.all():
            path = selectors.artifact_path(artifact)
            if not path.is_file():
                problems.append(f"{artifact.name} of export #{run.pk} is no longer on disk (pruned).")
            elif dry_run and file_sha256(path) != artifact.sha256:
                problems.append(f"{artifact.name} of export #{run.pk} changed on disk since the export (sha256).")
            files.append(BackupFile(path=path, name=artifact.name, size=artifact.size, sha256=artifact.sha256))
        if not files:
            problems.append(f"Export #{run.pk} has no files.")
        if problems:
            raise PublishError("\n".join(problems))
        stamp = (run.finished or timezone.now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = folder_name(stamp=stamp, run_id=run.pk) if settings.BACKUP_TIMESTAMPED else ""
        target = _backup_target()
        where = target.description + (f"/{folder}" if folder else "")
        if dry_run:
            state = target.check()
            removed = (
                target.prune(settings.BACKUP_RETENTION, dry_run=True, adding=folder)
                if settings.BACKUP_TIMESTAMPED
                else []
            )
            _finish(
                publication,
                status=ExportPublication.Status.SUCCEEDED,
                detail=f"would copy {len(files)} files to {where} ({state})"
                + (f"; would remove {len(removed)} old backups: {', '.join(removed)}" if removed else ""),
                outcome={"folder": folder, "files": [f.name for f in files], "removed": removed},
            )
            return publication
        copied = target.put(folder, files)
        removed = target.prune(settings.BACKUP_RETENTION) if settings.BACKUP_TIMESTAMPED else []
        _finish(
            publication,
            status=ExportPublication.Status.SUCCEEDED,
            detail=f"{len(copied)} files verified by sha256 in {where}"
            + (f"; removed {len(removed)} old backups" if removed else ""),
            outcome={"folder": folder, "files": [asdict(c) for c in copied], "removed": removed},
        )
    except (IntegrationError, PublishError, OSError) as exc:
        logger.warning("backup of export %s failed: %s", run.pk, exc)
        _finish(publication, status=ExportPublication.Status.FAILED, detail=str(exc))
    finally:
        if target is not None:
            target.close()
    return publication


# --- After an export -----------------------------------------------------------------------------------------------


def export_run_publish(*, run: ExportRun) -> list[ExportPublication]:
    """Publish and back up a run that just succeeded, for the targets that are configured. Never raises.

    Called by the after-run step when ``run.publish`` is set (``netbox_update --no-publish`` clears it).
    """
    publications: list[ExportPublication] = []
    if run.status != ExportRun.Status.SUCCEEDED:
        return publications
    steps = [
        ("confluence", confluence_configured, lambda: confluence_publish(run=run)[0]),
        ("backup", backup_configured, lambda: export_backup(run=run)),
    ]
    for target, configured, step in steps:
        try:
            if not configured():
                continue
            publication = step()
        except Exception:  # publishing must never turn a good export into a crash of the pipeline
            logger.exception("%s publication of export %s crashed", target, run.pk)
            publication = ExportPublication.objects.create(run=run, target=target)
            _finish(publication, status=ExportPublication.Status.FAILED, detail="Crashed; see the server log.")
        if publication is not None:
            publications.append(publication)
    return publications


class PublicationFailed(Exception):
    """A publication after a run failed (it is recorded); the after-run step fails with its reason."""


def publishing_after_run(run: ExportRun) -> str | None:
    """The after-run step (``exports.afterrun``): publish and back up a run that succeeded, unless it was asked not
    to (``netbox_update --no-publish``). Its note says what each target did; it fails when a target failed."""
    if not run.publish:
        raise afterrun.Skip("the run was asked not to publish")
    publications = export_run_publish(run=run)
    if not publications:
        raise afterrun.Skip("no Confluence or backup target is configured")
    failed = [p for p in publications if p.status == ExportPublication.Status.FAILED]
    lines = [f"{p.get_target_display()} {p.status}: {'; '.join(p.detail.splitlines())}"[:300] for p in publications]
    if failed:
        raise PublicationFailed(" · ".join(lines))
    return " · ".join(lines)


def export_run_publish_again(
    *, run: ExportRun, targets: Sequence[str] = TARGETS, force: bool = False
) -> list[ExportPublication]:
    """Publish and/or back up a successful run again on request (API, admin): one publication per target.

    ``force`` writes new Confluence page and attachment versions even where nothing changed.

    A target that is not configured is recorded as skipped. Raises ``PublishError`` when the run did not succeed
    or a target is unknown; Confluence and backup failures are recorded, never raised.
    """
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise PublishError(f"Unknown target(s): {', '.join(unknown)}. Choose from {', '.join(TARGETS)}.")
    if run.status != ExportRun.Status.SUCCEEDED:
        raise PublishError(f"Export #{run.pk} did not succeed ({run.status}); there is nothing to publish.")
    publications = []
    if ExportPublication.Target.CONFLUENCE in targets:
        if confluence_configured():
            publication, _ = confluence_publish(run=run, force=force)
            assert publication is not None  # not a dry run
        else:
            publication = ExportPublication.objects.create(run=run, target=ExportPublication.Target.CONFLUENCE)
            _finish(publication, status=ExportPublication.Status.SKIPPED, detail="Confluence is not configured.")
        publications.append(publication)
    if ExportPublication.Target.BACKUP in targets:
        publications.append(export_backup(run=run))
    return publications


def _finish(publication: ExportPublication, *, status: str, detail: str, outcome: dict[str, Any] | None = None) -> None:
    """Record the end of an attempt (a dry run's unsaved publication stays unsaved)."""
    publication.status = status
    publication.detail = detail
    publication.outcome = outcome or {}
    publication.finished = timezone.now()
    if publication.pk is not None:
        publication.save()
