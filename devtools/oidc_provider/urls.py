"""The provider's URLs: OAuth 2 / OpenID Connect under /o/ (discovery at /o/.well-known/openid-configuration),
and its own sign-in page."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
]
