"""Exports in the Django admin: runs are read-only; "Run export now" requests one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from enreach.admin import ReadOnlyAdmin
from exports import selectors
from exports.errors import ExportThrottled
from exports.models import ExportArtifact, ExportRun, NetboxSnapshot
from exports.runs import QueueUnavailable
from exports.services import export_run_enqueue, export_run_request
from exports.steps import step_bars, step_label


class ExportArtifactInline(admin.TabularInline):
    model = ExportArtifact
    fields = ("name", "kind", "size", "rows", "sha256", "download")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Download")
    def download(self, artifact: ExportArtifact) -> str:
        return format_html('<a href="/api/exports/runs/{}/artifacts/{}">download</a>', artifact.run_id, artifact.name)


def _request_run(modeladmin: admin.ModelAdmin, request: HttpRequest) -> None:
    try:
        run, created = export_run_request(trigger=ExportRun.Trigger.ADMIN, user=request.user)
    except ExportThrottled as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return
    if created:
        try:
            export_run_enqueue(run=run)
        except QueueUnavailable as exc:
            modeladmin.message_user(request, f"Export #{run.pk} failed: {exc}", messages.ERROR)
            return
        modeladmin.message_user(request, f"Export #{run.pk} queued.", messages.SUCCESS)
    else:
        modeladmin.message_user(request, f"Export #{run.pk} is already {run.status}.", messages.WARNING)


PROGRESS_LABELS = {
    "devices_total": "Devices to fetch",
    "devices_fetched": "Devices fetched",
    "vms_total": "VMs to fetch",
    "vms_fetched": "VMs fetched",
    "rows_total": "Rows to write",
    "rows_written": "Rows written",
    "files_total": "Files to write",
    "files_written": "Files written",
}
CHANGES_SHOWN = 100


def _table(head: tuple[str, ...], rows: Sequence[tuple[object, ...]], empty: str) -> SafeString:
    if not rows:
        return format_html('<span class="help">{}</span>', empty)
    return format_html(
        '<table class="run-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        format_html_join("", "<th>{}</th>", ((h,) for h in head)),
        format_html_join(
            "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),) for row in rows)
        ),
    )


@admin.register(ExportRun)
class ExportRunAdmin(ReadOnlyAdmin):
    # Few, short columns: the list keeps all of them beside the filters at 1366 px.
    list_display = ["id", "status", "trigger_mode", "requested_by", "started_short", "duration_s", "objects",
                    "change_counts", "short_error"]  # fmt: skip
    list_display_links = ["id"]
    list_filter = ["status", "trigger", "mode"]
    list_select_related = ["requested_by"]
    search_fields = ["id", "error", "requested_by__username"]
    date_hierarchy = "created"
    inlines = [ExportArtifactInline]  # and the apps' (run_admin_extend, below)
    actions: list[Any] = ["run_export_now"]  # and the apps' (run_admin_extend, below)
    fieldsets = [
        (None, {"fields": ["status", "trigger", "mode", "force", "publish", "requested_by", "netbox_url", "page"]}),
        ("Times", {"fields": ["created", "started", "finished", "heartbeat", "step_name"]}),
        ("Worker", {"fields": ["worker", "attempt", "retry_of"]}),
        (
            "Counts",
            {
                "fields": [
                    "devices",
                    "vms",
                    "added",
                    "changed",
                    "removed",
                    "netbox_requests",
                    "reused_files",
                    "compared",
                ]
            },
        ),
        ("Progress and timings", {"fields": ["progress_table", "timings_table"]}),
        ("After the run", {"fields": ["after_run_table"]}),
        ("What changed", {"fields": ["changes_table"]}),
        ("Error and log", {"fields": ["error", "log_text"]}),
        ("Internals", {"classes": ["collapse"], "fields": ["lookups_digest", "files_digest"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]  # type: ignore[misc]
    change_list_template = "admin/exports/exportrun/change_list.html"
    change_form_template = "admin/exports/exportrun/change_form.html"

    @admin.display(description="Duration")
    def duration_s(self, run: ExportRun) -> str:
        return f"{run.duration:.1f} s" if run.duration is not None else "—"

    @admin.display(description="Trigger · mode", ordering="trigger")
    def trigger_mode(self, run: ExportRun) -> str:
        return f"{run.get_trigger_display()} · {run.mode}" if run.mode else run.get_trigger_display()

    @admin.display(description="Started", ordering="started")
    def started_short(self, run: ExportRun) -> str:
        return timezone.localtime(run.started).strftime("%Y-%m-%d %H:%M") if run.started else "—"

    @admin.display(description="Devices / VMs")
    def objects(self, run: ExportRun) -> str:
        if run.devices is None:
            return "—"
        return f"{run.devices:,} / {run.vms or 0:,}"

    @admin.display(description="Changes")
    def change_counts(self, run: ExportRun) -> str:
        if run.added is None:
            return "—"
        return f"+{run.added:,} ~{run.changed or 0:,} -{run.removed or 0:,}"

    @admin.display(description="Error")
    def short_error(self, run: ExportRun) -> str:
        return run.error[:60] + ("…" if len(run.error) > 60 else "")

    @admin.display(description="Run page")
    def page(self, run: ExportRun) -> SafeString:
        return format_html(
            '<a href="{}">Export #{} on the exports pages</a>', reverse("exports:run-detail", args=[run.pk]), run.pk
        )

    @admin.display(description="Step")
    def step_name(self, run: ExportRun) -> str:
        return step_label(run.step) if run.step else "—"

    @admin.display(description="Progress")
    def progress_table(self, run: ExportRun) -> SafeString:
        rows = [
            (
                PROGRESS_LABELS.get(key, key.replace("_", " ").capitalize()),
                f"{value:,}" if isinstance(value, int) else value,
            )
            for key, value in sorted(
                run.progress.items(),
                key=lambda item: list(PROGRESS_LABELS).index(item[0]) if item[0] in PROGRESS_LABELS else 99,
            )
        ]
        return _table(("What", "How many"), rows, "No progress recorded.")

    @admin.display(description="Step timings")
    def timings_table(self, run: ExportRun) -> SafeString:
        rows = [
            (
                bar.label,
                f"{bar.seconds:.2f} s",
                format_html(
                    '<svg class="run-bar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true">'
                    '<rect width="{}" height="8"></rect></svg>',
                    bar.percent,
                ),
            )
            for bar in step_bars(run.timings)
        ]
        return _table(("Step", "Time", ""), rows, "No step finished.")

    @admin.display(description="Steps")
    def after_run_table(self, run: ExportRun) -> SafeString:
        rows = [
            (
                step.get("step", ""),
                step.get("outcome", ""),
                f"{float(step.get('seconds') or 0):.2f} s",
                step.get("error") or step.get("note") or "—",
            )
            for step in run.after_run or []
        ]
        return _table(("Step", "Outcome", "Time", "Detail"), rows, "No after-run step ran (yet).")

    @admin.display(description="Changes")
    def changes_table(self, run: ExportRun) -> SafeString:
        if not run.compared:
            return format_html(
                '<span class="help">{}</span>',
                "Not compared with a previous export (a first export, another NetBox, or files gone).",
            )
        items = list(selectors.export_change_list(run=run)[: CHANGES_SHOWN + 1])
        rows = [
            (
                item.get_kind_display(),
                item.get_change_display(),
                f"{item.name} (#{item.netbox_id})",
                format_html_join(
                    mark_safe("<br>"),
                    "<strong>{}</strong>: {} → {}",
                    ((c, v[0] or "(empty)", v[1] or "(empty)") for c, v in item.fields.items()),
                )
                or "—",
            )
            for item in items[:CHANGES_SHOWN]
        ]
        table = _table(("Kind", "Change", "Object", "Columns (old → new)"), rows, "Nothing changed.")
        if len(items) > CHANGES_SHOWN:
            link = reverse("exports:run-detail", args=[run.pk])
            return format_html(
                '{}<p><a href="{}#changes">All changes, searchable, on the run page</a></p>', table, link
            )
        return table

    @admin.display(description="Log")
    def log_text(self, run: ExportRun) -> SafeString:
        return format_html('<pre class="run-log">{}</pre>', run.log or "(empty)")

    @admin.action(description="Run export now")
    def run_export_now(self, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
        _request_run(self, request)

    def get_urls(self) -> list:  # type: ignore[type-arg]
        view = self.admin_site.admin_view(self.run_now_view)
        return [path("run-now/", view, name="exports_exportrun_run_now"), *super().get_urls()]

    def run_now_view(self, request: HttpRequest) -> HttpResponse:
        """The "Run export now" button above the list (POST only)."""
        if request.method == "POST" and request.user.has_capability("export.run"):  # type: ignore[union-attr]
            _request_run(self, request)
        return HttpResponseRedirect(reverse("admin:exports_exportrun_changelist"))

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_capability("export.download")  # type: ignore[union-attr]


def run_admin_extend(*, inlines: Sequence[type[InlineModelAdmin]] = (), actions: Sequence[Any] = ()) -> None:
    """Add an app's inlines and actions to the export run's admin page (quality: its counts; publishing: its
    attempts and the publish actions), from that app's ``admin.py``: exports does not know who adds what."""
    ExportRunAdmin.inlines = [*ExportRunAdmin.inlines, *inlines]
    ExportRunAdmin.actions = [*ExportRunAdmin.actions, *actions]


@admin.register(NetboxSnapshot)
class NetboxSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["kind", "netbox_id", "name", "last_updated"]
    list_filter = ["kind"]
    search_fields = ["name", "netbox_id"]
