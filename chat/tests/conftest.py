"""Fixtures for the chat tests: a provider on loopback and a real latest export."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.llm import FakeLlm
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request


@pytest.fixture
def llm(settings) -> Iterator[FakeLlm]:
    """An OpenAI-compatible provider on loopback, configured as the chat provider (no retries, short timeout)."""
    with FakeLlm() as server:
        settings.CHAT_API_BASE_URL = server.url
        settings.CHAT_API_KEY = server.api_key
        settings.CHAT_MODEL = "gpt-test"
        settings.CHAT_TEMPERATURE = 0.3
        settings.CHAT_TIMEOUT = 2.0
        settings.CHAT_MAX_RETRIES = 0
        yield server


@pytest.fixture
def no_provider(settings) -> None:
    settings.CHAT_API_BASE_URL = ""
    settings.CHAT_API_KEY = ""


@pytest.fixture
def export(netbox, db) -> ExportRun:
    """A successful export of the fake NetBox (40 devices, 60 VMs): the CMDB the assistant's tools read."""
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    return run
