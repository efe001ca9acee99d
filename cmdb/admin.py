"""The admin's view of the CMDB's named views: who saved what, shared or not."""

from __future__ import annotations

from django.contrib import admin

from cmdb.models import CmdbNamedView


@admin.register(CmdbNamedView)
class CmdbNamedViewAdmin(admin.ModelAdmin):
    list_display = ("name", "dataset", "owner", "shared", "updated")
    list_filter = ("dataset", "shared")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    readonly_fields = ("created", "updated")
