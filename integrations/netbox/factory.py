"""The NetBox client as configured for this installation."""

from __future__ import annotations

from django.conf import settings

from accounts.keys import KeyUnavailable, secret_get, secret_url_get
from integrations.exceptions import IntegrationNotConfigured
from integrations.netbox.client import NetboxClient, parse_extra_headers


def netbox_client() -> NetboxClient:
    """A client for the configured NetBox.

    The token (and optionally the URL) come from the global key ``netbox`` when an admin has set one, else from
    ``NETBOX_TOKEN`` / ``NETBOX_URL``; the other options from the settings.
    """
    try:
        url = netbox_url()
        token = secret_get("netbox", settings.NETBOX_TOKEN)
    except KeyUnavailable as exc:
        raise IntegrationNotConfigured(f"NetBox token unreadable: {exc}") from None
    if not url:
        raise IntegrationNotConfigured("NetBox is not configured: set NETBOX_URL and NETBOX_TOKEN.")
    if not token:
        raise IntegrationNotConfigured("NetBox token missing: set NETBOX_TOKEN or the global key 'netbox'.")
    return NetboxClient(
        url=url,
        token=token,
        verify_tls=settings.NETBOX_VERIFY_TLS,
        timeout=(min(10.0, settings.NETBOX_TIMEOUT), settings.NETBOX_TIMEOUT),
        extra_headers=parse_extra_headers(settings.NETBOX_EXTRA_HEADERS),
        page_size=settings.NETBOX_PAGE_SIZE,
        workers=settings.NETBOX_WORKERS,
        retries=settings.NETBOX_RETRIES,
        backoff=settings.NETBOX_BACKOFF,
    )


def netbox_url() -> str:
    """The effective NetBox address (the global key ``netbox``'s URL, else ``NETBOX_URL``), without a trailing slash
    or ``/api``: links to NetBox objects start with it. "" when none is set or the key store cannot be read."""
    try:
        url = secret_url_get("netbox", settings.NETBOX_URL)
    except KeyUnavailable:
        return ""
    return url.strip().rstrip("/").removesuffix("/api")


NETBOX_OBJECT_PATHS = {
    "device": "dcim/devices",
    "devices": "dcim/devices",
    "vm": "virtualization/virtual-machines",
    "vms": "virtualization/virtual-machines",
}


def netbox_object_url(*, kind: str, object_id: int | str, base: str | None = None) -> str:
    """The object's page in NetBox (``<url>/dcim/devices/<id>/`` or ``<url>/virtualization/virtual-machines/<id>/``)
    for a kind ``device``/``devices`` or ``vm``/``vms``; "" without an http(s) NetBox URL, a known kind or a
    numeric id. ``base`` saves looking the URL up again for every row of a list."""
    base = netbox_url() if base is None else base
    path = NETBOX_OBJECT_PATHS.get(kind)
    if not base.startswith(("http://", "https://")) or path is None or not str(object_id).isdigit():
        return ""
    return f"{base}/{path}/{object_id}/"
