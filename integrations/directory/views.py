"""The sign-in and sign-out pages and the single sign-on doors (thin: the protocol is ``oidc``, what it means for
a user is ``accounts.directory``). Authlib is imported only when single sign-on is used."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET

from accounts.backends import sign_in_attempt
from accounts.directory import DirectoryRefused, sign_in_refused_record
from accounts.models import User
from accounts.throttling import client_ip
from accounts.views import SignOutView
from integrations.directory.config import oidc_configured, provider_name
from integrations.directory.errors import SignInError

BACKEND = "integrations.directory.backends.OIDCBackend"
SESSION_ID_TOKEN = "oidc_id_token"
SESSION_NEXT = "oidc_next"
ATTEMPT_ACCOUNT = "(single sign-on)"


def _error_page(request: HttpRequest, error: SignInError) -> HttpResponse:
    context = {"provider": provider_name(), "message": error.message, "code": error.code}
    return render(request, "registration/sign_in_error.html", context, status=error.status)


class SignInView(LoginView):
    """Django's sign-in page, with the "Sign in with <provider>" button when single sign-on is configured."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if oidc_configured():
            url = reverse("oidc_login")
            next_url = self.get_redirect_url()
            context["sso"] = {
                "name": provider_name(),
                "url": f"{url}?{urlencode({'next': next_url})}" if next_url else url,
            }
        return context


@require_GET
def oidc_login(request: HttpRequest) -> HttpResponse:
    """Start single sign-on: to the provider, with state, nonce and a PKCE challenge."""
    if not oidc_configured():
        raise Http404("Single sign-on is not configured.")
    from integrations.directory.oidc import oidc_authorize_redirect

    next_url = request.GET.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        request.session[SESSION_NEXT] = next_url
    else:
        request.session.pop(SESSION_NEXT, None)
    try:
        return oidc_authorize_redirect(request, redirect_uri=request.build_absolute_uri(reverse("oidc_callback")))
    except SignInError as error:
        return _error_page(request, error)


@require_GET
def oidc_callback(request: HttpRequest) -> HttpResponse:
    """The provider sends the browser back here with a code (or an error): validate, map to a role, sign in."""
    if not oidc_configured():
        raise Http404("Single sign-on is not configured.")
    from integrations.directory.oidc import oidc_callback_identity

    ip = client_ip(request) or None
    try:
        attempt = sign_in_attempt(request, ATTEMPT_ACCOUNT)
    except PermissionDenied:
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))  # the message waits on the sign-in page
    try:
        identity, id_token = oidc_callback_identity(request)
    except SignInError as error:
        sign_in_refused_record(username=ATTEMPT_ACCOUNT, source=User.Source.OIDC, code=error.code, ip=ip)
        return _error_page(request, error)
    try:
        user = authenticate(request, oidc_identity=identity)
    except DirectoryRefused as refused:
        sign_in_refused_record(username=identity.username, source=User.Source.OIDC, code=refused.code, ip=ip)
        attempt.succeeded()  # the provider vouched for the person: the refusal is ours, not a guess
        return _error_page(request, SignInError(refused.message, status=403, code=refused.code))
    if user is None:
        return _error_page(request, SignInError("Single sign-on is off.", status=403, code="backend_off"))
    attempt.succeeded()
    next_url = request.session.pop(SESSION_NEXT, "")
    login(request, user, backend=BACKEND)
    request.session[SESSION_ID_TOKEN] = id_token
    return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))


class SingleSignOutView(SignOutView):
    """Sign out here, then at the provider too (RP-initiated logout) when the session came from single sign-on and
    the provider advertises an ``end_session_endpoint``; the provider sends the browser back to the sign-in page."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        id_token = request.session.get(SESSION_ID_TOKEN, "")
        response = super().post(request, *args, **kwargs)
        if not (id_token and oidc_configured() and settings.OIDC_LOGOUT):
            return response
        from integrations.directory.oidc import oidc_end_session_url

        try:
            url = oidc_end_session_url(
                id_token=id_token, post_logout_redirect_uri=request.build_absolute_uri(resolve_url(settings.LOGIN_URL))
            )
        except SignInError:
            messages.warning(request, f"You are signed out here, but {provider_name()} could not be reached.")
            return response
        if not url:
            return response
        # Not a redirect: the sign-out form's POST may not be redirected to another site (CSP form-action 'self').
        context = {"provider": provider_name(), "end_session_url": url}
        return render(request, "registration/signed_out_provider.html", context)
