"""Exports in the Django admin: runs are read-only; "Run export now" requests one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from accounts.audit import AuditContext
from accounts.models import AuditEntry
from enreach.admin import ReadOnlyAdmin
from exports import selectors
from exports.column_sets import column_set_current, column_set_preview, column_set_replace
from exports.columns import COLUMN_TYPES, DATASETS, Column, ColumnSet, ColumnSetInvalid
from exports.errors import ExportThrottled
from exports.models import ColumnSet as ColumnSetRow
from exports.models import ExportArtifact, ExportRun, NetboxSnapshot
from exports.runs import QueueUnavailable
from exports.services import export_run_enqueue, export_run_request
from exports.steps import step_bars, step_label
from integrations.exceptions import IntegrationError


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
        ("Columns", {"classes": ["collapse"], "fields": ["columns_table"]}),
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

    @admin.display(description="Column set")
    def columns_table(self, run: ExportRun) -> SafeString:
        used = ColumnSet.from_dict(run.columns or {})
        if used.is_default:
            return format_html('<span class="help">{}</span>', "The default columns (the CMDB contract).")
        rows = [
            (label, column.header, column.source, column.type, "shown" if column.visible else "hidden")
            for dataset, label in (("devices", "Devices"), ("vms", "VMs"))
            for column in used.of(dataset)
        ]
        return _table(("Dataset", "Header", "Source", "Type", "Shown"), rows, "")

    @admin.display(description="Log")
    def log_text(self, run: ExportRun) -> SafeString:
        return format_html(
            '<pre class="run-log" tabindex="0" role="region" aria-label="Run log">{}</pre>', run.log or "(empty)"
        )

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


class ColumnSetForm(forms.Form):
    """Both datasets' columns, one a line: ``header | source | type | shown`` (type and shown optional: a contract
    column keeps its type, a custom field takes NetBox's, ``hidden`` hides). Lines in file order: move a line to move
    the column."""

    devices = forms.CharField(widget=forms.Textarea(attrs={"rows": 20, "class": "vLargeTextField column-lines"}))
    vms = forms.CharField(
        label="VMs", widget=forms.Textarea(attrs={"rows": 20, "class": "vLargeTextField column-lines"})
    )

    @staticmethod
    def as_lines(columns: Sequence[Column]) -> str:
        return "\n".join(f"{c.header} | {c.source} | {c.type}" + ("" if c.visible else " | hidden") for c in columns)

    def as_data(self) -> dict[str, list[dict[str, Any]]]:
        data: dict[str, list[dict[str, Any]]] = {}
        for dataset in DATASETS:
            entries = []
            for line in self.cleaned_data[dataset].splitlines():
                if not line.strip():
                    continue
                parts = [part.strip() for part in line.split("|")]
                entry: dict[str, Any] = {"header": parts[0], "source": parts[1] if len(parts) > 1 else ""}
                if len(parts) > 2 and parts[2]:
                    entry["type"] = parts[2]
                if len(parts) > 3 and parts[3]:
                    entry["visible"] = parts[3].lower() not in ("hidden", "no", "false", "0")
                entries.append(entry)
            data[dataset] = entries
        return data


@admin.register(ColumnSetRow)
class ColumnSetAdmin(admin.ModelAdmin):
    """The CMDB column sets: one page to edit both datasets, preview them on the stored snapshots and save them
    (``columns.manage``); every save goes through ``column_set_replace`` (checked against NetBox, audited)."""

    list_display = ["dataset", "updated", "updated_by"]

    def _may(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.has_capability("columns.manage"))  # type: ignore[union-attr]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may(request)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self._may(request)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self._may(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return self.columns_view(request)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:exports_columnset_changelist"))

    def columns_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the current set as lines. POST ``_preview``: the first rows with the proposed set, nothing saved.
        POST ``_save``: replace both datasets, or show every problem."""
        if not self._may(request):
            raise PermissionDenied
        current = column_set_current()
        preview = None
        if request.method == "POST":
            form = ColumnSetForm(request.POST)
            if form.is_valid():
                try:
                    if "_preview" in request.POST:
                        preview = column_set_preview(data=form.as_data())
                    else:
                        column_set_replace(
                            data=form.as_data(),
                            by=AuditContext.from_request(request, source=AuditEntry.Source.ADMIN),
                        )
                        self.message_user(request, "Column sets saved: the next export writes them.", messages.SUCCESS)
                        return HttpResponseRedirect(reverse("admin:exports_columnset_changelist"))
                except ColumnSetInvalid as exc:
                    for problem in exc.problems:
                        form.add_error(None, problem)
                except IntegrationError as exc:
                    form.add_error(None, f"The custom fields could not be checked against NetBox: {exc}")
        else:
            form = ColumnSetForm(initial={dataset: ColumnSetForm.as_lines(current.of(dataset)) for dataset in DATASETS})
        context = {
            **self.admin_site.each_context(request),
            "title": "CMDB columns",
            "form": form,
            "preview": preview,
            "opts": self.opts,
            "types": COLUMN_TYPES,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/exports/columnset/edit.html", context)
