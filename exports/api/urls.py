from django.urls import path
from rest_framework.routers import SimpleRouter

from exports.api import views

router = SimpleRouter()
router.register("runs", views.ExportRunViewSet, basename="export-run")

urlpatterns = [
    path("columns/", views.ColumnSetView.as_view(), name="export-columns"),
    path("columns/preview/", views.ColumnSetPreviewView.as_view(), name="export-columns-preview"),
    path("latest/<str:name>", views.LatestArtifactView.as_view(), name="export-latest"),
    path("runs/<int:pk>/artifacts/<str:name>", views.RunArtifactView.as_view(), name="export-run-artifact"),
    *router.urls,
]
