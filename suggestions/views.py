"""The suggestion board pages: a board of cards, a detail page to read and add comments, and their forms.

Every POST is a thin door over a service in ``suggestions.services`` and redirects (POST/redirect/GET); invalid
input re-renders the page with the service's message and a 400.
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from suggestions import selectors, services
from suggestions.forms import CommentForm, SuggestionEditForm, SuggestionForm, add_service_error
from suggestions.models import Suggestion, SuggestionComment

MAX_ID = 2**63 - 1


def _user(request: HttpRequest) -> User:
    # Every view here is behind login_required.
    return cast(User, request.user)


def _suggestion(request: HttpRequest, suggestion_id: int) -> Suggestion:
    try:
        if suggestion_id > MAX_ID:
            raise Suggestion.DoesNotExist
        return selectors.suggestion_get(suggestion_id=suggestion_id, user=_user(request))
    except Suggestion.DoesNotExist:
        raise Http404(f"Suggestion {suggestion_id} does not exist.") from None


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Redirect to the page the form came from (``next``), when it is one of ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(default)


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    """The board: filters, cards and the form to propose a suggestion."""
    try:
        query = selectors.suggestion_query_parse(params=request.GET, default_limit=settings.SUGGESTIONS_PAGE_SIZE)
    except services.SuggestionInvalid as exc:
        # A hand-edited URL: show everything and say which filter was ignored.
        messages.error(request, f"{exc.message} Showing all suggestions instead.")
        query = selectors.SuggestionQuery()
    suggestions = selectors.suggestion_list(
        user=_user(request),
        status=query.status,
        classification=query.classification,
        q=query.q,
        ordering=query.ordering,
        with_comments=False,
    )
    page = Paginator(suggestions, settings.SUGGESTIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    filters = request.GET.copy()
    filters.pop("page", None)
    return render(request, "suggestions/board.html", _board_context(request, query=query, page=page, filters=filters))


def _board_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        "meta": selectors.suggestion_meta(),
        "orderings": {"-created": "Newest", "-likes": "Most liked", "-updated": "Recently updated"},
        "form": SuggestionForm(),
        **extra,
    }


@login_required
def suggestion_new(request: HttpRequest) -> HttpResponse:
    """The form to propose a suggestion (also embedded in the board)."""
    form = SuggestionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            suggestion = services.suggestion_create(author=_user(request), **form.cleaned_data)
        except services.SuggestionInvalid as exc:
            add_service_error(form, exc.field, exc.message)
        else:
            messages.success(request, f"Suggestion “{suggestion.title}” added.")
            return redirect("suggestions:detail", suggestion_id=suggestion.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "suggestions/new.html", {"form": form}, status=status)


def _detail(
    request: HttpRequest,
    suggestion: Suggestion,
    *,
    comment_form: CommentForm | None = None,
    edit_form: SuggestionEditForm | None = None,
    status: int = 200,
) -> HttpResponse:
    can_manage = services.can_manage(_user(request))
    if edit_form is None:
        edit_form = SuggestionEditForm(
            initial={
                "title": suggestion.title,
                "summary": suggestion.summary,
                "classification": suggestion.classification,
                "status": suggestion.status,
            }
        )
    if not can_manage:
        del edit_form.fields["status"]
    context = {
        "suggestion": suggestion,
        "comments": [
            (comment, services.can_edit(user=_user(request), obj=comment)) for comment in suggestion.comments.all()
        ],
        "comment_form": comment_form or CommentForm(),
        "edit_form": edit_form,
        "can_edit": services.can_edit(user=_user(request), obj=suggestion),
        "can_manage": can_manage,
    }
    return render(request, "suggestions/detail.html", context, status=status)


@login_required
@require_GET
def suggestion_detail(request: HttpRequest, suggestion_id: int) -> HttpResponse:
    """One suggestion: its summary, likes, comments, and the forms to comment, edit and delete."""
    return _detail(request, _suggestion(request, suggestion_id))


@login_required
@require_POST
def suggestion_edit(request: HttpRequest, suggestion_id: int) -> HttpResponse:
    """Save the edit form (the author or a manager; the status needs ``suggestions.manage``)."""
    suggestion = _suggestion(request, suggestion_id)
    if not services.can_edit(user=_user(request), obj=suggestion):
        raise PermissionDenied("Only the author of this suggestion or a holder of 'suggestions.manage' may edit it.")
    form = SuggestionEditForm(request.POST)
    if form.is_valid():
        data = {key: value for key, value in form.cleaned_data.items() if key != "status" or value}
        try:
            services.suggestion_update(suggestion=suggestion, user=_user(request), **data)
        except services.SuggestionForbidden as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.SuggestionInvalid as exc:
            add_service_error(form, exc.field, exc.message)
        else:
            messages.success(request, "Suggestion saved.")
            return redirect("suggestions:detail", suggestion_id=suggestion.pk)
    return _detail(request, _suggestion(request, suggestion_id), edit_form=form, status=400)


@login_required
@require_POST
def suggestion_delete(request: HttpRequest, suggestion_id: int) -> HttpResponse:
    """Delete a suggestion (the author or a manager)."""
    suggestion = _suggestion(request, suggestion_id)
    try:
        services.suggestion_delete(suggestion=suggestion, user=_user(request))
    except services.SuggestionForbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    messages.success(request, f"Suggestion “{suggestion.title}” deleted.")
    return redirect("suggestions:board")


@login_required
@require_POST
def suggestion_like(request: HttpRequest, suggestion_id: int) -> HttpResponse:
    """The like button: ``action=like`` or ``action=unlike``, then back to the page it was pressed on."""
    suggestion = _suggestion(request, suggestion_id)
    if request.POST.get("action") == "unlike":
        services.suggestion_unlike(suggestion=suggestion, user=_user(request))
    else:
        services.suggestion_like(suggestion=suggestion, user=_user(request))
    return _back(request, f"/suggestions/{suggestion.pk}/")


@login_required
@require_POST
def comment_add(request: HttpRequest, suggestion_id: int) -> HttpResponse:
    """Add a comment, then show it."""
    suggestion = _suggestion(request, suggestion_id)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            comment = services.suggestion_comment_create(
                suggestion=suggestion,
                author=_user(request),
                text=form.cleaned_data["text"],
            )
        except services.SuggestionInvalid as exc:
            add_service_error(form, exc.field, exc.message)
        else:
            messages.success(request, "Comment added.")
            return redirect(f"/suggestions/{suggestion.pk}/#comment-{comment.pk}")
    return _detail(request, suggestion, comment_form=form, status=400)


@login_required
@require_POST
def comment_delete(request: HttpRequest, suggestion_id: int, comment_id: int) -> HttpResponse:
    """Delete a comment (its author or a manager)."""
    suggestion = _suggestion(request, suggestion_id)
    try:
        if comment_id > MAX_ID:
            raise SuggestionComment.DoesNotExist
        comment = selectors.suggestion_comment_get(suggestion_id=suggestion.pk, comment_id=comment_id)
    except SuggestionComment.DoesNotExist:
        raise Http404(f"Suggestion {suggestion_id} has no comment {comment_id}.") from None
    try:
        services.suggestion_comment_delete(comment=comment, user=_user(request))
    except services.SuggestionForbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    messages.success(request, "Comment deleted.")
    return redirect("suggestions:detail", suggestion_id=suggestion.pk)
