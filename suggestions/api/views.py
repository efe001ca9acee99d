"""Suggestion API: the board, likes and comments. Each method is a thin door over a service or a selector."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from suggestions import selectors, services
from suggestions.api.serializers import (
    CommentCreatedSerializer,
    CommentInputSerializer,
    CommentSerializer,
    SuggestionCreateSerializer,
    SuggestionDetailSerializer,
    SuggestionItemSerializer,
    SuggestionListSerializer,
    SuggestionSerializer,
    SuggestionUpdateSerializer,
)
from suggestions.models import Suggestion, SuggestionComment

# Ids beyond a 64-bit integer cannot exist, and SQLite raises instead of finding nothing.
MAX_ID = 2**63 - 1


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn service exceptions into DRF's 400 and 403."""
    try:
        yield
    except services.SuggestionInvalid as exc:
        raise ValidationError({exc.field: [exc.message]}) from exc
    except services.SuggestionForbidden as exc:
        raise PermissionDenied(str(exc)) from exc


def current_user(request: Request) -> User:
    """The signed-in user (every endpoint here requires one)."""
    return cast(User, request.user)


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


ITEM_PARAMS = [OpenApiParameter("id", int, OpenApiParameter.PATH)]
LIST_PARAMS = [
    OpenApiParameter("status", str, enum=Suggestion.Status.values),
    OpenApiParameter("classification", str, description="A classification name, any case."),
    OpenApiParameter("q", str, description="Text searched in the title and the summary."),
    OpenApiParameter("ordering", str, enum=list(selectors.ORDERINGS), default=selectors.DEFAULT_ORDERING),
    OpenApiParameter("limit", int, description=f"1 to {selectors.MAX_LIMIT}."),
    OpenApiParameter("offset", int),
]


@extend_schema(tags=["suggestions"])
class SuggestionViewSet(viewsets.ViewSet):
    """The suggestion board. Any signed-in user may read, propose, like and comment; see ``suggestions.services``
    for who may edit, delete and change a status."""

    lookup_value_regex = r"\d+"

    def _item(self, pk: int | str) -> Suggestion:
        if int(pk) > MAX_ID:
            raise NotFound(f"Suggestion {pk} does not exist.")
        try:
            return selectors.suggestion_get(suggestion_id=int(pk), user=self.request.user)
        except Suggestion.DoesNotExist:
            raise NotFound(f"Suggestion {pk} does not exist.") from None

    def _item_data(self, suggestion_id: int) -> dict[str, Any]:
        # Reloaded through the selector so the likes, "liked by me" and comments are current.
        return SuggestionSerializer(self._item(suggestion_id)).data

    @extend_schema(parameters=LIST_PARAMS, responses=SuggestionListSerializer)
    def list(self, request: Request) -> Response:
        """Suggestions matching the filters, a page at a time, with the total count and the board's metadata."""
        with domain_errors():
            query = selectors.suggestion_query_parse(
                params=request.query_params, default_limit=settings.SUGGESTIONS_PAGE_SIZE
            )
        suggestions = selectors.suggestion_list(
            user=current_user(request),
            status=query.status,
            classification=query.classification,
            q=query.q,
            ordering=query.ordering,
        )
        page = suggestions[query.offset : query.offset + query.limit]
        return Response(
            {
                "items": SuggestionSerializer(page, many=True).data,
                "total": suggestions.count(),
                "meta": selectors.suggestion_meta(),
            }
        )

    @extend_schema(parameters=ITEM_PARAMS, responses=SuggestionDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """One suggestion with its comments, and the board's metadata."""
        return Response({"item": SuggestionSerializer(self._item(pk)).data, "meta": selectors.suggestion_meta()})

    @extend_schema(request=SuggestionCreateSerializer, responses={201: SuggestionItemSerializer})
    def create(self, request: Request) -> Response:
        """Propose a suggestion."""
        data = _valid(SuggestionCreateSerializer, request.data)
        with domain_errors():
            suggestion = services.suggestion_create(author=current_user(request), **data)
        return Response({"item": self._item_data(suggestion.pk)}, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=ITEM_PARAMS, request=SuggestionUpdateSerializer, responses=SuggestionItemSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change the title, summary, classification or status."""
        suggestion = self._item(pk)
        data = _valid(SuggestionUpdateSerializer, request.data)
        with domain_errors():
            services.suggestion_update(suggestion=suggestion, user=current_user(request), **data)
        return Response({"item": self._item_data(suggestion.pk)})

    @extend_schema(parameters=ITEM_PARAMS, responses={204: OpenApiResponse(description="Deleted.")})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete a suggestion with its likes and comments."""
        with domain_errors():
            services.suggestion_delete(suggestion=self._item(pk), user=current_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["POST", "DELETE"], parameters=ITEM_PARAMS, request=None, responses={200: SuggestionItemSerializer}
    )
    @action(detail=True, methods=["post", "delete"])
    def like(self, request: Request, pk: str) -> Response:
        """POST likes, DELETE takes the like back; both are idempotent."""
        suggestion = self._item(pk)
        if request.method == "POST":
            services.suggestion_like(suggestion=suggestion, user=current_user(request))
        else:
            services.suggestion_unlike(suggestion=suggestion, user=current_user(request))
        return Response({"item": self._item_data(suggestion.pk)})

    @extend_schema(parameters=ITEM_PARAMS, request=CommentInputSerializer, responses={201: CommentCreatedSerializer})
    @action(detail=True, methods=["post"])
    def comments(self, request: Request, pk: str) -> Response:
        """Comment on a suggestion."""
        suggestion = self._item(pk)
        data = _valid(CommentInputSerializer, request.data)
        with domain_errors():
            comment = services.suggestion_comment_create(suggestion=suggestion, author=current_user(request), **data)
        return Response(
            {"item": self._item_data(suggestion.pk), "comment": CommentSerializer(comment).data},
            status=status.HTTP_201_CREATED,
        )

    def _comment(self, pk: str, comment_id: str) -> SuggestionComment:
        suggestion = self._item(pk)
        try:
            if int(comment_id) > MAX_ID:
                raise SuggestionComment.DoesNotExist
            return selectors.suggestion_comment_get(suggestion_id=suggestion.pk, comment_id=int(comment_id))
        except SuggestionComment.DoesNotExist:
            raise NotFound(f"Suggestion {pk} has no comment {comment_id}.") from None

    @extend_schema(
        methods=["PATCH"],
        parameters=[*ITEM_PARAMS, OpenApiParameter("comment_id", int, OpenApiParameter.PATH)],
        request=CommentInputSerializer,
        responses=CommentCreatedSerializer,
    )
    @extend_schema(
        methods=["DELETE"],
        parameters=[*ITEM_PARAMS, OpenApiParameter("comment_id", int, OpenApiParameter.PATH)],
        request=None,
        responses={200: SuggestionItemSerializer},
    )
    @action(detail=True, methods=["patch", "delete"], url_path=r"comments/(?P<comment_id>\d+)")
    def comment(self, request: Request, pk: str, comment_id: str) -> Response:
        """PATCH rewrites a comment, DELETE removes it: its author or a holder of ``suggestions.manage``."""
        comment = self._comment(pk, comment_id)
        if request.method == "PATCH":
            data = _valid(CommentInputSerializer, request.data)
            with domain_errors():
                services.suggestion_comment_update(comment=comment, user=current_user(request), **data)
            return Response(
                {"item": self._item_data(comment.suggestion_id), "comment": CommentSerializer(comment).data}
            )
        with domain_errors():
            services.suggestion_comment_delete(comment=comment, user=current_user(request))
        return Response({"item": self._item_data(comment.suggestion_id)})
