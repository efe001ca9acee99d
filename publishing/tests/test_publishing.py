"""Publishing after an export: Confluence pages and attachments, and backups, with real artifacts from a run."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from django.core.management import CommandError, call_command

from devtools.confluence import BAD_REQUEST, FakeConfluence
from devtools.confluence import AttachmentVersion as FakeAttachmentVersion
from devtools.confluence import PageVersion as FakePageVersion
from exports import selectors
from exports.columns import ColumnSet
from exports.constants import DEVICES_CSV, VMS_CSV, WORKBOOK
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request
from integrations.tests.sshd import Sshd, start_sshd
from publishing import services as publishing
from publishing.models import ExportPublication

pytestmark = pytest.mark.django_db


@pytest.fixture
def confluence(settings) -> Iterator[FakeConfluence]:
    """A Confluence on loopback with the three pages, and the app configured to publish to it (Cloud style)."""
    with FakeConfluence() as server:
        server.add_page("11", "Systems CMDB")
        server.add_page("22", "Devices")
        server.add_page("33", "Virtual machines")
        settings.ATLASSIAN_BASE_URL = server.url
        settings.ATLASSIAN_EMAIL = server.email
        settings.ATLASSIAN_API_TOKEN = server.token
        settings.ATLASSIAN_RETRIES = 1
        settings.ATLASSIAN_BACKOFF = 0.01
        settings.CONFLUENCE_CMDB_PAGE_ID = "11"
        settings.CONFLUENCE_DEVICES_PAGE_ID = "22"
        settings.CONFLUENCE_VMS_PAGE_ID = "33"
        yield server


def run_export(*, publish: bool = True) -> ExportRun:
    run, created = export_run_request(trigger=ExportRun.Trigger.COMMAND, publish=publish)
    assert created
    return export_run_execute(run=run)


def table_rows(body: str) -> list[list[str]]:
    """The table cells of a stored page body, parsed as XML (so a broken page fails here)."""
    wrapped = f'<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/ri">{body}</root>'
    root = ElementTree.fromstring(wrapped)
    return [["".join(cell.itertext()) for cell in row] for row in root.iter("tr")]


def csv_rows(run: ExportRun, name: str) -> list[dict[str, str]]:
    path = selectors.artifact_path(selectors.artifact_get(run_id=run.pk, name=name))
    return list(csv.DictReader(path.open(newline="", encoding="utf-8-sig")))


def test_successful_export_publishes_tables_and_attachments(netbox, confluence) -> None:
    run = run_export()

    assert run.status == ExportRun.Status.SUCCEEDED
    publication = run.publications.get(target="confluence")
    assert publication.status == ExportPublication.Status.SUCCEEDED, publication.detail
    devices_page = confluence.pages["22"].current
    assert devices_page.number == 2 and devices_page.minor_edit
    assert f"#{run.pk}" in devices_page.message
    rows = table_rows(devices_page.body)
    assert rows[0] == ["Name", "Status", "Role", "IP Address", "OOB IP"]
    expected = csv_rows(run, DEVICES_CSV)
    assert len(rows) - 1 == len(expected) == 40
    assert rows[1] == [expected[0][c] for c in ("Name", "Status", "Role", "IP Address", "OOB IP")]
    assert 'ac:name="attachments"' in devices_page.body
    assert "Last synced from NetBox export on " in devices_page.body
    vm_rows = table_rows(confluence.pages["33"].current.body)
    assert vm_rows[0] == ["Name", "Status", "Device", "Cluster", "IP Address"] and len(vm_rows) == 61
    assert (
        confluence.attachments_of("22")[DEVICES_CSV].current.data
        == selectors.artifact_path(selectors.artifact_get(run_id=run.pk, name=DEVICES_CSV)).read_bytes()
    )
    assert VMS_CSV in confluence.attachments_of("33")
    workbook = confluence.attachments_of("11")[WORKBOOK].current
    assert f"#{run.pk}" in workbook.comment
    assert hashlib.sha256(workbook.data).hexdigest() == selectors.artifact_get(run_id=run.pk, name=WORKBOOK).sha256


def test_markup_in_names_appears_literally_and_keeps_the_page_valid(netbox, confluence) -> None:
    netbox.update_device(netbox.devices[0]["id"], name="<script>alert(1)</script>")
    netbox.update_device(netbox.devices[1]["id"], name="a & b")

    run_export()

    body = confluence.pages["22"].current.body
    names = [row[0] for row in table_rows(body)]
    assert "<script>alert(1)</script>" in names and "a & b" in names
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_second_run_with_same_rows_leaves_pages_alone_but_new_workbook_version(netbox, confluence) -> None:
    run_export()
    netbox.update_device(netbox.devices[0]["id"], serial="NOT-IN-THE-TABLE")  # a column the page does not show

    second = run_export()

    assert confluence.pages["22"].current.number == 2  # unchanged table: no new page version
    detail = second.publications.get(target="confluence").detail
    assert "devices: unchanged" in detail
    assert len(confluence.attachments_of("11")[WORKBOOK].versions) == 2  # history kept, same attachment id
    assert len(confluence.attachments_of("22")[DEVICES_CSV].versions) == 2  # the CSV itself changed


def test_changed_row_updates_the_page_to_the_next_version(netbox, confluence) -> None:
    run_export()
    netbox.update_device(netbox.devices[0]["id"], name="renamed-device")

    run_export()

    assert confluence.pages["22"].current.number == 3
    assert "renamed-device" in [row[0] for row in table_rows(confluence.pages["22"].current.body)]


def test_table_macros_wrap_the_table_when_enabled(netbox, confluence, settings) -> None:
    settings.CONFLUENCE_ENABLE_TABLE_FILTER = True
    settings.CONFLUENCE_ENABLE_TABLE_SORT = True

    run_export()

    body = confluence.pages["33"].current.body
    assert re.search(r'ac:name="table-filter".*ac:name="table-sort".*<table', body, re.DOTALL)


def test_confluence_failure_marks_publication_failed_not_the_export(netbox, confluence) -> None:
    confluence.token = "rotated"  # our credentials no longer work

    run = run_export()

    run.refresh_from_db()
    assert run.status == ExportRun.Status.SUCCEEDED and run.error == ""
    publication = run.publications.get(target="confluence")
    assert publication.status == ExportPublication.Status.FAILED
    assert "401" in publication.detail and "rotated" not in publication.detail


def test_missing_page_fails_that_part_only(netbox, confluence) -> None:
    del confluence.pages["33"]

    run = run_export()

    publication = run.publications.get(target="confluence")
    assert publication.status == ExportPublication.Status.FAILED
    parts = {p["part"]: p["action"] for p in publication.outcome["parts"]}
    assert parts == {"cmdb": "updated", "devices": "updated", "vms": "failed"}


def test_no_publish_run_publishes_nothing(netbox, confluence) -> None:
    run = run_export(publish=False)

    assert not run.publications.exists()
    assert confluence.writes() == []


def test_dry_run_reads_but_writes_nothing(netbox, confluence) -> None:
    run = run_export(publish=False)

    publication, results = publishing.confluence_publish(run=run, dry_run=True)

    assert publication is None
    assert {r.part: r.action for r in results} == {"cmdb": "would update", "devices": "would update",
                                                    "vms": "would update"}  # fmt: skip
    assert confluence.writes() == [] and not run.publications.exists()


def test_publishing_a_failed_run_is_refused(netbox, confluence) -> None:
    run = ExportRun.objects.create(trigger="command", status=ExportRun.Status.FAILED, active=None)

    with pytest.raises(publishing.PublishError, match="did not succeed"):
        publishing.confluence_publish(run=run)


def test_confluence_publish_command_publishes_chosen_parts(netbox, confluence) -> None:
    run = run_export(publish=False)
    out = io.StringIO()

    call_command("confluence_publish", "--devices", stdout=out)

    assert "devices: updated" in out.getvalue()
    assert confluence.pages["22"].current.number == 2 and confluence.pages["33"].current.number == 1
    assert run.publications.get().status == ExportPublication.Status.SUCCEEDED


def test_confluence_publish_command_dry_run_prints_plan(netbox, confluence) -> None:
    run_export(publish=False)
    out = io.StringIO()

    call_command("confluence_publish", "--dry-run", stdout=out)

    assert "would update" in out.getvalue()
    assert confluence.writes() == []


# --- backups ---------------------------------------------------------------------------------------------------


def backup_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def test_successful_export_is_backed_up_and_verified(netbox, settings, tmp_path) -> None:
    settings.BACKUP_LOCAL_PATH = str(tmp_path / "backups")

    run = run_export()

    publication = run.publications.get(target="backup")
    assert publication.status == ExportPublication.Status.SUCCEEDED, publication.detail
    (folder,) = backup_folders(tmp_path / "backups")
    assert folder.endswith(f"-run{run.pk:06d}")
    for artifact in run.artifacts.all():
        copy = tmp_path / "backups" / folder / artifact.name
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == artifact.sha256
    assert {f["verified"] for f in publication.outcome["files"]} == {"size+sha256"}


def test_backups_keep_only_the_newest_retention(netbox, settings, tmp_path) -> None:
    root = tmp_path / "backups"
    settings.BACKUP_LOCAL_PATH = str(root)
    settings.BACKUP_RETENTION = 2
    root.mkdir()
    (root / "someone-elses-folder").mkdir()
    runs = []
    for index in range(3):
        netbox.update_device(netbox.devices[0]["id"], name=f"device-{index}")
        runs.append(run_export())

    folders = [f for f in backup_folders(root) if f.startswith("enreach-")]
    assert [int(f.rsplit("-run", 1)[1]) for f in folders] == [runs[1].pk, runs[2].pk]
    assert (root / "someone-elses-folder").is_dir()


def test_backup_of_a_pruned_run_fails_with_reason(netbox, settings, tmp_path) -> None:
    settings.BACKUP_LOCAL_PATH = str(tmp_path / "backups")
    run = run_export(publish=False)
    selectors.artifact_path(run.artifacts.first()).unlink()

    publication = publishing.export_backup(run=run)

    assert publication.status == ExportPublication.Status.FAILED
    assert "no longer on disk" in publication.detail


def test_backup_into_unwritable_target_fails_without_failing_the_export(netbox, settings, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.BACKUP_LOCAL_PATH = str(blocker / "backups")

    run = run_export()

    assert run.status == ExportRun.Status.SUCCEEDED
    assert run.publications.get(target="backup").status == ExportPublication.Status.FAILED


def test_backup_exports_command_backs_up_a_given_run(netbox, settings, tmp_path) -> None:
    settings.BACKUP_LOCAL_PATH = str(tmp_path / "backups")
    settings.BACKUP_TIMESTAMPED = False
    run = run_export(publish=False)
    out = io.StringIO()

    call_command("backup_exports", "--run", str(run.pk), stdout=out)

    assert "succeeded" in out.getvalue()
    assert (tmp_path / "backups" / WORKBOOK).is_file()


# --- retry doors: API and admin ------------------------------------------------------------------------------


def test_api_publish_retries_after_a_failure(netbox, confluence, client_for) -> None:
    confluence.fail(500, times=10)
    run = run_export()
    assert run.publications.get().status == ExportPublication.Status.FAILED
    confluence.clear_faults()

    response = client_for("operator").post(f"/api/exports/runs/{run.pk}/publish/", {"targets": ["confluence"]},
                                           format="json")  # fmt: skip

    assert response.status_code == 202
    (outcome,) = response.json()
    assert (outcome["target"], outcome["status"]) == ("confluence", "succeeded")
    assert confluence.pages["22"].current.number == 2
    assert run.publications.count() == 2


def test_api_publish_of_failed_run_is_409_and_unknown_target_400(client_for) -> None:
    run = ExportRun.objects.create(trigger="command", status=ExportRun.Status.FAILED, active=None)
    client = client_for("operator")

    assert client.post(f"/api/exports/runs/{run.pk}/publish/", {}, format="json").status_code == 409
    bad = client.post(f"/api/exports/runs/{run.pk}/publish/", {"targets": ["printer"]}, format="json")
    assert bad.status_code == 400 and "targets" in bad.json()
    assert client.post("/api/exports/runs/999999/publish/", {}, format="json").status_code == 404


def test_admin_back_up_now_action_backs_up_selected_run(netbox, settings, tmp_path, client_for) -> None:
    run = run_export(publish=False)
    settings.BACKUP_LOCAL_PATH = str(tmp_path / "backups")

    response = client_for("admin").post(
        "/admin/exports/exportrun/", {"action": "back_up_now", "_selected_action": [run.pk]}, follow=True
    )

    assert response.status_code == 200 and "files verified" in response.content.decode()
    assert run.publications.get(target="backup").status == ExportPublication.Status.SUCCEEDED


def test_admin_publish_again_action_publishes(netbox, confluence, client_for) -> None:
    run = run_export(publish=False)

    response = client_for("admin").post(
        "/admin/exports/exportrun/", {"action": "publish_again", "_selected_action": [run.pk]}, follow=True
    )

    assert response.status_code == 200
    assert run.publications.get(target="confluence").status == ExportPublication.Status.SUCCEEDED
    assert confluence.pages["22"].current.number == 2


# --- publishing writes only what changed ------------------------------------------------------------------------


def attachment_versions(confluence: FakeConfluence) -> dict[str, int]:
    return {name: len(a.versions) for page in ("11", "22", "33") for name, a in confluence.attachments_of(page).items()}


def test_three_no_change_publishes_in_a_row_only_read(netbox, confluence) -> None:
    run_export()
    assert attachment_versions(confluence) == {WORKBOOK: 1, DEVICES_CSV: 1, VMS_CSV: 1}
    confluence.reset_requests()

    for _ in range(3):
        call_command("confluence_publish", stdout=io.StringIO())

    counts = confluence.request_counts()
    print(f"three no-change publishes: {sum(counts.values())} requests {dict(counts)}")
    assert counts == {
        "GET /rest/api/content/{id}": 6,  # devices and VMs pages, body and version
        "GET /rest/api/content/{id}/child/attachment": 9,  # the workbook and the two CSVs, by file name
    }
    assert confluence.writes() == []
    assert attachment_versions(confluence) == {WORKBOOK: 1, DEVICES_CSV: 1, VMS_CSV: 1}
    assert (confluence.pages["22"].current.number, confluence.pages["33"].current.number) == (2, 2)
    outcome = ExportPublication.objects.first()
    assert outcome is not None and outcome.status == ExportPublication.Status.SUCCEEDED
    assert [p["action"] for p in outcome.outcome["parts"]] == ["unchanged"] * 3


def test_a_new_export_of_unchanged_netbox_writes_nothing(netbox, confluence) -> None:
    run_export()
    confluence.reset_requests()

    second = run_export()

    assert second.publications.get(target="confluence").status == ExportPublication.Status.SUCCEEDED
    assert confluence.writes() == []
    assert attachment_versions(confluence) == {WORKBOOK: 1, DEVICES_CSV: 1, VMS_CSV: 1}


def test_turning_on_the_table_filter_updates_an_otherwise_unchanged_page(netbox, confluence, settings) -> None:
    run = run_export()
    settings.CONFLUENCE_ENABLE_TABLE_FILTER = True

    _, results = publishing.confluence_publish(run=run, parts=["devices"])

    assert [r.action for r in results] == ["updated"]
    page = confluence.pages["22"]
    assert page.current.number == 3 and 'ac:name="table-filter"' in page.current.body
    assert table_rows(page.current.body) == table_rows(page.versions[1].body)
    assert len(confluence.attachments_of("22")[DEVICES_CSV].versions) == 1  # same CSV: not uploaded again


def test_page_or_attachment_changed_by_someone_else_is_written_again(netbox, confluence) -> None:
    run = run_export()
    page = confluence.pages["22"]
    page.versions.append(FakePageVersion(page.current.number + 1, "<p>tidied by hand</p>", "manual edit"))
    csv_attachment = confluence.attachments_of("33")[VMS_CSV]
    csv_attachment.versions.append(FakeAttachmentVersion(2, b"Name\nsomething else\n", "uploaded by hand", "text/csv"))

    _, results = publishing.confluence_publish(run=run)

    assert {r.part: r.action for r in results} == {"cmdb": "unchanged", "devices": "updated", "vms": "unchanged"}
    assert page.current.number == 4 and len(table_rows(page.current.body)) == 41
    assert len(csv_attachment.versions) == 3
    assert (
        csv_attachment.current.data
        == selectors.artifact_path(selectors.artifact_get(run_id=run.pk, name=VMS_CSV)).read_bytes()
    )
    assert len(confluence.attachments_of("22")[DEVICES_CSV].versions) == 1


def test_force_writes_new_versions_although_nothing_changed(netbox, confluence) -> None:
    run_export()
    out = io.StringIO()

    call_command("confluence_publish", "--force", stdout=out)

    assert attachment_versions(confluence) == {WORKBOOK: 2, DEVICES_CSV: 2, VMS_CSV: 2}
    assert confluence.pages["22"].current.number == 3
    assert "cmdb: updated (Systems CMDB.xlsx v2 uploaded)" in out.getvalue()


def test_dry_run_of_an_unchanged_publication_says_unchanged(netbox, confluence) -> None:
    run_export()
    confluence.reset_requests()
    out = io.StringIO()

    call_command("confluence_publish", "--dry-run", stdout=out)

    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        "cmdb: unchanged", "devices: unchanged", "vms: unchanged",
    ]  # fmt: skip
    assert confluence.writes() == []


# --- failures: exit codes and Confluence's own reasons ------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "publish"])
@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("empty-url", "set ATLASSIAN_BASE_URL"),
        ("rejected-token", "HTTP 401"),
        ("unknown-pages", "HTTP 404: No content found with id"),
    ],
)
def test_publish_command_exits_non_zero_with_a_line_per_failed_part(
    netbox, confluence, settings, breakage, reason, dry_run
) -> None:
    run_export(publish=False)
    if breakage == "empty-url":
        settings.ATLASSIAN_BASE_URL = ""
    elif breakage == "rejected-token":
        confluence.token = "rotated"
    else:
        settings.CONFLUENCE_CMDB_PAGE_ID, settings.CONFLUENCE_DEVICES_PAGE_ID = "404", "405"
        settings.CONFLUENCE_VMS_PAGE_ID = "406"
    args = ["--dry-run"] if dry_run else []

    with pytest.raises(CommandError) as caught:
        call_command("confluence_publish", *args, stdout=io.StringIO())

    head, *lines = str(caught.value).splitlines()
    assert head.endswith("failed for 3 of 3 parts:")
    assert [line.split(":")[0] for line in lines] == ["cmdb", "devices", "vms"]
    assert all(reason in line for line in lines)
    assert "rotated" not in str(caught.value) and confluence.token not in str(caught.value)
    assert confluence.writes() == []


def test_publish_command_with_no_page_configured_exits_non_zero(netbox, confluence, settings) -> None:
    run_export(publish=False)
    settings.CONFLUENCE_CMDB_PAGE_ID = settings.CONFLUENCE_DEVICES_PAGE_ID = settings.CONFLUENCE_VMS_PAGE_ID = ""

    with pytest.raises(CommandError, match="no page configured"):
        call_command("confluence_publish", "--dry-run", stdout=io.StringIO())


def test_confluences_reason_reaches_the_record_the_admin_and_the_command(netbox, confluence, client_for) -> None:
    run = run_export(publish=False)
    confluence.fail(
        400,
        method="PUT",
        path_contains="/content/22",
        message=f"{BAD_REQUEST}Error parsing xhtml: Unexpected close tag </td>; expected </p>.",
        errors=("Row 3 of the table is broken",),
    )

    with pytest.raises(CommandError) as caught:
        call_command("confluence_publish", stdout=io.StringIO())

    reason = "Error parsing xhtml: Unexpected close tag </td>; expected </p>.; Row 3 of the table is broken"
    assert str(caught.value).splitlines()[1].startswith("devices: Confluence at ")
    assert reason in str(caught.value) and "No space or no content type" not in str(caught.value)
    publication = run.publications.get()
    assert publication.status == ExportPublication.Status.FAILED
    assert reason in publication.detail and reason in publication.outcome["parts"][1]["detail"]
    assert confluence.token not in publication.detail
    page = client_for("admin").get(f"/admin/publishing/exportpublication/{publication.pk}/change/")
    assert page.status_code == 200
    assert "Error parsing xhtml: Unexpected close tag &lt;/td&gt;; expected &lt;/p&gt;." in page.content.decode()
    listing = client_for("admin").get("/admin/publishing/exportpublication/?status=failed")
    assert listing.status_code == 200 and "devices: failed (Confluence at" in listing.content.decode()


def test_a_body_confluence_cannot_parse_fails_with_its_parser_message(netbox, confluence, monkeypatch) -> None:
    run = run_export(publish=False)
    render = publishing.page_storage
    # A rendering bug: the test server parses what arrives, as Confluence does, and refuses it.
    monkeypatch.setattr(publishing, "page_storage", lambda **kwargs: render(**kwargs).replace("</h2>", "</h3>"))

    _, results = publishing.confluence_publish(run=run, parts=["devices"])

    assert results[0].action == "failed"
    assert "(HTTP 400): Error parsing xhtml: mismatched tag at [row,col {unknown-source}]" in results[0].detail
    assert confluence.pages["22"].current.number == 1


# --- backups over SFTP, verified by content -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def corrupting_sshd(tmp_path_factory) -> Iterator[Sshd]:
    """A real sshd whose SFTP subsystem can damage chosen uploads (a byte flipped, the size kept)."""
    with start_sshd(tmp_path_factory.mktemp("sshd"), corrupting=True) as server:
        yield server


@pytest.fixture
def sftp_backups(corrupting_sshd, settings, tmp_path) -> Path:
    """The app configured to back up over SFTP into a fresh folder of the sshd; returns that folder."""
    root = corrupting_sshd.home / tmp_path.name
    root.mkdir()
    corrupting_sshd.corrupt()
    settings.BACKUP_HOST, settings.BACKUP_PORT = "127.0.0.1", corrupting_sshd.port
    settings.BACKUP_USER, settings.BACKUP_PRIVATE_KEY = corrupting_sshd.user, str(corrupting_sshd.key)
    settings.BACKUP_PASSWORD, settings.BACKUP_KNOWN_HOSTS = "", ""
    settings.BACKUP_REMOTE_PATH, settings.BACKUP_TIMEOUT = str(root), 10
    settings.BACKUP_LOCAL_PATH = ""
    return root


def test_sftp_backup_is_read_back_and_checked_by_sha256(netbox, sftp_backups) -> None:
    run = run_export()

    publication = run.publications.get(target="backup")
    assert publication.status == ExportPublication.Status.SUCCEEDED, publication.detail
    assert "verified by sha256" in publication.detail
    (folder,) = backup_folders(sftp_backups)
    for artifact in run.artifacts.all():
        assert hashlib.sha256((sftp_backups / folder / artifact.name).read_bytes()).hexdigest() == artifact.sha256
    assert {f["verified"] for f in publication.outcome["files"]} == {"size+sha256"}


def test_sftp_copy_damaged_in_transit_fails_the_backup_and_keeps_old_ones(
    netbox, sftp_backups, corrupting_sshd, settings
) -> None:
    settings.BACKUP_RETENTION = 1
    run_export()
    (first,) = backup_folders(sftp_backups)
    netbox.update_device(netbox.devices[0]["id"], name="renamed")
    corrupting_sshd.corrupt(f"{WORKBOOK}.part")

    run = run_export()

    publication = run.publications.get(target="backup")
    assert publication.status == ExportPublication.Status.FAILED
    head, *lines = publication.detail.splitlines()
    assert head.endswith(f"1 of {run.artifacts.count()} copies did not match and nothing was kept:")
    size = selectors.artifact_get(run_id=run.pk, name=WORKBOOK).size
    assert len(lines) == 1 and lines[0].startswith(f"{WORKBOOK}: the copy read back has {size} bytes, sha256 ")
    assert backup_folders(sftp_backups) == [first]  # no bad copy left, and retention did not remove the good one
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("backup_exports", "--run", str(run.pk), stdout=out)
    assert str(caught.value).splitlines()[2].startswith(f"{WORKBOOK}: the copy read back has {size} bytes")
    assert backup_folders(sftp_backups) == [first]


def test_backup_dry_run_connects_and_reports_without_writing(netbox, sftp_backups, settings) -> None:
    settings.BACKUP_RETENTION = 1
    run_export()
    netbox.update_device(netbox.devices[0]["id"], name="renamed")
    newest = run_export(publish=False)
    before = backup_folders(sftp_backups)
    out = io.StringIO()

    call_command("backup_exports", "--dry-run", stdout=out)

    assert len(before) == 1 and backup_folders(sftp_backups) == before
    assert (
        "Dry run of the backup" in out.getvalue()
        and f"would copy {newest.artifacts.count()} files to sftp://" in out.getvalue()
    )
    assert "/enreach-" in out.getvalue() and f"-run{newest.pk:06d} (" in out.getvalue()
    assert f"would remove 1 old backups: {before[0]}" in out.getvalue()
    assert ExportPublication.objects.filter(target="backup").count() == 1  # the dry run records nothing


def test_backup_command_fails_with_a_line_per_missing_file_dry_run_too(netbox, settings, tmp_path) -> None:
    settings.BACKUP_LOCAL_PATH = str(tmp_path / "backups")
    run = run_export(publish=False)
    for artifact in run.artifacts.filter(name__in=[DEVICES_CSV, VMS_CSV]):
        selectors.artifact_path(artifact).unlink()

    for args in (["--dry-run"], []):
        with pytest.raises(CommandError) as caught:
            call_command("backup_exports", *args, stdout=io.StringIO())
        lines = str(caught.value).splitlines()[1:]
        assert sorted(lines) == sorted(
            f"{name} of export #{run.pk} is no longer on disk (pruned)." for name in (DEVICES_CSV, VMS_CSV)
        )
    assert not (tmp_path / "backups").exists()


def test_backup_command_without_a_target_exits_non_zero(netbox, settings) -> None:
    settings.BACKUP_LOCAL_PATH, settings.BACKUP_HOST = "", ""
    run_export(publish=False)

    with pytest.raises(CommandError, match="No backup target configured"):
        call_command("backup_exports", stdout=io.StringIO())


def test_api_publish_writes_only_changes_unless_forced(netbox, confluence, client_for) -> None:
    run = run_export()
    client = client_for("operator")

    plain = client.post(f"/api/exports/runs/{run.pk}/publish/", {"targets": ["confluence"]}, format="json")
    assert plain.status_code == 202 and attachment_versions(confluence) == {WORKBOOK: 1, DEVICES_CSV: 1, VMS_CSV: 1}
    forced = client.post(f"/api/exports/runs/{run.pk}/publish/", {"targets": ["confluence"], "force": True},
                         format="json")  # fmt: skip

    assert forced.status_code == 202 and forced.json()[0]["status"] == "succeeded"
    assert attachment_versions(confluence) == {WORKBOOK: 2, DEVICES_CSV: 2, VMS_CSV: 2}
    assert client.post(f"/api/exports/runs/{run.pk}/publish/", {"force": "maybe"}, format="json").status_code == 400


def test_the_tables_columns_are_settings_that_follow_the_column_set(netbox, confluence, settings, client_for) -> None:
    devices_set = [
        {**column, "header": "Function"} if column["source"] == "contract:Role" else column
        for column in ColumnSet().as_dict()["devices"]
    ] + [{"header": "Cost center", "source": "cf:cost_center"}]
    assert client_for("admin").put("/api/exports/columns/", {"devices": devices_set}, format="json").status_code == 200
    settings.CONFLUENCE_DEVICE_TABLE_COLUMNS = ["contract:Name", "contract:Role", "cf:cost_center", "Status"]
    run = run_export()
    rows = table_rows(confluence.pages["22"].current.body)
    assert rows[0] == ["Name", "Function", "Cost center", "Status"]
    expected = csv_rows(run, DEVICES_CSV)
    assert rows[1] == [expected[0][c] for c in ("Name", "Function", "Cost center", "Status")]
