"""The shipped Grafana dashboard and alert rules only use metrics that /metrics really exposes."""

import json
import re
from pathlib import Path

import pytest
import yaml

from enreach.metrics import COUNTERS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OURS = {name for name in COUNTERS} | {
    "enreach_export_runs",
    "enreach_export_runs_finished_total",
    "enreach_export_runs_abandoned_total",
    "enreach_export_duration_seconds_bucket",
    "enreach_export_objects",
    "enreach_export_last_success_timestamp_seconds",
    "enreach_queue_tasks",
    "enreach_queue_workers",
    "enreach_export_queue_age_seconds",
}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(enreach_[a-z_]+)", expr))


def test_dashboard_and_alerts_reference_only_our_metrics():
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus-alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = set().union(*(metric_names(expr) for expr in exprs))
    assert used and used <= OURS, used - OURS
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"EnreachExportStale", "EnreachExportFailing", "EnreachQueueNoWorkers", "EnreachExportQueued"} <= alerts


@pytest.mark.django_db
def test_our_metric_names_are_exposed(netbox, client):
    from exports.services import export_run_execute, export_run_request
    from integrations.caching import named_cache

    run, _ = export_run_request(trigger="api")
    export_run_execute(run=run)
    named_cache("netbox").get_or_load("probe", lambda: 1)
    exposed = client.get("/metrics").content.decode()
    for name in OURS - {"enreach_confluence_requests_total"}:
        assert re.search(rf"^{name}[{{ ]", exposed, re.MULTILINE), name
