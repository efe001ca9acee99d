"""/api/admin/: user provisioning, roles and global keys."""

from rest_framework.routers import SimpleRouter

from accounts.api import views

router = SimpleRouter()
router.register("users", views.UserAdminViewSet, basename="admin-user")
router.register("roles", views.RoleAdminViewSet, basename="admin-role")
router.register("keys", views.GlobalKeyViewSet, basename="admin-key")

urlpatterns = [*router.urls]
