"""Exports in the Django admin: runs are read-only; "Run export now" requests one."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from enreach.admin import ReadOnlyAdmin
from exports.models import ExportArtifact, ExportPublication, ExportRun, NetboxSnapshot
from exports.publishing import PublishError, export_run_publish_again
from exports.quality_admin import QualityRuleCountInline
from exports.runs import QueueUnavailable
from exports.services import export_run_enqueue, export_run_request


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


class ExportPublicationInline(admin.TabularInline):
    model = ExportPublication
    fields = ("target", "status", "detail", "started", "finished")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _publish_again(
    modeladmin: admin.ModelAdmin, request: HttpRequest, runs: QuerySet[ExportRun], target: str, *, force: bool = False
) -> None:
    if not request.user.has_capability("export.run"):  # type: ignore[union-attr]
        modeladmin.message_user(request, "You may not publish exports.", messages.ERROR)
        return
    for run in runs:
        try:
            publications = export_run_publish_again(run=run, targets=[target], force=force)
        except PublishError as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
            continue
        for publication in publications:
            level = messages.ERROR if publication.status == ExportPublication.Status.FAILED else messages.SUCCESS
            modeladmin.message_user(request, f"{publication}: {'; '.join(publication.detail.splitlines())}", level)


def _request_run(modeladmin: admin.ModelAdmin, request: HttpRequest) -> None:
    run, created = export_run_request(trigger=ExportRun.Trigger.ADMIN, user=request.user)
    if created:
        try:
            export_run_enqueue(run=run)
        except QueueUnavailable as exc:
            modeladmin.message_user(request, f"Export #{run.pk} failed: {exc}", messages.ERROR)
            return
        modeladmin.message_user(request, f"Export #{run.pk} queued.", messages.SUCCESS)
    else:
        modeladmin.message_user(request, f"Export #{run.pk} is already {run.status}.", messages.WARNING)


@admin.register(ExportRun)
class ExportRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "trigger", "mode", "requested_by", "started", "duration_s", "devices", "vms",
                    "added", "changed", "removed", "short_error"]  # fmt: skip
    list_filter = ["status", "trigger", "mode"]
    list_select_related = ["requested_by"]
    search_fields = ["id", "error", "requested_by__username"]
    date_hierarchy = "created"
    inlines = [ExportArtifactInline, ExportPublicationInline, QualityRuleCountInline]
    actions = ["run_export_now", "publish_again", "publish_again_forced", "back_up_now"]
    readonly_fields = [f.name for f in ExportRun._meta.fields if f.name != "active"]
    exclude = ["active"]
    change_list_template = "admin/exports/exportrun/change_list.html"

    @admin.display(description="Duration (s)")
    def duration_s(self, run: ExportRun) -> str:
        return f"{run.duration:.1f}" if run.duration is not None else "—"

    @admin.display(description="Error")
    def short_error(self, run: ExportRun) -> str:
        return run.error[:80]

    @admin.action(description="Run export now")
    def run_export_now(self, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
        _request_run(self, request)

    @admin.action(description="Publish again to Confluence")
    def publish_again(self, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
        _publish_again(self, request, queryset, ExportPublication.Target.CONFLUENCE)

    @admin.action(description="Publish again to Confluence, new versions even if unchanged")
    def publish_again_forced(self, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
        _publish_again(self, request, queryset, ExportPublication.Target.CONFLUENCE, force=True)

    @admin.action(description="Back up now")
    def back_up_now(self, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
        _publish_again(self, request, queryset, ExportPublication.Target.BACKUP)

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


@admin.register(ExportPublication)
class ExportPublicationAdmin(ReadOnlyAdmin):
    """Every publish and backup attempt, with the target's own reason when it failed (one line per part)."""

    list_display = ["id", "run", "target", "status", "started", "finished", "short_detail"]
    list_filter = ["target", "status"]
    list_select_related = ["run"]
    search_fields = ["run__id", "detail"]
    date_hierarchy = "started"
    fields = ("run", "target", "status", "started", "finished", "detail_lines", "outcome")
    readonly_fields = fields

    @admin.display(description="Detail")
    def short_detail(self, publication: ExportPublication) -> str:
        return "; ".join(publication.detail.splitlines())[:120]

    @admin.display(description="Detail")
    def detail_lines(self, publication: ExportPublication) -> str:
        return format_html_join("", "<div>{}</div>", ((line,) for line in publication.detail.splitlines()))

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_capability("export.download")  # type: ignore[union-attr]


@admin.register(NetboxSnapshot)
class NetboxSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["kind", "netbox_id", "name", "last_updated"]
    list_filter = ["kind"]
    search_fields = ["name", "netbox_id"]
