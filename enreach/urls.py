"""URL configuration."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from enreach import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("api/health/", views.HealthView.as_view(), name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # A page for people: send them to sign in rather than answering 401.
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="schema")), name="docs"),
    path("api/auth/", include("accounts.api.urls")),
    path("api/profile/", include("accounts.api.profile_urls")),
    path("api/admin/", include("accounts.api.admin_urls")),
    path("api/chat/", include("chat.api.urls")),
    path("api/suggestions/", include("suggestions.api.urls")),
    path("suggestions/", include("suggestions.urls")),
    path("api/exports/", include("exports.api.urls")),
    path("api/integrations/", include("integrations.api.urls")),
    path("exports/", include("exports.urls")),
    path("metrics", views.metrics, name="metrics"),
]

# Django's error pages, as JSON under /api/ (enreach/api.py).
handler400 = "enreach.api.handler400"
handler403 = "enreach.api.handler403"
handler404 = "enreach.api.handler404"
handler500 = "enreach.api.handler500"
