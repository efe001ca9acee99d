"""URL configuration."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerSplitView

from enreach import views
from enreach.redoc import RedocView
from integrations.directory.views import SignInView, SingleSignOutView

admin.site.site_header = "Enreach tools administration"
admin.site.site_title = "Enreach tools admin"
admin.site.index_title = "Users, roles, keys and exports"

# Admin pages of models that moved from exports to their own apps: old bookmarks still land on them.
MOVED_ADMIN = {
    "exportpublication": "publishing",
    "qualityrulesetting": "quality",
    "qualityallowedvalues": "quality",
    "qualityrulecount": "quality",
}


def moved_admin(request: HttpRequest, model: str, rest: str) -> HttpResponseRedirect:
    query = f"?{request.META['QUERY_STRING']}" if request.META.get("QUERY_STRING") else ""
    return HttpResponseRedirect(f"/admin/{MOVED_ADMIN[model]}/{model}/{rest}{query}")


urlpatterns = [
    path("", views.home, name="home"),
    re_path(rf"^admin/exports/(?P<model>{'|'.join(MOVED_ADMIN)})/(?P<rest>.*)$", moved_admin),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the API's JSON, downloads).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    # Local, LDAP and the "Sign in with <provider>" button; sign-out also ends a single sign-on session.
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/logout/", SingleSignOutView.as_view(), name="logout"),
    path("accounts/oidc/", include("integrations.directory.urls")),
    path("accounts/", include("accounts.urls")),
    path("api/health/", views.HealthView.as_view(), name="health"),
    path("api/schema/", views.SchemaView.as_view(), name="schema"),
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
    path("api/exports/", include("quality.api.urls")),
    path("api/exports/", include("publishing.api.urls")),
    path("api/exports/", include("exports.api.urls")),
    path("api/integrations/", include("integrations.api.urls")),
    path("exports/quality/", include("quality.urls")),
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
