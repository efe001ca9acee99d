from rest_framework.routers import SimpleRouter

from suggestions.api import views

router = SimpleRouter()
router.register("", views.SuggestionViewSet, basename="suggestion")

urlpatterns = router.urls
