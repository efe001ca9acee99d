"""/api/profile/: one's own profile, password and personal API tokens."""

from django.urls import path

from accounts.api import views

urlpatterns = [
    path("", views.ProfileView.as_view(), name="profile"),
    path("password/", views.PasswordChangeView.as_view(), name="profile-password"),
    path("tokens/", views.TokenListView.as_view(), name="profile-tokens"),
    path("tokens/<int:pk>/", views.TokenDetailView.as_view(), name="profile-token"),
]
