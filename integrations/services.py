"""Integration services shared by the doors (commands, API, pages)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from integrations.caching import named_cache
from integrations.netbox.factory import netbox_client


def netbox_status_get() -> dict[str, Any]:
    """NetBox's version, whether our token works, and how many devices and VMs it holds.

    Raises ``IntegrationError`` subclasses with an operator-readable reason.
    """
    with netbox_client() as client:
        try:
            status = client.status()
            devices, vms = client.count("devices"), client.count("virtual_machines")
        finally:
            client.flush_metrics()
        return {
            "url": client.url,
            "demo": settings.NETBOX_DEMO,
            "netbox_version": status.get("netbox-version") or status.get("netbox-full-version") or "unknown",
            "python_version": status.get("python-version", ""),
            "plugins": sorted(status.get("plugins") or {}),
            "token": "valid",
            "devices": devices,
            "virtual_machines": vms,
            "requests": client.request_count,
        }


def netbox_status_cached() -> dict[str, Any]:
    """``netbox_status_get`` through the ``netbox`` named cache (pages poll it; NetBox need not answer each time)."""
    return named_cache("netbox").get_or_load("status", netbox_status_get)
