"""Fixtures for the integration tests: a NetBox-shaped server on loopback and helpers to read the samples."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.netbox import SAMPLE_HOST, FakeNetbox, sample_dir
from integrations.netbox.client import NetboxClient


@pytest.fixture
def fake_netbox() -> Iterator[FakeNetbox]:
    """A started FakeNetbox with 50 devices and 80 VMs (default token)."""
    with FakeNetbox(devices=50, vms=80) as netbox:
        yield netbox


@pytest.fixture
def make_client(fake_netbox: FakeNetbox) -> Iterator[Callable[..., NetboxClient]]:
    """Build clients for ``fake_netbox`` with test-friendly defaults (small pages, short backoff)."""
    clients: list[NetboxClient] = []

    def make(**overrides: Any) -> NetboxClient:
        options: dict[str, Any] = {
            "url": fake_netbox.url,
            "token": fake_netbox.token,
            "page_size": 20,
            "workers": 4,
            "retries": 3,
            "backoff": 0.01,
            "timeout": (2.0, 5.0),
        }
        options.update(overrides)
        client = NetboxClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def load_sample(name: str, base_url: str) -> Any:
    """A sample response with the real server's address replaced by ``base_url``."""
    text = (sample_dir() / name).read_text(encoding="utf-8")
    return json.loads(text.replace(SAMPLE_HOST, base_url))
