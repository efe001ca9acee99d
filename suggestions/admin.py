"""Suggestions in the Django admin: filters, search, like counts, and bulk status changes through the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import slugify

from suggestions import selectors, services
from suggestions.models import Suggestion, SuggestionComment


class CommentInline(admin.TabularInline):
    model = SuggestionComment
    fields = ("author", "text", "created")
    readonly_fields = fields
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Comments are written on the board, where the author is the signed-in user.
        return False


def _status_action(status: str, label: str) -> Callable[..., None]:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Suggestion]) -> None:
        try:
            changed = services.suggestion_status_bulk_set(
                suggestions=queryset,
                status=status,
                user=request.user,  # type: ignore[arg-type]
            )
        except services.SuggestionForbidden as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            return
        modeladmin.message_user(request, f"{changed} suggestion(s) marked {label}.", messages.SUCCESS)

    action.__name__ = f"mark_{status.replace(' ', '_')}"
    return admin.action(description=f"Mark selected suggestions as {label}")(action)


@admin.register(Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    list_display = ["id", "badge", "title", "status", "author", "likes", "comments", "created", "updated"]
    list_display_links = ["id", "title"]
    list_filter = ["classification", "status"]
    list_select_related = ["author"]
    search_fields = ["title", "summary", "author__username", "author__display_name"]
    date_hierarchy = "created"
    fields = ["title", "summary", "classification", "status", "author", "created", "updated"]
    readonly_fields = ["author", "created", "updated"]
    inlines = [CommentInline]
    actions = [_status_action(value, str(label)) for value, label in Suggestion.Status.choices]

    class Media:
        css = {"all": ["css/suggestions.css"]}  # the classification badges (no inline style under the CSP)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Suggestion]:
        # The like and comment counts come from the selector's annotations: one query for the whole page.
        return selectors.suggestion_list(user=None, with_comments=False).order_by("-created", "-id")

    @admin.display(description="", ordering="classification")
    def badge(self, suggestion: Suggestion) -> str:
        return format_html(
            '<span title="{}" class="admin-letter-badge letter-badge badge-{}">{}</span>',
            suggestion.classification,
            slugify(suggestion.classification),
            suggestion.classification_letter,
        )

    @admin.display(description="Likes", ordering="like_count")
    def likes(self, suggestion: Suggestion) -> int:
        return suggestion.like_count  # type: ignore[attr-defined]

    @admin.display(description="Comments", ordering="comment_count")
    def comments(self, suggestion: Suggestion) -> int:
        return suggestion.comment_count  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Suggestions are proposed on the board or through the API, by their author.
        return False

    def save_model(self, request: HttpRequest, obj: Suggestion, form: ModelForm, change: bool) -> None:
        """Save through the service, so the admin validates and authorizes like the board and the API."""
        data: dict[str, Any] = {
            name: form.cleaned_data[name] for name in ("title", "summary", "classification", "status")
        }
        try:
            services.suggestion_update(
                suggestion=Suggestion.objects.get(pk=obj.pk),
                user=request.user,  # type: ignore[arg-type]
                **data,
            )
        except services.SuggestionError as exc:
            # The form already passed the model's validation, so this is rare; report it rather than save.
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)

    def delete_model(self, request: HttpRequest, obj: Suggestion) -> None:
        services.suggestion_delete(suggestion=obj, user=request.user)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Suggestion]) -> None:
        for suggestion in queryset:
            services.suggestion_delete(suggestion=suggestion, user=request.user)  # type: ignore[arg-type]
