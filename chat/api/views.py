"""Chat API: a user's own sessions and messages, and their own provider key.

Sessions are always looked up among the requesting user's own: anybody else's session is a 404, for admins too
(admins read history in the Django admin). Posting a message answers 201 with the stored assistant message, or,
with ``Accept: text/event-stream``, streams the answer as server-sent events:

- ``event: delta`` ``{"content": "…"}``: the next piece of the answer;
- ``event: html`` ``{"content_html": "…"}``: the answer so far as sanitised HTML (rendered as the stored answer's
  ``content_html``), at most five times a second, so a page can show the Markdown's formatting while it streams;
- ``event: tool`` ``{"name", "arguments"}``: the assistant looks something up in the CMDB;
- ``event: lookup``: that look-up's result as stored in the answer's grounding (tool, arguments, total, rows);
- ``event: message``: the stored assistant message (the same shape as the JSON answer), last;
- ``event: error`` ``{"detail", "status", "message"}``: the provider failed after the stream had begun;
  ``message`` is the interrupted answer stored with what had arrived (or null).

A provider failure before the first event is an ordinary JSON error with its status (502, 503, 504). A client that
stops reading (closes the connection) leaves an interrupted answer holding what it had been sent.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any, NoReturn

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from accounts.permissions import capability_required
from chat import selectors
from chat.api.serializers import (
    ChatMessagePostSerializer,
    ChatMessageSerializer,
    ChatSessionSerializer,
    ChatSessionWriteSerializer,
    ChatUserKeySerializer,
)
from chat.errors import ChatError
from chat.models import ChatSession
from chat.provider import chat_user_key_delete, chat_user_key_set
from chat.services import (
    ChatEvent,
    chat_message_post,
    chat_message_stream,
    chat_session_create,
    chat_session_delete,
    chat_session_update,
)

EVENT_STREAM = "text/event-stream"
ChatUse = capability_required("chat.use")


class ChatUnavailable(APIException):
    """A ``ChatError`` as an API error with the service's status."""

    def __init__(self, error: ChatError) -> None:
        super().__init__(detail=str(error))
        self.status_code = error.status_code


def _raise(error: ChatError) -> NoReturn:
    raise ChatUnavailable(error) from None


class EventStreamRenderer(BaseRenderer):
    """Lets clients ask for ``text/event-stream``; the stream itself is a StreamingHttpResponse."""

    media_type = EVENT_STREAM
    format = "sse"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return json.dumps(data, cls=JSONEncoder).encode()


def _frame(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, cls=JSONEncoder, ensure_ascii=False)}\n\n"


def _event_frames(first: ChatEvent, events: Iterator[ChatEvent]) -> Iterator[str]:
    try:
        for event in itertools.chain([first], events):
            if event.kind == "message":
                yield _frame("message", ChatMessageSerializer(event.message).data)
            else:
                yield _frame(event.kind, event.data)
    except ChatError as exc:
        stored = getattr(exc, "message", None)
        data = ChatMessageSerializer(stored).data if stored is not None else None
        yield _frame("error", {"detail": str(exc), "status": exc.status_code, "message": data})
    finally:
        # The server closes this generator when the client goes away: close the turn now, so that it stores
        # what had arrived, rather than whenever the garbage collector gets to it.
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _own_session(request: Request, session_id: int) -> ChatSession:
    """The requesting user's session, or 404 (also when it is somebody else's)."""
    session = selectors.chat_session_get(owner=request.user, session_id=session_id)
    if session is None:
        raise Http404("No such chat session.")
    return session


@extend_schema(tags=["chat"])
class ChatSessionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The requesting user's chat sessions, most recently active first (needs ``chat.use``)."""

    permission_classes = [ChatUse]
    serializer_class = ChatSessionSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.chat_session_list(owner=self.request.user)

    def _data(self, session: ChatSession) -> dict[str, Any]:
        fresh = selectors.chat_session_get(owner=self.request.user, session_id=session.pk)
        return dict(ChatSessionSerializer(fresh).data)

    @extend_schema(request=ChatSessionWriteSerializer, responses={201: ChatSessionSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start a session (optional ``title`` and ``context``)."""
        write = ChatSessionWriteSerializer(data=request.data)
        write.is_valid(raise_exception=True)
        try:
            session = chat_session_create(owner=request.user, **write.validated_data)
        except ChatError as exc:
            _raise(exc)
        return Response(self._data(session), status=status.HTTP_201_CREATED)

    @extend_schema(request=ChatSessionWriteSerializer, responses={200: ChatSessionSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Rename a session (``title``) or replace its ``context``."""
        session = self.get_object()
        write = ChatSessionWriteSerializer(data=request.data, partial=True)
        write.is_valid(raise_exception=True)
        try:
            chat_session_update(session=session, **write.validated_data)
        except ChatError as exc:
            _raise(exc)
        return Response(self._data(session))

    def perform_destroy(self, instance: ChatSession) -> None:
        chat_session_delete(session=instance)


@extend_schema(tags=["chat"])
class ChatMessageListView(GenericAPIView):
    """A session's messages in order; post a message to get the assistant's answer."""

    permission_classes = [ChatUse]
    serializer_class = ChatMessageSerializer
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        # Errors are JSON even for a client that asked for an event stream.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(responses=ChatMessageSerializer(many=True))
    def get(self, request: Request, session_id: int) -> Response:
        page = self.paginate_queryset(selectors.chat_message_list(session=_own_session(request, session_id)))
        return self.get_paginated_response(ChatMessageSerializer(page, many=True).data)

    @extend_schema(
        request=ChatMessagePostSerializer,
        responses={
            201: ChatMessageSerializer,
            (201, EVENT_STREAM): OpenApiResponse(
                response=OpenApiTypes.STR, description="Server-sent events: delta, html, tool, lookup, message, error."
            ),
            502: OpenApiResponse(description="The provider failed or rejected the key (the message is kept)."),
            503: OpenApiResponse(description="No provider configured, or the provider is rate limiting."),
            504: OpenApiResponse(description="The provider did not answer in time (the message is kept)."),
        },
    )
    def post(self, request: Request, session_id: int) -> Response | StreamingHttpResponse:
        session = _own_session(request, session_id)
        body = ChatMessagePostSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        content = body.validated_data["content"]
        if EVENT_STREAM not in request.META.get("HTTP_ACCEPT", ""):
            try:
                message = chat_message_post(session=session, content=content)
            except ChatError as exc:
                _raise(exc)
            return Response(ChatMessageSerializer(message).data, status=status.HTTP_201_CREATED)
        try:
            events = chat_message_stream(session=session, content=content)
            # Wait for the first event so that a provider failing at once still gets a proper error status.
            first = next(events)
        except ChatError as exc:
            _raise(exc)
        response = StreamingHttpResponse(
            _event_frames(first, events), status=status.HTTP_201_CREATED, content_type=EVENT_STREAM
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass events through as they come
        return response


@extend_schema(tags=["chat"])
class ChatUserKeyView(APIView):
    """The requesting user's own provider key, used before the global key. Only a hint is ever shown."""

    permission_classes = [ChatUse]

    def _state(self, request: Request) -> dict[str, Any]:
        key = selectors.chat_user_key_get(user=request.user)
        return {"configured": key is not None, "hint": key.masked if key else None}

    @extend_schema(responses={200: ChatUserKeySerializer})
    def get(self, request: Request) -> Response:
        return Response(self._state(request))

    @extend_schema(request=ChatUserKeySerializer, responses={200: ChatUserKeySerializer})
    def put(self, request: Request) -> Response:
        body = ChatUserKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            chat_user_key_set(user=request.user, value=body.validated_data["value"])
        except ChatError as exc:
            _raise(exc)
        return Response(self._state(request))

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        chat_user_key_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
