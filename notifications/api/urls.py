from rest_framework.routers import SimpleRouter

from notifications.api import views

router = SimpleRouter()
router.register("channels", views.ChannelViewSet, basename="notification-channel")
router.register("subscriptions", views.SubscriptionViewSet, basename="notification-subscription")
router.register("deliveries", views.DeliveryViewSet, basename="notification-delivery")

urlpatterns = router.urls
