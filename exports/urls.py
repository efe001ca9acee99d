from django.urls import path

from exports import quality_views, views

app_name = "exports"
urlpatterns = [
    path("", views.export_index, name="index"),
    path("run/", views.export_run_now, name="run"),
    path("quality/", quality_views.quality_findings_page, name="quality"),
    path("quality/findings.csv", quality_views.quality_findings_csv, name="quality-csv"),
    path("runs/<int:pk>/", views.export_run_detail, name="run-detail"),
]
