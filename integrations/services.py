"""Integration services shared by the doors (commands, API, pages)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from integrations.netbox.factory import netbox_client


def netbox_status_get() -> dict[str, Any]:
    """NetBox's version, whether our token works, and how many devices and VMs it holds.

    Raises ``IntegrationError`` subclasses with an operator-readable reason.
    """
    with netbox_client() as client:
        status = client.status()
        return {
            "url": client.url,
            "demo": settings.NETBOX_DEMO,
            "netbox_version": status.get("netbox-version") or status.get("netbox-full-version") or "unknown",
            "python_version": status.get("python-version", ""),
            "plugins": sorted(status.get("plugins") or {}),
            "token": "valid",
            "devices": client.count("devices"),
            "virtual_machines": client.count("virtual_machines"),
            "requests": client.request_count,
        }
