"""The Confluence client as configured for this installation."""

from __future__ import annotations

from django.conf import settings

from accounts.keys import KeyUnavailable, secret_get, secret_url_get
from integrations.confluence.client import ConfluenceClient
from integrations.exceptions import IntegrationNotConfigured


def confluence_configured() -> bool:
    """True when a base URL and at least one page id are set (the token is checked when the client is built)."""
    pages = (settings.CONFLUENCE_CMDB_PAGE_ID, settings.CONFLUENCE_DEVICES_PAGE_ID, settings.CONFLUENCE_VMS_PAGE_ID)
    try:
        url = secret_url_get("atlassian", settings.ATLASSIAN_BASE_URL)
    except KeyUnavailable:
        url = settings.ATLASSIAN_BASE_URL
    return bool(url) and any(pages)


def confluence_client() -> ConfluenceClient:
    """A client for the configured Confluence: token and URL from the global key ``atlassian`` when set, else
    ``ATLASSIAN_API_TOKEN`` / ``ATLASSIAN_BASE_URL``; Cloud basic auth when ``ATLASSIAN_EMAIL`` is set."""
    try:
        url = secret_url_get("atlassian", settings.ATLASSIAN_BASE_URL)
        token = secret_get("atlassian", settings.ATLASSIAN_API_TOKEN)
    except KeyUnavailable as exc:
        raise IntegrationNotConfigured(f"Confluence token unreadable: {exc}") from None
    if not url:
        raise IntegrationNotConfigured("Confluence is not configured: set ATLASSIAN_BASE_URL.")
    if not token:
        raise IntegrationNotConfigured(
            "Confluence token missing: set ATLASSIAN_API_TOKEN or the global key 'atlassian'."
        )
    return ConfluenceClient(
        url,
        token,
        email=settings.ATLASSIAN_EMAIL,
        timeout=settings.ATLASSIAN_TIMEOUT,
        retries=settings.ATLASSIAN_RETRIES,
        backoff=settings.ATLASSIAN_BACKOFF,
        verify_tls=settings.ATLASSIAN_VERIFY_TLS,
    )
