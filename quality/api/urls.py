"""The data-quality API, under /api/exports/ beside the runs it reports on."""

from django.urls import path

from quality.api import views

urlpatterns = [
    path("quality/latest/", views.LatestQualityView.as_view(), name="export-quality-latest"),
    path("runs/<int:pk>/quality/", views.RunQualityView.as_view(), name="export-run-quality"),
]
