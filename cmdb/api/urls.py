from django.urls import re_path

from cmdb.api import views

DATASET = r"(?P<dataset>devices|vms|merged)"

urlpatterns = [
    re_path(rf"^{DATASET}/rows/$", views.CmdbRowsView.as_view(), name="cmdb-rows"),
    re_path(rf"^{DATASET}/rows/(?P<id>[^/]+)/$", views.CmdbRowView.as_view(), name="cmdb-row"),
    re_path(rf"^{DATASET}/download/$", views.CmdbDownloadView.as_view(), name="cmdb-download"),
    re_path(rf"^{DATASET}/view/$", views.CmdbViewStateView.as_view(), name="cmdb-view"),
]
