from django.urls import path

from cmdb import views

app_name = "cmdb"
urlpatterns = [
    path("", views.cmdb_index, name="index"),
    path("<str:dataset>/<str:row_id>/", views.cmdb_history, name="history"),
]
