"""Fixtures of the notification tests: a real SMTP server (aiosmtpd) and a webhook receiver checking signatures,
both on loopback, and short retry delays."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from accounts.models import User
from devtools.smtp import SmtpServer
from devtools.webhook import WebhookReceiver
from notifications import services
from notifications.models import Channel, Subscription

SECRET = "whsec-test-4f1c9a7e2b"


def mail_to(settings: Any, host: str, port: int) -> None:
    """Send Django's e-mail through the SMTP server at host:port (pytest-django starts tests on locmem)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = host, port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""


@pytest.fixture(autouse=True)
def _step_as_the_test_says(request: pytest.FixtureRequest) -> Iterator[None]:
    """Most tests call ``services.run_finished`` themselves, to hold its deliveries in
    ``django_capture_on_commit_callbacks``: the app's after-run step is off for them, back afterwards. A test that
    asks for ``through_the_registry`` keeps it, and sees what the export core's announcement does."""
    from exports import afterrun

    if "through_the_registry" in request.fixturenames:
        yield
        return
    step = afterrun.unregister("notifications")
    yield
    if step is not None:
        afterrun._registry[step.name] = step


@pytest.fixture
def through_the_registry() -> None:
    """Keep the notifications app's after-run step registered (see ``_step_as_the_test_says``)."""


@pytest.fixture(autouse=True)
def _notify_settings(settings: Any) -> None:
    settings.NOTIFY_TIMEOUT = 5.0
    settings.EMAIL_TIMEOUT = 5
    settings.NOTIFY_RETRY_BACKOFF = 60.0
    settings.ENREACH_BASE_URL = "https://cmdb.example.test"


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        mail_to(settings, server.host, server.port)
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as server:
        yield server


@pytest.fixture
def webhook_channel(receiver: WebhookReceiver) -> Callable[..., Channel]:
    def make(name: str = "ops-hook", format: str = "generic") -> Channel:
        return services.channel_save(name=name, kind="webhook", target=receiver.url, secret=SECRET, format=format)

    return make


@pytest.fixture
def subscribe() -> Callable[..., Subscription]:
    """``subscribe(user, "export.failed", channel=None, **filter)``: through the service, as the API does."""

    def make(user: User, event: str, channel: Channel | None = None, **flt: Any) -> Subscription:
        return services.subscription_save(by=user, event=event, channel=channel, flt=flt)

    return make
