"""Accounts in the Django admin."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from accounts.models import ApiToken, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "display_name", "email", "role", "is_active", "last_login", "date_joined"]
    list_filter = ["role", "is_active"]
    search_fields = ["username", "display_name", "email"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("display_name", "first_name", "last_name", "email")}),
        ("Access", {"fields": ("role", "is_active", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "role", "password1", "password2")}),)
    readonly_fields = ["last_login", "date_joined"]

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        from accounts.services import user_set_role

        super().save_model(request, obj, form, change)
        user_set_role(user=obj, role=obj.role)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "label", "read_only", "created", "expires", "last_used", "revoked"]
    list_filter = ["read_only"]
    list_select_related = ["user"]
    search_fields = ["prefix", "label", "user__username"]
    readonly_fields = ["user", "prefix", "key_hash", "created", "last_used"]
    exclude = ["key_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tokens are created by their owner, who is the only one to see the secret.
        return False
