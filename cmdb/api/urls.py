from django.urls import path

from cmdb.api import views

# The dataset (devices, vms or merged) is checked by the views, after authentication: an unknown one is a JSON 404.
urlpatterns = [
    path("views/", views.CmdbNamedViewsView.as_view(), name="cmdb-named-views"),
    path("views/<int:pk>/", views.CmdbNamedViewDetailView.as_view(), name="cmdb-named-view"),
    path("<str:dataset>/rows/", views.CmdbRowsView.as_view(), name="cmdb-rows"),
    path("<str:dataset>/rows/<str:id>/", views.CmdbRowView.as_view(), name="cmdb-row"),
    path("<str:dataset>/rows/<str:id>/history/", views.CmdbRowHistoryView.as_view(), name="cmdb-row-history"),
    path("<str:dataset>/facets/", views.CmdbFacetsView.as_view(), name="cmdb-facets"),
    path("<str:dataset>/download/", views.CmdbDownloadView.as_view(), name="cmdb-download"),
    path("<str:dataset>/view/", views.CmdbViewStateView.as_view(), name="cmdb-view"),
]
