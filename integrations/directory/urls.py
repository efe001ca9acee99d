"""Single sign-on (mounted at /accounts/oidc/)."""

from django.urls import path

from integrations.directory import views

urlpatterns = [
    path("login/", views.oidc_login, name="oidc_login"),
    path("callback/", views.oidc_callback, name="oidc_callback"),
]
