"""After an export: publish its files to Confluence and copy them to the backup target.

Doors: the export pipeline (``export_run_publish`` right after a run succeeds, when ``run.publish``), the
``confluence_publish`` and ``backup_exports`` commands, the API's ``POST /api/exports/runs/{id}/publish/`` and the
admin's "Publish again" / "Back up now" actions. Each attempt is an ``ExportPublication`` row; a failed
publication never changes the export run's own status.

Confluence parts:
- ``cmdb``: ``Systems CMDB.xlsx`` attached to ``CONFLUENCE_CMDB_PAGE_ID`` (a new attachment version, history kept).
- ``devices`` / ``vms``: the page body replaced by a table of every row, and the CSV attached to the page. The page
  is left alone when its table already holds the same content (hash of the table, not of the sync note).
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

from exports import selectors
from exports.models import ExportArtifact, ExportPublication, ExportRun
from exports.services import DEVICES_CSV, VMS_CSV, WORKBOOK
from integrations.backup.client import BackupFile, BackupTarget, LocalBackupTarget, SftpBackupTarget, folder_name
from integrations.caching import cache_event
from integrations.confluence.client import ConfluenceClient
from integrations.confluence.factory import confluence_client, confluence_configured
from integrations.exceptions import IntegrationError

logger = logging.getLogger(__name__)

PARTS = ("cmdb", "devices", "vms")
TARGETS = ("confluence", "backup")
DEVICE_TABLE = ("Name", "Status", "Role", "IP Address", "OOB IP")
VM_TABLE = ("Name", "Status", "Device", "Cluster", "IP Address")
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# XML 1.0 forbids these characters outright; escaping cannot save them, so they are dropped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_TABLE = re.compile(r"<table\b.*?</table>", re.DOTALL)


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
    table_sha256: str = ""


# --- Storage format ------------------------------------------------------------------------------------------------


def xml_text(value: object) -> str:
    """``value`` as text safe inside storage-format XML: escaped, invalid characters dropped."""
    text = _XML_INVALID.sub("", "" if value is None else str(value))
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


def table_digest(body: str) -> str:
    """sha256 of the first table in a storage-format body ("" when there is none)."""
    match = _TABLE.search(body or "")
    return hashlib.sha256(match.group(0).encode()).hexdigest() if match else ""


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


def _attach(client: ConfluenceClient, page_id: str, artifact: ExportArtifact, comment: str) -> dict[str, Any]:
    path = selectors.artifact_path(artifact)
    attachment = client.attachment_upload(
        page_id,
        name=artifact.name,
        content=path.read_bytes(),
        content_type=CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        comment=comment,
    )
    return {"name": artifact.name, "id": attachment.id, "version": attachment.version, "sha256": artifact.sha256}


def _publish_table(client: ConfluenceClient, run: ExportRun, part: str, page_id: str, *, dry_run: bool) -> PartResult:
    name, columns, heading = (
        (DEVICES_CSV, DEVICE_TABLE, "Devices") if part == "devices" else (VMS_CSV, VM_TABLE, "Virtual machines")
    )
    artifact = _artifact(run, name)
    table = table_storage(columns, _csv_rows(artifact))
    digest = hashlib.sha256(table.encode()).hexdigest()
    result = PartResult(part=part, page_id=page_id, action="updated", table_sha256=digest)
    page = client.page_get(page_id)
    changed = table_digest(page.body) != digest
    if dry_run:
        result.action = "would update" if changed else "unchanged"
        result.detail = f"page {page.title!r} v{page.version}; {artifact.rows} rows; would attach {artifact.name}"
        return result
    comment = f"Uploaded by {_run_label(run)}"
    if changed:
        body = page_storage(
            heading=heading,
            table=table,
            synced=f"{(run.finished or timezone.now()).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
            table_filter=settings.CONFLUENCE_ENABLE_TABLE_FILTER,
            table_sort=settings.CONFLUENCE_ENABLE_TABLE_SORT,
        )
        updated = client.page_update(page_id, title=page.title, body=body, version_comment=comment)
        result.detail = f"page {page.title!r} v{updated.version}, {artifact.rows} rows"
    else:
        result.action = "unchanged"
        result.detail = f"page {page.title!r} v{page.version} already shows these {artifact.rows} rows"
    if changed or _last_attached_sha(part, artifact.name) != artifact.sha256:
        result.attachments.append(_attach(client, page_id, artifact, comment))
    return result


def _last_attached_sha(part: str, name: str) -> str:
    """sha256 of ``name`` as last attached by a successful publication (to avoid identical new versions)."""
    last = ExportPublication.objects.filter(
        target=ExportPublication.Target.CONFLUENCE, status=ExportPublication.Status.SUCCEEDED
    ).first()
    for item in last.outcome.get("parts", []) if last else []:
        if item.get("part") == part:
            for attachment in item.get("attachments", []):
                if attachment.get("name") == name:
                    return str(attachment.get("sha256", ""))
    return ""


def _publish_cmdb(client: ConfluenceClient, run: ExportRun, page_id: str, *, dry_run: bool) -> PartResult:
    artifact = _artifact(run, WORKBOOK)
    result = PartResult(part="cmdb", page_id=page_id, action="updated")
    if dry_run:
        page = client.page_get(page_id)
        result.action = "would update"
        result.detail = f"would attach {artifact.name} ({artifact.size} bytes) to page {page.title!r}"
        return result
    result.attachments.append(_attach(client, page_id, artifact, f"Uploaded by {_run_label(run)}"))
    result.detail = f"{artifact.name} v{result.attachments[0]['version']}"
    return result


def confluence_publish(
    *, run: ExportRun, parts: Sequence[str] = PARTS, dry_run: bool = False
) -> tuple[ExportPublication | None, list[PartResult]]:
    """Publish a successful run's files to the configured Confluence pages.

    Returns the recorded publication (None for a dry run) and one result per part. Parts whose page id is not
    configured are skipped; a part that fails does not stop the others. Never raises for a Confluence failure:
    the publication is recorded as failed with the reason. Raises ``PublishError`` for a run that did not
    succeed or an unknown part.
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
    try:
        client = confluence_client()
        for part in [p for p in PARTS if p in parts]:
            page_id = str(page_ids[part] or "")
            if not page_id:
                results.append(PartResult(part, "", "skipped", f"CONFLUENCE_{part.upper()}_PAGE_ID is not set"))
                continue
            try:
                if part == "cmdb":
                    results.append(_publish_cmdb(client, run, page_id, dry_run=dry_run))
                else:
                    results.append(_publish_table(client, run, part, page_id, dry_run=dry_run))
            except (IntegrationError, PublishError, OSError, ValueError) as exc:
                logger.warning("publishing %s of export %s failed: %s", part, run.pk, exc)
                results.append(PartResult(part, page_id, "failed", str(exc)))
    except IntegrationError as exc:
        results.append(PartResult("all", "", "failed", str(exc)))
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
            detail="; ".join(f"{r.part}: {r.action}" + (f" ({r.detail})" if r.detail else "") for r in results),
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


def export_backup(*, run: ExportRun) -> ExportPublication:
    """Copy a successful run's files to the backup target, verify each copy, keep the newest N backups.

    Never raises for a backup failure: the attempt is recorded as failed with the reason. Raises
    ``PublishError`` for a run that did not succeed.
    """
    if run.status != ExportRun.Status.SUCCEEDED:
        raise PublishError(f"Export #{run.pk} did not succeed ({run.status}); there is nothing to back up.")
    publication = ExportPublication.objects.create(run=run, target=ExportPublication.Target.BACKUP)
    if not backup_configured():
        _finish(publication, status=ExportPublication.Status.SKIPPED, detail="No backup target configured.")
        return publication
    target: BackupTarget | None = None
    try:
        files = []
        for artifact in run.artifacts.all():
            path = selectors.artifact_path(artifact)
            if not path.is_file():
                raise PublishError(f"{artifact.name} of export #{run.pk} is no longer on disk (pruned).")
            files.append(BackupFile(path=path, name=artifact.name, size=artifact.size, sha256=artifact.sha256))
        if not files:
            raise PublishError(f"Export #{run.pk} has no files.")
        stamp = (run.finished or timezone.now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = folder_name(stamp=stamp, run_id=run.pk) if settings.BACKUP_TIMESTAMPED else ""
        target = _backup_target()
        copied = target.put(folder, files)
        removed = target.prune(settings.BACKUP_RETENTION) if settings.BACKUP_TIMESTAMPED else []
        _finish(
            publication,
            status=ExportPublication.Status.SUCCEEDED,
            detail=f"{len(copied)} files verified in {target.description}"
            + (f"/{folder}" if folder else "")
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

    Called by the export pipeline when ``run.publish`` is set (``netbox_update --no-publish`` clears it).
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


def export_run_publish_again(*, run: ExportRun, targets: Sequence[str] = TARGETS) -> list[ExportPublication]:
    """Publish and/or back up a successful run again on request (API, admin): one publication per target.

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
            publication, _ = confluence_publish(run=run)
            assert publication is not None  # not a dry run
        else:
            publication = ExportPublication.objects.create(run=run, target=ExportPublication.Target.CONFLUENCE)
            _finish(publication, status=ExportPublication.Status.SKIPPED, detail="Confluence is not configured.")
        publications.append(publication)
    if ExportPublication.Target.BACKUP in targets:
        publications.append(export_backup(run=run))
    return publications


def _finish(publication: ExportPublication, *, status: str, detail: str, outcome: dict[str, Any] | None = None) -> None:
    publication.status = status
    publication.detail = detail
    publication.outcome = outcome or {}
    publication.finished = timezone.now()
    publication.save()
