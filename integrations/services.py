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


def netbox_custom_fields_get() -> dict[str, dict[str, str]]:
    """NetBox's custom fields by object type (``dcim.device``...): ``{object type: {name: type}}``."""
    with netbox_client() as client:
        try:
            definitions = client.fetch_custom_fields()
        finally:
            client.flush_metrics()
    by_type: dict[str, dict[str, str]] = {}
    for definition in definitions:
        for object_type in definition.object_types:
            by_type.setdefault(object_type, {})[definition.name] = definition.type
    return by_type


def netbox_custom_fields_cached() -> dict[str, dict[str, str]]:
    """``netbox_custom_fields_get`` through the ``netbox_custom_fields`` named cache (checking a column set asks
    NetBox once per TTL, not once per save or preview)."""
    return named_cache("netbox_custom_fields").get_or_load("all", netbox_custom_fields_get)
