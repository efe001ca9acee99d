from django.urls import path

from integrations.api import views

urlpatterns = [
    path("netbox/status/", views.NetboxStatusView.as_view(), name="netbox-status"),
]
