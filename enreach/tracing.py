"""OpenTelemetry tracing, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Without it every span below is OpenTelemetry's no-op span: nothing is recorded or sent. Spans cover requests
(``TracingMiddleware``), export steps and NetBox/Confluence calls; threads that fetch pages run in a copy of the
caller's context, so their spans nest under the step that started them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from opentelemetry import trace

_configured = False


def tracing_setup(*, service_name: str = "enreach-tools", exporter: Any = None) -> bool:
    """Install a tracer provider exporting to OTLP/HTTP (or to ``exporter``, for tests). Returns whether on."""
    global _configured
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if _configured or (exporter is None and not endpoint):
        return _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def tracer() -> trace.Tracer:
    return trace.get_tracer("enreach")


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span named ``name`` under the current one; exceptions are recorded and re-raised."""
    with tracer().start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None}) as s:
        yield s


class TracingMiddleware:
    """One server span per request, named after the matched route."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with tracer().start_as_current_span(
            f"{request.method} {request.path}",
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": request.method or "", "url.path": request.path},
        ) as current:
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            if match is not None and match.route:
                route = "/" + match.route.replace("^", "").replace("$", "")
                current.update_name(f"{request.method} {route}")
                current.set_attribute("http.route", route)
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                current.set_status(trace.StatusCode.ERROR)
            return response
