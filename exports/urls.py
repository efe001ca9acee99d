from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("", views.export_index, name="index"),
    path("run/", views.export_run_now, name="run"),
    path("runs/<int:pk>/", views.export_run_detail, name="run-detail"),
]
