"""Suggestion board writes. The API, the board pages and the admin all call these functions.

Validation lives here, not in serializers or forms, so every door gives the same readable messages. Permission
rules live here too: any signed-in user may propose, like and comment; only the author or a holder of
``suggestions.manage`` may edit or delete a suggestion or a comment; only ``suggestions.manage`` may change a status.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from suggestions.models import (
    COMMENT_MAX_LENGTH,
    SUMMARY_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Suggestion,
    SuggestionComment,
    SuggestionLike,
)

MANAGE = "suggestions.manage"


class SuggestionError(Exception):
    """A suggestion change that cannot be made."""


class SuggestionInvalid(SuggestionError):
    """Bad input; ``field`` names the offending field (a 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class SuggestionForbidden(SuggestionError):
    """The user may not make this change (a 403)."""


def _allowed(values: Iterable[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def classification_parse(value: str) -> str:
    """The classification named ``value`` (any case, surrounding spaces ignored), or ``SuggestionInvalid``."""
    wanted = value.strip().casefold()
    for choice in Suggestion.Classification.values:
        if choice.casefold() == wanted:
            return choice
    raise SuggestionInvalid(
        "classification",
        f"Unknown classification {value!r}; choose one of {_allowed(Suggestion.Classification.values)}.",
    )


def status_parse(value: str) -> str:
    """The status ``value`` names, by value or label in any case ("in_progress" too), or ``SuggestionInvalid``."""
    wanted = " ".join(value.replace("_", " ").replace("-", " ").split()).casefold()
    for choice, label in Suggestion.Status.choices:
        if wanted in (choice.casefold(), str(label).casefold()):
            return choice
    raise SuggestionInvalid("status", f"Unknown status {value!r}; choose one of {_allowed(Suggestion.Status.values)}.")


def _title_clean(title: str) -> str:
    title = title.strip()
    if not title:
        raise SuggestionInvalid("title", "Enter a title: it may not be empty or only spaces.")
    if len(title) > TITLE_MAX_LENGTH:
        raise SuggestionInvalid(
            "title", f"The title is {len(title)} characters long; at most {TITLE_MAX_LENGTH} are allowed."
        )
    return title


def _summary_clean(summary: str) -> str:
    summary = summary.strip()
    if len(summary) > SUMMARY_MAX_LENGTH:
        raise SuggestionInvalid(
            "summary", f"The summary is {len(summary)} characters long; at most {SUMMARY_MAX_LENGTH} are allowed."
        )
    return summary


def _text_clean(text: str) -> str:
    text = text.strip()
    if not text:
        raise SuggestionInvalid("text", "Enter a comment: it may not be empty or only spaces.")
    if len(text) > COMMENT_MAX_LENGTH:
        raise SuggestionInvalid(
            "text", f"The comment is {len(text)} characters long; at most {COMMENT_MAX_LENGTH} are allowed."
        )
    return text


def can_manage(user: User) -> bool:
    """Whether ``user`` may change statuses and edit or delete anything on the board."""
    return bool(user.is_authenticated and user.has_capability(MANAGE))


def can_edit(*, user: User, obj: Suggestion | SuggestionComment) -> bool:
    """Whether ``user`` may edit or delete a suggestion or a comment: its author, or a manager."""
    return bool(
        user.is_authenticated and ((obj.author_id is not None and obj.author_id == user.pk) or can_manage(user))
    )


def _require_edit(*, user: User, obj: Suggestion | SuggestionComment) -> None:
    if not can_edit(user=user, obj=obj):
        noun = "suggestion" if isinstance(obj, Suggestion) else "comment"
        raise SuggestionForbidden(f"Only the author of this {noun} or a holder of {MANAGE!r} may change it.")


def _require_manage(user: User) -> None:
    if not can_manage(user):
        raise SuggestionForbidden(f"Only a holder of {MANAGE!r} may change the status of a suggestion.")


def suggestion_create(
    *, author: User, title: str, summary: str = "", classification: str | None = None, status: str | None = None
) -> Suggestion:
    """Propose a suggestion. A status other than ``new`` needs ``suggestions.manage``."""
    suggestion = Suggestion(
        title=_title_clean(title),
        summary=_summary_clean(summary),
        classification=(
            Suggestion.Classification.COULD if classification is None else classification_parse(classification)
        ),
        status=Suggestion.Status.NEW if status is None else status_parse(status),
        author=author,
    )
    if suggestion.status != Suggestion.Status.NEW:
        _require_manage(author)
    suggestion.save()
    return suggestion


def suggestion_update(
    *,
    suggestion: Suggestion,
    user: User,
    title: str | None = None,
    summary: str | None = None,
    classification: str | None = None,
    status: str | None = None,
) -> Suggestion:
    """Change the given fields (``None`` leaves a field alone). Sending the current status is not a change."""
    _require_edit(user=user, obj=suggestion)
    changes: dict[str, str] = {}
    if title is not None:
        changes["title"] = _title_clean(title)
    if summary is not None:
        changes["summary"] = _summary_clean(summary)
    if classification is not None:
        changes["classification"] = classification_parse(classification)
    if status is not None:
        new_status = status_parse(status)
        if new_status != suggestion.status:
            _require_manage(user)
            changes["status"] = new_status
    if changes:
        for field, value in changes.items():
            setattr(suggestion, field, value)
        suggestion.save(update_fields=[*changes, "updated"])
    return suggestion


def suggestion_delete(*, suggestion: Suggestion, user: User) -> None:
    """Delete a suggestion with its comments and likes."""
    _require_edit(user=user, obj=suggestion)
    suggestion.delete()


def suggestion_status_bulk_set(*, suggestions: Iterable[Suggestion], status: str, user: User) -> int:
    """Give many suggestions one status (the admin's bulk action); returns how many changed."""
    _require_manage(user)
    status = status_parse(status)
    ids = [suggestion.pk for suggestion in suggestions]
    return Suggestion.objects.filter(pk__in=ids).exclude(status=status).update(status=status, updated=timezone.now())


def suggestion_like(*, suggestion: Suggestion, user: User) -> bool:
    """Like a suggestion as ``user``. Idempotent: returns whether a like was added."""
    if SuggestionLike.objects.filter(suggestion=suggestion, user=user).exists():
        return False
    try:
        # A savepoint: a concurrent double click must not break the surrounding transaction.
        with transaction.atomic():
            SuggestionLike.objects.create(suggestion=suggestion, user=user)
    except IntegrityError:
        return False
    return True


def suggestion_unlike(*, suggestion: Suggestion, user: User) -> bool:
    """Take back ``user``'s like. Idempotent: returns whether a like was removed."""
    deleted, _ = SuggestionLike.objects.filter(suggestion=suggestion, user=user).delete()
    return deleted > 0


def suggestion_comment_create(*, suggestion: Suggestion, author: User, text: str) -> SuggestionComment:
    """Comment on a suggestion."""
    return SuggestionComment.objects.create(suggestion=suggestion, author=author, text=_text_clean(text))


def suggestion_comment_update(*, comment: SuggestionComment, user: User, text: str) -> SuggestionComment:
    """Rewrite a comment (its author or a manager)."""
    _require_edit(user=user, obj=comment)
    comment.text = _text_clean(text)
    comment.save(update_fields=["text"])
    return comment


def suggestion_comment_delete(*, comment: SuggestionComment, user: User) -> None:
    """Delete a comment (its author or a manager)."""
    _require_edit(user=user, obj=comment)
    comment.delete()
