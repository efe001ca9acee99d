"""The chat page: the user's conversations, the open one's messages and the composer.

The page is a shell; the browser talks to the chat API (``/api/chat/``) for sessions, messages (streamed as
server-sent events) and the user's own key.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from chat import selectors
from chat.services import chat_page_state


@login_required
def chat_page(request: HttpRequest, session_id: int | None = None) -> HttpResponse:
    """``/chat/`` (a new conversation) or ``/chat/<id>/`` (one of the user's own; anybody else's is a 404)."""
    if not request.user.has_capability("chat.use"):  # type: ignore[union-attr]
        raise PermissionDenied("You need the 'chat.use' capability.")
    session = None
    if session_id is not None:
        session = selectors.chat_session_get(owner=request.user, session_id=session_id)
        if session is None:
            raise Http404("No such chat session.")
    context = {
        **chat_page_state(user=request.user),
        "session": session,
        "can_see_exports": request.user.has_capability("export.download"),  # type: ignore[union-attr]
    }
    return render(request, "chat/index.html", context)
