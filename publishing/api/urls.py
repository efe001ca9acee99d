"""The publishing API, under /api/exports/ beside the runs it publishes."""

from rest_framework.routers import SimpleRouter

from publishing.api import views

router = SimpleRouter()
router.register("runs", views.ExportRunPublishViewSet, basename="export-run")

urlpatterns = router.urls
