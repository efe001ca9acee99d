"""Accounts in the Django admin: user provisioning, roles, tokens, global keys and the audit trail.

Every change goes through ``accounts.services`` (the same functions as the API and ``manage.py users``), so the
guard rails and the audit trail hold here too. Users are deactivated, never deleted.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import password_validation
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts import keys, selectors, services
from accounts.audit import AuditContext
from accounts.errors import AccountError
from accounts.global_keys import global_key_delete, global_key_name_check, global_key_set
from accounts.models import ApiToken, AuditEntry, GlobalKey, RoleGroup, User
from accounts.roles import CAPABILITIES, Role
from accounts.tokens import api_token_revoke


def _audit(request: HttpRequest) -> AuditContext:
    return AuditContext.from_request(request, source=AuditEntry.Source.ADMIN)


def _with_audit(form_class: type[forms.BaseForm], request: HttpRequest) -> type[forms.BaseForm]:
    """A per-request subclass of the form that knows who acts (so ``clean`` can apply the guard rails)."""
    return type(form_class.__name__, (form_class,), {"audit": _audit(request)})


class UserProvisionForm(forms.ModelForm):
    """Create a user with a role and an initial password."""

    password1 = forms.CharField(label="Initial password", strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label="Initial password (again)", strip=False, widget=forms.PasswordInput)

    class Meta:
        model = User
        fields = ["username", "role", "display_name", "email"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        elif data.get("password1"):
            candidate = User(username=data.get("username", ""), email=data.get("email", ""))
            try:
                password_validation.validate_password(data["password1"], user=candidate)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class UserChangeForm(forms.ModelForm):
    """Edit a user's profile, role and active flag, within the guard rails. For a user a directory manages, a role
    or active flag changed by hand needs ``directory_override`` ticked: the next sign-in sets them again."""

    audit: AuditContext | None = None
    directory_override = forms.BooleanField(
        required=False,
        label="Change it anyway",
        help_text="The directory sets this user's role and active flag again at their next sign-in.",
    )

    class Meta:
        model = User
        fields = ["display_name", "email", "role", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.is_directory_managed and "role" in self.fields:
            directory = self.instance.get_source_display()
            self.fields["role"].help_text = f"Set by the {directory} at every sign-in, from the user's groups."

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        managed = self.instance.pk and self.instance.is_directory_managed
        hand_edited = [name for name in ("role", "is_active") if name in self.changed_data]
        if managed and hand_edited and not data.get("directory_override"):
            self.add_error(
                hand_edited[0],
                f"{self.instance.username}'s role and active flag come from the {self.instance.get_source_display()}:"
                ' the next sign-in sets them again. Tick "Change it anyway" to save this change until then.',
            )
        try:
            services.user_change_check(
                user=self.instance, role=data.get("role"), is_active=data.get("is_active"), by=self.audit
            )
        except AccountError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


TOKEN_FIELDS = ["prefix", "label", "read_only", "created", "expires", "last_used", "revoked"]


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    fields = tuple(TOKEN_FIELDS)
    readonly_fields = TOKEN_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "display_name", "email", "role", "source", "is_active", "last_login", "date_joined"]
    list_filter = ["role", "source", "is_active"]
    search_fields = ["username", "display_name", "email"]
    ordering = ["username"]
    form = UserChangeForm
    add_form = UserProvisionForm
    fieldsets = (
        (None, {"fields": ("username", "password_reset")}),
        ("Profile", {"fields": ("display_name", "email")}),
        ("Access", {"fields": ("source_info", "role", "is_active")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {"classes": ("wide",), "fields": ("username", "role", "display_name", "email", "password1", "password2")},
        ),
    )
    readonly_fields = ["username", "password_reset", "source_info", "last_login", "date_joined"]
    inlines = [ApiTokenInline]
    actions = ["deactivate_users", "activate_users"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.readonly_fields

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.is_directory_managed:
            return [
                (name, {**options, "fields": (*options["fields"], "directory_override")})
                if name == "Access"
                else (name, options)
                for name, options in fieldsets
            ]
        return fieldsets

    @admin.display(description="Managed by")
    def source_info(self, user: User) -> str:
        if not user.is_directory_managed:
            return "Local account (created here, signs in with a password kept here)"
        return format_html(
            "{} · <code>{}</code> · role and active flag set at every sign-in",
            user.get_source_display(),
            user.directory_id or "-",
        )

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.inlines

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        return _with_audit(super().get_form(request, obj, change=change, **kwargs), request)

    @admin.display(description="Password")
    def password_reset(self, user: User) -> str:
        # Never the hash: only whether there is a password, and the way to reset it.
        if not services.local_password_allowed(user):
            return "none: signs in through the directory (DIRECTORY_ALLOW_LOCAL_PASSWORDS is off)"
        state = "set" if user.has_usable_password() else "none (cannot sign in with a password)"
        url = reverse("admin:auth_user_password_change", args=[user.pk])
        return format_html('{} · <a href="{}">Reset password</a>', state, url)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deactivate instead: a deleted user would take their runs, tokens and audit trail links with them.
        return False

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        if change:
            return form.save(commit=False)
        data = form.cleaned_data
        return services.user_create(
            username=data["username"],
            password=data["password1"],
            role=data["role"],
            email=data.get("email", ""),
            display_name=data.get("display_name", ""),
            by=_audit(request),
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            return  # created by the service in save_form
        data = form.cleaned_data
        stored = User.objects.get(pk=obj.pk)
        services.user_update(
            user=stored,
            by=_audit(request),
            role=data["role"],
            is_active=data["is_active"],
            email=data["email"],
            display_name=data["display_name"],
        )
        if getattr(stored, "tokens_revoked", None) is not None:
            revoked = _tokens_text(stored.tokens_revoked)  # type: ignore[attr-defined]
            self.message_user(request, f"{stored.username} deactivated; {revoked} revoked.", messages.WARNING)
        if stored.is_directory_managed and data.get("directory_override"):
            self.message_user(
                request,
                f"{stored.username}'s role and active flag were changed by hand: the "
                f"{stored.get_source_display()} sets them again at their next sign-in.",
                messages.WARNING,
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)

    def _bulk(self, request: HttpRequest, queryset: QuerySet[User], *, is_active: bool) -> None:
        done = revoked = 0
        for user in queryset:
            try:
                services.user_update(user=user, is_active=is_active, by=_audit(request))
                done += 1
                revoked += getattr(user, "tokens_revoked", 0)
            except AccountError as exc:
                self.message_user(request, f"{user.username}: {exc.message}", messages.ERROR)
        if done:
            verb = "activated" if is_active else "deactivated"
            tokens = "" if is_active else f"; {_tokens_text(revoked)} revoked"
            self.message_user(request, f"{done} user{'s' if done != 1 else ''} {verb}{tokens}.", messages.SUCCESS)

    @admin.action(description="Deactivate selected users", permissions=["change"])
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._bulk(request, queryset, is_active=False)

    @admin.action(description="Activate selected users", permissions=["change"])
    def activate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._bulk(request, queryset, is_active=True)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Reset a user's password through ``user_set_password`` (validated and audited)."""
        user = get_object_or_404(User, pk=id)
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        form = SetPasswordForm(user, request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.user_set_password(user=user, password=form.cleaned_data["new_password1"], by=_audit(request))
            except AccountError as exc:
                form.add_error(None, exc.message)
            else:
                revoked = _tokens_text(getattr(user, "tokens_revoked", 0))
                self.message_user(
                    request, f"Password of {user.username} reset; {revoked} revoked, sessions ended.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reset the password of {user.username}",
            "form": form,
            "original": user,
            "opts": self.opts,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/accounts/user/reset_password.html", context)


def _tokens_text(count: int) -> str:
    return f"{count} API token{'s' if count != 1 else ''}"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "label", "read_only", "created", "expires", "last_used", "revoked"]
    list_filter = ["read_only", ("revoked", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["prefix", "label", "user__username"]
    fields = ["user", *TOKEN_FIELDS]
    readonly_fields = ["user", *TOKEN_FIELDS]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tokens are created by their owner, who is the only one to see the secret.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row stays, for the record

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        tokens = list(queryset.select_related("user").filter(revoked__isnull=True))
        for token in tokens:
            api_token_revoke(token=token, by=_audit(request))
        self.message_user(request, f"{len(tokens)} token{'s' if len(tokens) != 1 else ''} revoked.", messages.SUCCESS)


class GlobalKeyForm(forms.ModelForm):
    """Name, label, URL and a write-only value (never rendered back)."""

    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The secret. It is stored encrypted and never shown again; leave empty to keep the current one.",
    )

    class Meta:
        model = GlobalKey
        fields = ["name", "label", "url"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        try:
            global_key_name_check(name)
        except AccountError as exc:
            raise forms.ValidationError(exc.message) from None
        return name

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if not self.instance.pk and not data.get("value"):
            self.add_error("value", "A value is required for a new key.")
        try:
            keys.configured_keys()
        except keys.KeyUnavailable as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(GlobalKey)
class GlobalKeyAdmin(admin.ModelAdmin):
    form = GlobalKeyForm
    list_display = ["name", "label", "masked_value", "url", "updated", "updated_by"]
    list_select_related = ["updated_by"]
    search_fields = ["name", "label"]
    readonly_fields = ["masked_value", "updated", "updated_by"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "label", "url", "value"]
        return ["name", "label", "url", "masked_value", "value", "updated", "updated_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is None else ["name", *self.readonly_fields]

    @admin.display(description="Value")
    def masked_value(self, key: GlobalKey) -> str:
        return key.masked

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = global_key_set(
            name=obj.name,
            value=data.get("value") or None,
            label=data.get("label", ""),
            url=data.get("url", ""),
            by=_audit(request),
        )
        obj.pk, obj.value_encrypted, obj.hint = saved.pk, saved.value_encrypted, saved.hint

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        global_key_delete(name=obj.name, by=_audit(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[GlobalKey]) -> None:
        for name in list(queryset.values_list("name", flat=True)):
            global_key_delete(name=name, by=_audit(request))


AUDIT_FIELDS = ["created", "actor", "actor_name", "source", "ip", "action", "target", "detail"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created", "actor_name", "source", "ip", "action", "target"]
    list_filter = ["action", "source"]
    search_fields = ["actor_name", "target", "action", "ip"]
    date_hierarchy = "created"
    readonly_fields = AUDIT_FIELDS
    fields = tuple(AUDIT_FIELDS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RoleForm(forms.ModelForm):
    """A role's capabilities as checkboxes: the app's own capabilities, not Django's model permissions."""

    capabilities = forms.MultipleChoiceField(
        choices=list(CAPABILITIES.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What members of this role may do. The admin role always holds every capability.",
    )

    class Meta:
        model = RoleGroup
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["capabilities"].initial = selectors.role_capabilities(role=self.instance.name)
            if self.instance.name == Role.ADMIN:
                self.fields["capabilities"].disabled = True


@admin.register(RoleGroup)
class RoleAdmin(admin.ModelAdmin):
    """The four built-in roles: capabilities edited as checkboxes; never added, renamed or deleted."""

    form = RoleForm
    list_display = ["role_label", "name", "capability_list", "active_users"]
    fields = ["role_label", "name", "capabilities", "active_users"]
    readonly_fields = ["role_label", "name", "active_users"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoleGroup]:
        return super().get_queryset(request).filter(name__in=Role.values)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Role")
    def role_label(self, group: RoleGroup) -> str:
        return str(group)

    @admin.display(description="Capabilities")
    def capability_list(self, group: RoleGroup) -> str:
        caps = selectors.role_capabilities(role=group.name)
        return ", ".join(CAPABILITIES[cap] for cap in caps) or "—"

    @admin.display(description="Active users")
    def active_users(self, group: RoleGroup) -> int:
        return User.objects.filter(role=group.name, is_active=True).count()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if obj.name == Role.ADMIN:
            return  # nothing to change: the admin role holds every capability
        try:
            services.role_set_capabilities(
                role=obj.name, capabilities=list(form.cleaned_data.get("capabilities") or []), by=_audit(request)
            )
        except AccountError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the capabilities were saved by the service; the group's other permissions stay as they are


# Roles are managed above, by capability; raw groups would let an admin delete or rename a built-in role.
admin.site.unregister(Group)
