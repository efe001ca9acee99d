"""Our counters are prometheus_client counters: summed over processes in multiprocess mode, labelled right."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from integrations.caching import named_cache

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_counts_of_separate_processes_add_up_in_one_scrape(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enreach.settings",
        "DEBUG": "true",
        "ENREACH_VAR_DIR": str(tmp_path / "var"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    count = (
        "import django; django.setup(); from enreach.metrics import counter_add;"
        "counter_add('enreach_netbox_requests_total', {{'endpoint': 'dcim/devices/', 'status': '200'}}, {n})"
    )
    _run(count.format(n=3), env)  # say, a queue worker
    _run(count.format(n=4), env)  # and a web worker
    scrape = _run(
        "import django; django.setup(); from enreach.metrics import metrics_exposition;"
        "print(metrics_exposition().decode())",
        env,
    )
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }
    key = ("enreach_netbox_requests_total", (("endpoint", "dcim/devices/"), ("status", "200")))
    assert samples[key] == 7


@pytest.mark.django_db
def test_cache_misses_are_labelled_miss(client):
    cache = named_cache("labels-test")
    cache.invalidate()
    cache.get_or_load("k", lambda: 1)
    cache.get_or_load("k", lambda: 1)
    text = client.get("/metrics").content.decode()
    assert 'enreach_cache_events_total{cache="labels-test",event="miss"} 1.0' in text
    assert 'enreach_cache_events_total{cache="labels-test",event="hit"} 1.0' in text
    assert 'event="misse"' not in text
