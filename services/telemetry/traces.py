"""OpenTelemetry traces: a request's span on the API, carried through the queue in its job (W3C ``traceparent``),
and the provider call's span on the worker, with the GenAI semantic conventions' ``gen_ai.*`` attributes.

Switched on by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) sends them
over OTLP/HTTP; ``OTEL_TRACES_EXPORTER`` picks ``otlp``, ``console`` (one JSON object per span on stdout) or
``none``; ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_HEADERS`` and the batch
processor's ``OTEL_BSP_*`` are read as the SDK reads them. Unset, tracing is off and free: the SDK is never
loaded and no span is made (``tracer()`` is None, and every caller checks it first).
"""

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from shared.config import SettingsError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Tracer

__all__ = ["configure_tracing", "current_traceparent", "parent_context", "tracer"]

_tracer: "Tracer | None" = None


def tracer() -> "Tracer | None":
    """The process's tracer, or None when tracing is off."""
    return _tracer


def configure_tracing(service: str, environ: Mapping[str, str]) -> "Tracer | None":
    """Set up the process's tracer from the ``OTEL_*`` variables (``service``: the default ``service.name``)."""
    global _tracer  # noqa: PLW0603 - one tracer provider per process, as OpenTelemetry has it
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or ("otlp" if endpoint else "none")
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or exporter == "none":
        _tracer = None
        return None
    if exporter not in {"otlp", "console"}:
        raise SettingsError(f"OTEL_TRACES_EXPORTER={exporter!r}: Conduit exports traces to otlp, console or none")
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create({SERVICE_NAME: environ.get("OTEL_SERVICE_NAME") or service})
    provider = TracerProvider(resource=resource)
    spans: SpanExporter
    if exporter == "console":
        spans = ConsoleSpanExporter(out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n")
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        spans = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(spans))
    _tracer = provider.get_tracer("conduit")
    return _tracer


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the span now current (what a job carries to its worker); empty when off."""
    if _tracer is None:
        return ""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def parent_context(headers: Mapping[str, str]) -> "Context":
    """The context a W3C ``traceparent`` (and ``tracestate``) names: a span's parent from another process."""
    from opentelemetry import propagate

    return propagate.extract(headers)
