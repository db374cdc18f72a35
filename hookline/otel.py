"""OpenTelemetry's SDK, set up from the standard ``OTEL_*`` variables, only when asked.

Tracing is on where an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and the SDK is not disabled
(``OTEL_SDK_DISABLED=true``, ``OTEL_TRACES_EXPORTER=none``). Everything else the SDK
reads itself: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, the exporter's headers,
timeout and compression, the sampler, the batch processor's sizes and delays.

Where tracing is off, nothing of OpenTelemetry is imported: ``configured`` only reads the
environment. The SDK and the OTLP/HTTP exporter come with ``pip install
'hookline[tracing]'``; asking for tracing without them stops the process at its start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hookline.exceptions import ConfigError
from hookline.traceparent import format_traceparent

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces to be exported."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINTS)


def provider_from_env(
    service_name: str, env: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """A tracer provider exporting over OTLP/HTTP in batches, or None where tracing is
    off. ``service_name`` applies unless ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``) names the service."""
    env = os.environ if env is None else env
    if not configured(env):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"an OTLP endpoint is configured ({' or '.join(ENDPOINTS)}) but OpenTelemetry "
            f"is not installed ({exc.name}): pip install 'hookline[tracing]'"
        ) from None
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {"service.name": service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def context_of(traceparent: str | None) -> Context | None:
    """The remote parent a (checked) ``traceparent`` names, or None for a new trace."""
    if traceparent is None:
        return None
    from opentelemetry import trace

    _, trace_id, span_id, flags = traceparent.split("-")
    parent = trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(int(flags, 16)),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def traceparent_of(span: Span) -> str:
    """The ``traceparent`` that makes the receiving side's span a child of ``span``."""
    context = span.get_span_context()
    return format_traceparent(context.trace_id, context.span_id, context.trace_flags.sampled)


__all__ = ["configured", "context_of", "provider_from_env", "traceparent_of"]
