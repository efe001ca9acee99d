"""URL configuration."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import SignOutView
from enreach import views
from enreach.redoc import RedocView
from exports.dashboard import home

admin.site.site_header = "Enreach tools administration"
admin.site.site_title = "Enreach tools admin"
admin.site.index_title = "Users, roles, keys and exports"

urlpatterns = [
    path("", home, name="home"),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the API's JSON, downloads).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", SignOutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("api/health/", views.HealthView.as_view(), name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # A page for people: send them to sign in rather than answering 401.
    # Swagger UI from drf-spectacular-sidecar's static files; the split view serves Swagger's
    # settings as a script file, so the page has no inline script (CSP: self only).
    path(
        "api/docs/",
        login_required(
            SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs/swagger_ui.html")
        ),
        name="docs",
    ),
    # ReDoc, also from the sidecar, with its own slightly wider policy (enreach/redoc.py).
    path("api/redoc/", login_required(RedocView.as_view(url_name="schema")), name="redoc"),
    path("api/auth/", include("accounts.api.urls")),
    path("api/profile/", include("accounts.api.profile_urls")),
    path("api/admin/", include("accounts.api.admin_urls")),
    path("api/chat/", include("chat.api.urls")),
    path("chat/", include("chat.urls")),
    path("api/suggestions/", include("suggestions.api.urls")),
    path("suggestions/", include("suggestions.urls")),
    path("api/exports/", include("exports.api.urls")),
    path("api/integrations/", include("integrations.api.urls")),
    path("exports/", include("exports.urls")),
    path("api/cmdb/", include("cmdb.api.urls")),
    path("api/notifications/", include("notifications.api.urls")),
    path("notifications/", include("notifications.urls")),
    path("cmdb/", include("cmdb.urls")),
    path("metrics", views.metrics, name="metrics"),
]

# Django's error pages, as JSON under /api/ (enreach/api.py).
handler400 = "enreach.api.handler400"
handler403 = "enreach.api.handler403"
handler404 = "enreach.api.handler404"
handler500 = "enreach.api.handler500"
