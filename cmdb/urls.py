from django.urls import path

from cmdb import views

app_name = "cmdb"
urlpatterns = [path("", views.cmdb_index, name="index")]
