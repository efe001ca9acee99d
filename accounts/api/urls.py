from django.urls import re_path

from accounts.api import views

urlpatterns = [
    re_path(r"^me/?$", views.MeView.as_view(), name="auth-me"),
]
