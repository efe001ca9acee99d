"""Fixtures for the CMDB tests: a real export of the fake NetBox, and a clean table cache per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cmdb.selectors import cmdb_tables_clear
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request


@pytest.fixture(autouse=True)
def _fresh_tables() -> Iterator[None]:
    cmdb_tables_clear()
    yield
    cmdb_tables_clear()


@pytest.fixture
def export(netbox, db) -> ExportRun:
    """A successful export of the fake NetBox (40 devices, 60 VMs)."""
    run, _ = export_run_request(trigger=ExportRun.Trigger.COMMAND)
    run = export_run_execute(run=run)
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    return run
