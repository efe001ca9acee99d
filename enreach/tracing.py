"""OpenTelemetry tracing, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (or a test passes an exporter).

Switched on, ``tracing_setup`` installs OpenTelemetry's own instrumentation: Django's (one server span per request,
named after the matched route, e.g. ``GET /api/exports/runs/``; an incoming W3C ``traceparent`` header continues
the caller's trace) and requests' (one client span per outgoing HTTP call: NetBox, Confluence). Ours add the
export run, its steps and each NetBox call (``netbox.request``) through ``span``; threads that fetch pages run in a
copy of the caller's context, so their spans nest under the step that started them. Switched off, every span is
OpenTelemetry's no-op span and neither Django nor requests is instrumented: nothing is recorded or sent. The
standard ``OTEL_*`` variables apply (e.g. ``OTEL_PYTHON_DJANGO_EXCLUDED_URLS=health,metrics``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from opentelemetry import trace

_configured = False


def tracing_setup(*, service_name: str = "enreach-tools", exporter: Any = None) -> bool:
    """Install a tracer provider exporting to OTLP/HTTP (or to ``exporter``, for tests) and instrument Django and
    requests. Call before the first request is handled (``EnreachConfig.ready``). Returns whether tracing is on."""
    global _configured
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if _configured or (exporter is None and not endpoint):
        return _configured
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
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
    _collect_wsgi_path_as_wsgi_does()
    # Django's adds its middleware to settings.MIDDLEWARE: handlers built from now on trace every request.
    DjangoInstrumentor().instrument(tracer_provider=provider, response_hook=_name_after_route)
    RequestsInstrumentor().instrument(tracer_provider=provider)
    _configured = True
    return True


def _collect_wsgi_path_as_wsgi_does() -> None:
    """Let Django's instrumentation read a path with characters beyond Latin-1 instead of failing the request.

    Django puts the decoded path in ``request.META["PATH_INFO"]``; the instrumentation quotes it as WSGI's
    bytes-as-Latin-1 and raised UnicodeEncodeError (a 500) on ``/api/admin/keys/\U000f0ee5/``, which schemathesis
    found. It gets the path back in WSGI's form (UTF-8 bytes read as Latin-1), as a WSGI server hands it over.
    """
    from opentelemetry.instrumentation.django.middleware import otel_middleware

    collect = otel_middleware.wsgi_collect_request_attributes
    if getattr(collect, "enreach_wsgi_path", False):
        return

    def collect_wsgi_path(environ: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if isinstance(path, str) and not path.isascii():
            environ = {**environ, "PATH_INFO": path.encode("utf-8", "surrogateescape").decode("latin-1")}
        return collect(environ, *args, **kwargs)

    collect_wsgi_path.enreach_wsgi_path = True  # type: ignore[attr-defined]
    otel_middleware.wsgi_collect_request_attributes = collect_wsgi_path


def _name_after_route(current: trace.Span, request: HttpRequest, response: HttpResponse) -> None:
    """Name the server span ``GET /api/exports/runs/``: Django's instrumentation keeps a router's regex anchors
    (``api/exports/runs/$``) and drops the leading slash."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route and current.is_recording():
        route = "/" + match.route.replace("^", "").replace("$", "")
        current.update_name(f"{request.method} {route}")
        current.set_attribute("http.route", route)


def tracer() -> trace.Tracer:
    return trace.get_tracer("enreach")


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span named ``name`` under the current one; exceptions are recorded and re-raised."""
    with tracer().start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None}) as s:
        yield s
