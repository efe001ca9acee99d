from django.urls import path
from rest_framework.routers import SimpleRouter

from exports.api import quality, views

router = SimpleRouter()
router.register("runs", views.ExportRunViewSet, basename="export-run")

urlpatterns = [
    path("quality/latest/", quality.LatestQualityView.as_view(), name="export-quality-latest"),
    path("runs/<int:pk>/quality/", quality.RunQualityView.as_view(), name="export-run-quality"),
    path("latest/<str:name>", views.LatestArtifactView.as_view(), name="export-latest"),
    path("runs/<int:pk>/artifacts/<str:name>", views.RunArtifactView.as_view(), name="export-run-artifact"),
    *router.urls,
]
