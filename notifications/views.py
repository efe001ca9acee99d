"""The profile page's notifications section: subscribe oneself, unsubscribe (POST, then back to the profile)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import User
from notifications import selectors, services
from notifications.errors import NotificationError
from notifications.forms import SubscriptionForm


def _back() -> HttpResponse:
    return redirect(reverse("accounts:profile") + "#notifications")


@login_required
@require_POST
def subscribe(request: HttpRequest) -> HttpResponse:
    """Subscribe the signed-in user (their own e-mail) to an event."""
    user: User = request.user  # type: ignore[assignment]
    form = SubscriptionForm(request.POST, user=user)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(str(e) for e in errs)}" for name, errs in form.errors.items())
        messages.error(request, f"Not subscribed: {errors}")
        return _back()
    try:
        subscription = services.subscription_save(by=user, event=form.cleaned_data["event"], flt=form.filter())
    except NotificationError as exc:
        messages.error(request, f"Not subscribed: {exc.message}")
        return _back()
    messages.success(request, f"Subscribed to {subscription.get_event_display().lower()}.")
    return _back()


@login_required
@require_POST
def unsubscribe(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete one of the signed-in user's own subscriptions."""
    user: User = request.user  # type: ignore[assignment]
    subscription = selectors.subscription_list(user=user).filter(pk=pk, user=user).first()
    if subscription is not None:
        services.subscription_delete(subscription=subscription, by=user)
        messages.success(request, "Unsubscribed.")
    return _back()
