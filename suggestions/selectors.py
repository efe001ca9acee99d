"""Suggestion board reads.

Lists and details cost a fixed number of queries however many suggestions, likes and comments there are: the like
count and "liked by me" are annotated (``Count``/``Exists``), authors are joined and comments are prefetched with
their authors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import BooleanField, Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from suggestions.models import Suggestion, SuggestionComment, SuggestionLike
from suggestions.services import SuggestionInvalid, classification_parse, status_parse

# ordering parameter -> ORDER BY; the id breaks ties so pages never overlap.
ORDERINGS: dict[str, tuple[str, ...]] = {
    "-created": ("-created", "-id"),
    "-likes": ("-like_count", "-created", "-id"),
    "-updated": ("-updated", "-id"),
}
DEFAULT_ORDERING = "-created"
# The largest page a client may ask for.
MAX_LIMIT = 200
# Databases reject huge integers (SQLite: 64-bit); no board gets anywhere near this.
MAX_OFFSET = 1_000_000_000


def suggestion_meta() -> dict[str, list[dict[str, str]]]:
    """The classifications (name, colour, letter) and statuses (value, label) clients need to draw the board."""
    return {
        "classifications": [
            {"name": name, "color": Suggestion.STYLES[name].color, "letter": Suggestion.STYLES[name].letter}
            for name in Suggestion.Classification.values
        ],
        "statuses": [{"value": value, "label": str(label)} for value, label in Suggestion.Status.choices],
    }


def _count_of(model: type[SuggestionLike] | type[SuggestionComment]) -> Coalesce:
    # A correlated subquery rather than Count() over joins: two joined counts would multiply likes by comments.
    rows = model.objects.filter(suggestion=OuterRef("pk")).order_by().values("suggestion")
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0)


def _with_details(
    suggestions: QuerySet[Suggestion], *, user: User | Any, with_comments: bool = True
) -> QuerySet[Suggestion]:
    liked: Exists | Value
    if user is not None and user.is_authenticated:
        liked = Exists(SuggestionLike.objects.filter(suggestion=OuterRef("pk"), user=user))
    else:
        liked = Value(False, output_field=BooleanField())
    suggestions = suggestions.select_related("author").annotate(
        like_count=_count_of(SuggestionLike), comment_count=_count_of(SuggestionComment), liked_by_me=liked
    )
    if with_comments:
        comments = SuggestionComment.objects.select_related("author").order_by("created", "id")
        suggestions = suggestions.prefetch_related(Prefetch("comments", queryset=comments))
    return suggestions


def suggestion_list(
    *,
    user: User | Any,
    status: str | None = None,
    classification: str | None = None,
    q: str | None = None,
    ordering: str = DEFAULT_ORDERING,
    with_comments: bool = True,
) -> QuerySet[Suggestion]:
    """Suggestions matching the filters (already parsed values), with likes, "liked by me" and comments.

    ``q`` matches the title or the summary, case-insensitively. ``ordering`` is a key of ``ORDERINGS``.
    ``with_comments=False`` skips loading the comments (the board only shows their count).
    """
    suggestions = Suggestion.objects.all()
    if status:
        suggestions = suggestions.filter(status=status)
    if classification:
        suggestions = suggestions.filter(classification=classification)
    if q:
        suggestions = suggestions.filter(Q(title__icontains=q) | Q(summary__icontains=q))
    return _with_details(suggestions, user=user, with_comments=with_comments).order_by(*ORDERINGS[ordering])


def suggestion_get(*, suggestion_id: int, user: User | Any) -> Suggestion:
    """One suggestion with its details; raises ``Suggestion.DoesNotExist``."""
    return _with_details(Suggestion.objects.filter(pk=suggestion_id), user=user).get()


def suggestion_comment_get(*, suggestion_id: int, comment_id: int) -> SuggestionComment:
    """A comment of the given suggestion (a comment of another one does not exist here)."""
    return SuggestionComment.objects.select_related("author").get(pk=comment_id, suggestion_id=suggestion_id)


@dataclass(frozen=True, slots=True)
class SuggestionQuery:
    """A validated list request: filters, ordering and the page window."""

    status: str | None = None
    classification: str | None = None
    q: str | None = None
    ordering: str = DEFAULT_ORDERING
    limit: int = 50
    offset: int = 0


def _int_param(params: Mapping[str, str], name: str, *, default: int, low: int, high: int | None = None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SuggestionInvalid(name, f"{name} must be a whole number, not {raw!r}.") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SuggestionInvalid(name, f"{name} must be {bounds}; got {value}.")
    return value


def suggestion_query_parse(*, params: Mapping[str, str], default_limit: int) -> SuggestionQuery:
    """Validate list parameters (status, classification, q, ordering, limit, offset) or raise ``SuggestionInvalid``."""
    ordering = params.get("ordering") or DEFAULT_ORDERING
    if ordering not in ORDERINGS:
        allowed = ", ".join(f"'{key}'" for key in ORDERINGS)
        raise SuggestionInvalid("ordering", f"Unknown ordering {ordering!r}; choose one of {allowed}.")
    status = params.get("status") or None
    classification = params.get("classification") or None
    return SuggestionQuery(
        status=status_parse(status) if status else None,
        classification=classification_parse(classification) if classification else None,
        q=(params.get("q") or "").strip() or None,
        ordering=ordering,
        limit=_int_param(params, "limit", default=min(default_limit, MAX_LIMIT), low=1, high=MAX_LIMIT),
        offset=_int_param(params, "offset", default=0, low=0, high=MAX_OFFSET),
    )
