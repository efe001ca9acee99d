"""Publishing in the Django admin: every publish and backup attempt, and on the export run's page its attempts and
the actions "Publish again to Confluence" (also with new versions) and "Back up now"."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from enreach.admin import ReadOnlyAdmin
from exports.admin import run_admin_extend
from exports.models import ExportRun
from publishing.models import ExportPublication
from publishing.services import PublishError, export_run_publish_again


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


@admin.action(description="Publish again to Confluence")
def publish_again(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
    _publish_again(modeladmin, request, queryset, ExportPublication.Target.CONFLUENCE)


@admin.action(description="Publish again to Confluence, new versions even if unchanged")
def publish_again_forced(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
    _publish_again(modeladmin, request, queryset, ExportPublication.Target.CONFLUENCE, force=True)


@admin.action(description="Back up now")
def back_up_now(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ExportRun]) -> None:
    _publish_again(modeladmin, request, queryset, ExportPublication.Target.BACKUP)


run_admin_extend(inlines=[ExportPublicationInline], actions=[publish_again, publish_again_forced, back_up_now])


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
