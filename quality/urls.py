from django.urls import path

from quality import views

app_name = "quality"
urlpatterns = [
    path("", views.quality_findings_page, name="findings"),
    path("findings.csv", views.quality_findings_csv, name="findings-csv"),
]
