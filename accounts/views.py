"""The profile page: one's details and preferences, password, and personal API tokens."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts import selectors, services
from accounts.audit import AuditContext
from accounts.errors import AccountError
from accounts.models import AuditEntry, User
from accounts.preferences import EXPORT_DATASETS, THEMES, preferences_effective, time_zones
from accounts.tokens import api_token_create, api_token_revoke


def time_zone_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """The IANA time zones grouped by region (Africa, America, …, Other), each labelled without its region:
    a select of 600 names becomes a dozen groups a person (and the page's find box) can scan."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(time_zones()):
        region, _, place = name.partition("/")
        if not place:
            region, place = "Other", name
        groups.setdefault(region, []).append((name, place.replace("_", " ")))
    return sorted(groups.items(), key=lambda item: (item[0] == "Other", item[0]))


class ProfileForm(forms.Form):
    display_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False)
    time_zone = forms.ChoiceField(choices=(), help_text="Every time on these pages and in the admin is shown in it.")
    theme = forms.ChoiceField(
        choices=[(t, "System (follow the browser)" if t == "system" else t.capitalize()) for t in THEMES]
    )
    export_dataset = forms.ChoiceField(
        label="Default export dataset",
        help_text="The file offered first on the home and exports pages.",
        choices=[(d, d.upper() if d == "vms" else d.capitalize()) for d in EXPORT_DATASETS],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = time_zone_choices()  # type: ignore[attr-defined]


class PasswordForm(forms.Form):
    current_password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    new_password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class TokenForm(forms.Form):
    label = forms.CharField(max_length=100, required=False)
    expires = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Optional.")
    read_only = forms.BooleanField(required=False, label="Read-only (GET requests only)")


def _initial(user: User) -> dict[str, Any]:
    return {"display_name": user.display_name, "email": user.email, **preferences_effective(user.preferences)}


def _apply(form: forms.Form, error: AccountError) -> None:
    field = (error.field or "").split(".")[-1]
    form.add_error(field if field in form.fields else None, error.message)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """Show and change one's profile; create (secret shown once) and revoke personal API tokens."""
    user: User = request.user  # type: ignore[assignment]
    by = AuditContext.from_request(request, source=AuditEntry.Source.WEB)
    profile_form, password_form, token_form = ProfileForm(initial=_initial(user)), PasswordForm(), TokenForm()
    new_token = None
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "profile":
        profile_form = ProfileForm(request.POST)
        if profile_form.is_valid():
            data = profile_form.cleaned_data
            prefs = {k: data[k] for k in ("time_zone", "theme", "export_dataset")}
            try:
                services.profile_update(
                    user=user, display_name=data["display_name"], email=data["email"], preferences=prefs, by=by
                )
                messages.success(request, "Profile saved.")
                return redirect("accounts:profile")
            except AccountError as exc:
                _apply(profile_form, exc)
    elif action == "password":
        password_form = PasswordForm(request.POST)
        if password_form.is_valid():
            try:
                services.password_change(user=user, by=by, **password_form.cleaned_data)
                update_session_auth_hash(request, user)
                revoked = user.tokens_revoked  # type: ignore[attr-defined]
                messages.success(
                    request,
                    "Password changed. Your other sessions have been signed out and "
                    f"{revoked} API token{'s' if revoked != 1 else ''} revoked.",
                )
                return redirect("accounts:profile")
            except AccountError as exc:
                _apply(password_form, exc)
    elif action == "token-create":
        token_form = TokenForm(request.POST)
        if token_form.is_valid():
            data = token_form.cleaned_data
            expires = None
            if data["expires"]:
                from datetime import datetime, time

                from django.utils import timezone

                expires = timezone.make_aware(datetime.combine(data["expires"], time.max))
            try:
                token, secret = api_token_create(
                    user=user, label=data["label"], expires=expires, read_only=data["read_only"], by=by
                )
                new_token = {"token": token, "secret": secret}
                token_form = TokenForm()
            except AccountError as exc:
                _apply(token_form, exc)
    elif action == "token-revoke":
        revoked = selectors.api_token_list(user=user).filter(pk=request.POST.get("token") or 0).first()
        if revoked is not None:
            api_token_revoke(token=revoked, by=by)
            messages.success(request, f"Token {revoked.prefix}… revoked.")
        return redirect("accounts:profile")
    context = {
        "profile_form": profile_form,
        "password_form": password_form,
        "token_form": token_form,
        "tokens": selectors.api_token_list(user=user),
        "new_token": new_token,
        "local_password": services.local_password_allowed(user),
    }
    return render(request, "accounts/profile.html", context)


class SignOutView(LogoutView):
    """Django's logout, then a "signed out" message on the sign-in page it redirects to."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            # The session is flushed; the message travels in the messages cookie (FallbackStorage).
            messages.info(request, "You have been signed out.")
        return response
