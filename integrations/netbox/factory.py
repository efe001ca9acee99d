"""The NetBox client as configured for this installation."""

from __future__ import annotations

from django.conf import settings

from integrations.exceptions import IntegrationNotConfigured
from integrations.netbox.client import NetboxClient, parse_extra_headers


def netbox_client() -> NetboxClient:
    """A client for the configured NetBox (``NETBOX_URL``, ``NETBOX_TOKEN`` and friends)."""
    if not settings.NETBOX_URL:
        raise IntegrationNotConfigured("NetBox is not configured: set NETBOX_URL and NETBOX_TOKEN.")
    if not settings.NETBOX_TOKEN:
        raise IntegrationNotConfigured("NetBox token missing: set NETBOX_TOKEN.")
    return NetboxClient(
        url=settings.NETBOX_URL,
        token=settings.NETBOX_TOKEN,
        verify_tls=settings.NETBOX_VERIFY_TLS,
        timeout=(min(10.0, settings.NETBOX_TIMEOUT), settings.NETBOX_TIMEOUT),
        extra_headers=parse_extra_headers(settings.NETBOX_EXTRA_HEADERS),
        page_size=settings.NETBOX_PAGE_SIZE,
        workers=settings.NETBOX_WORKERS,
        retries=settings.NETBOX_RETRIES,
        backoff=settings.NETBOX_BACKOFF,
    )
