"""``{% notifications_profile %}``: the profile page's "Notifications" section (one's own subscriptions)."""

from __future__ import annotations

from typing import Any

from django import template

from notifications import selectors
from notifications.forms import SubscriptionForm

register = template.Library()


@register.inclusion_tag("notifications/includes/profile_section.html", takes_context=True)
def notifications_profile(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    user = request.user
    subscriptions = list(selectors.subscription_list(user=user).filter(user=user, channel__isnull=True))
    deliveries = list(selectors.delivery_list(user=user).filter(user=user, channel__isnull=True)[:10])
    for subscription in subscriptions:
        subscription.filter_items = [  # type: ignore[attr-defined]
            f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
            for key, value in subscription.filter.items()
        ]
    return {
        "request": request,
        "user": user,
        "csrf_token": context.get("csrf_token"),
        "subscriptions": subscriptions,
        "deliveries": deliveries,
        "form": context.get("notification_form") or SubscriptionForm(user=user),
    }
