"""Notifications pages for people (mounted at /notifications/): the profile section's forms post here."""

from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("subscriptions/", views.subscribe, name="subscribe"),
    path("subscriptions/<int:pk>/delete/", views.unsubscribe, name="unsubscribe"),
]
