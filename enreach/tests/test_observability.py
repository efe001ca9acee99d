"""Metrics after real exports, JSON logs with request and run ids, secret redaction, and span nesting."""

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from enreach.logs import ContextFilter, JsonFormatter, redact
from enreach.tracing import tracing_setup
from exports.models import ExportRun
from exports.services import export_run_execute, export_run_request


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def run(**kwargs) -> ExportRun:
    export_run, _ = export_run_request(trigger="command", **kwargs)
    return export_run_execute(run=export_run)


@pytest.mark.django_db
def test_metrics_after_a_failing_and_a_succeeding_export(netbox, client):
    netbox.revoke_token()
    assert run().status == "failed"
    netbox.token = netbox_token = "0123456789abcdef0123456789abcdef01234567"
    assert netbox_token
    succeeded = run()
    assert succeeded.status == "succeeded"
    metrics = scrape(client)
    finished = metrics["enreach_export_runs_finished_total"]
    assert finished[(("outcome", "failed"), ("trigger", "command"))] == 1
    assert finished[(("outcome", "succeeded"), ("trigger", "command"))] == 1
    assert finished[(("outcome", "succeeded"), ("trigger", "api"))] == 0  # every series exists from the start
    by_status = metrics["enreach_export_runs"]  # a gauge: runs in each status now
    assert by_status == {
        (("status", "failed"),): 1,
        (("status", "succeeded"),): 1,
        (("status", "queued"),): 0,
        (("status", "running"),): 0,
    }
    requests = metrics["enreach_netbox_requests_total"]
    assert requests[(("endpoint", "dcim/devices/"), ("status", "200"))] >= 1
    assert sum(v for labels, v in requests.items() if ("status", "403") in labels) >= 1
    objects = metrics["enreach_export_objects"]
    assert objects[(("kind", "devices"),)] == 40 and objects[(("kind", "vms"),)] == 60
    assert metrics["enreach_export_last_success_timestamp_seconds"][()] == succeeded.finished.timestamp()
    # One observation per step a finished run completed (the failed run failed within its fetch).
    assert metrics["enreach_export_duration_seconds_count"][(("step", "fetch"),)] == 1
    assert metrics["enreach_export_duration_seconds_count"][(("step", "save"),)] == 1
    assert metrics["enreach_export_duration_seconds_sum"][(("step", "save"),)] == succeeded.timings["save"]
    assert metrics["enreach_queue_workers"][()] == 0  # tasks run inline here: no cluster
    assert metrics["enreach_export_queue_age_seconds"][()] == 0
    assert (("state", "queued"),) in metrics["enreach_queue_tasks"]
    assert "django_http_requests_total_by_method_total" in metrics


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


@pytest.mark.django_db
def test_json_log_lines_carry_request_id_and_user(client_for, json_log):
    client = client_for("viewer")
    response = client.get("/api/exports/runs/does-not-exist/", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-ID"] == "req-123"
    lines = json_log()
    not_found = [line for line in lines if line.get("request_id") == "req-123"]
    assert not_found and not_found[0]["user"].startswith("viewer") and not_found[0]["level"] == "WARNING"


@pytest.mark.django_db
def test_a_request_id_is_generated_when_missing_or_unsafe(client):
    generated = client.get("/api/health/")["X-Request-ID"]
    assert len(generated) == 32
    assert client.get("/api/health/", HTTP_X_REQUEST_ID="bad id\nInjected: yes")["X-Request-ID"] != "bad id"


@pytest.mark.django_db
def test_job_log_lines_carry_run_id_and_step(netbox, json_log):
    export_run = run()
    lines = [line for line in json_log() if line["logger"] == "exports.recorder"]
    assert lines and all(line["run_id"] == export_run.pk for line in lines)
    assert {line.get("step") for line in lines} >= {"lookups", "fetch", "write", "save"}


@pytest.mark.parametrize(
    "secret_line",
    [
        "Authorization: Token 0123456789abcdef0123456789abcdef01234567",
        "headers={'Authorization': 'Bearer nbt_abc123.def456'}",
        "password=hunter2hunter2",
        '{"api_key": "sk-abcdefghijklmnopqrstuv"}',
        "token ent_AbCdEfGhIjKlMnOpQrStUvWx",
        "GET /?token=supersecretvalue1&x=1",
    ],
)
def test_secrets_are_redacted(secret_line):
    cleaned = redact(secret_line)
    assert "[REDACTED]" in cleaned
    for secret in ("0123456789abcdef", "nbt_abc123", "hunter2", "sk-abcdef", "ent_AbCd", "supersecretvalue1"):
        assert secret not in cleaned


def test_configured_secrets_are_redacted_verbatim(settings, json_log):
    settings.NETBOX_TOKEN = "plain-words-but-secret"
    logging.getLogger("test").warning("connecting with %s", settings.NETBOX_TOKEN)
    line = json_log()[-1]
    assert "plain-words-but-secret" not in json.dumps(line) and "[REDACTED]" in line["message"]


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    if not tracing_setup(exporter=exporter):
        pytest.fail("tracing was configured with another exporter in this process: is OTEL_EXPORTER_OTLP_ENDPOINT set?")
    return exporter


@pytest.mark.django_db
def test_export_spans_nest_run_step_and_netbox_calls(netbox, spans):
    spans.clear()
    run()
    finished = spans.get_finished_spans()
    by_name = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    root = by_name["export.run"][0]
    fetch = by_name["export.fetch"][0]
    assert fetch.parent.span_id == root.context.span_id
    page_calls = [s for s in by_name["netbox.request"] if s.attributes["netbox.endpoint"] == "dcim/devices/"]
    assert page_calls and all(s.parent.span_id == fetch.context.span_id for s in page_calls)
    # The lookup listings run beside the fetch step, directly under the run.
    site_calls = [s for s in by_name["netbox.request"] if s.attributes["netbox.endpoint"] == "dcim/sites/"]
    assert site_calls and site_calls[0].parent.span_id == root.context.span_id
    assert all(s.context.trace_id == root.context.trace_id for s in finished if s.name.startswith(("export", "netbox")))


def server_spans(spans):
    return [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]


@pytest.mark.django_db
def test_request_span_is_named_after_the_route(client_for, spans):
    spans.clear()
    client_for("viewer").get("/api/exports/runs/")
    (server,) = server_spans(spans)
    assert server.name == "GET /api/exports/runs/"
    assert server.attributes["http.route"] == "/api/exports/runs/"
    assert server.attributes["http.status_code"] == 200


@pytest.mark.django_db
def test_an_incoming_traceparent_continues_the_callers_trace(client_for, spans):
    spans.clear()
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    client_for("viewer").get("/api/exports/runs/", HTTP_TRACEPARENT=f"00-{trace_id}-{parent_id}-01")

    (server,) = server_spans(spans)
    assert format(server.context.trace_id, "032x") == trace_id
    assert format(server.parent.span_id, "016x") == parent_id
    assert server.parent.is_remote


@pytest.mark.django_db
def test_without_a_traceparent_a_request_starts_its_own_trace(client_for, spans):
    spans.clear()
    client_for("viewer").get("/api/exports/runs/")
    (server,) = server_spans(spans)
    assert server.parent is None


@pytest.mark.django_db
def test_netbox_calls_carry_an_http_client_span_under_their_netbox_span(netbox, spans):
    spans.clear()
    run()
    finished = spans.get_finished_spans()
    netbox_spans = {s.context.span_id: s for s in finished if s.name == "netbox.request"}
    clients = [s for s in finished if s.kind == SpanKind.CLIENT]
    assert clients and netbox_spans
    assert all(s.parent is not None and s.parent.span_id in netbox_spans for s in clients if s.name == "GET")


@pytest.mark.django_db
def test_a_path_beyond_latin_1_is_traced_not_a_server_error(client_for, spans):
    spans.clear()
    response = client_for("admin").get("/api/admin/keys/%C2%82%C3%998%F3%B0%BB%A5/")
    assert response.status_code == 404
    (server,) = server_spans(spans)
    assert server.attributes["http.status_code"] == 404
