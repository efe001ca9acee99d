from django.urls import path
from rest_framework.routers import SimpleRouter

from chat.api import views

router = SimpleRouter()
router.register("sessions", views.ChatSessionViewSet, basename="chat-session")

urlpatterns = [
    path("sessions/<int:session_id>/messages/", views.ChatMessageListView.as_view(), name="chat-messages"),
    path("key/", views.ChatUserKeyView.as_view(), name="chat-key"),
    *router.urls,
]
