"""The handlers' OpenTelemetry span: a child of the trace context the webhook came with.

A webhook's handlers run later, in a worker, so the request's ``traceparent`` is kept with
the webhook in the inbox; each run of its handlers is one ``hookline handle`` span whose
parent it names, current while the handlers run (their own spans, a database call or an
HTTP request the app makes, become its children).

The receiver lives in the app's process and uses the app's OpenTelemetry: the global
tracer provider (set by the app, or by ``opentelemetry-instrument``). ``hookline receive``
sets one from the ``OTEL_*`` variables where an OTLP endpoint is configured
(``configure_from_env``). Where OpenTelemetry is not installed, or nothing set a
provider, workers get no tracer and run handlers as before.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hookline import __version__, otel

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from hookline.receiver.event import Event

SERVICE_NAME = "hookline-receiver"


def configure_from_env() -> TracerProvider | None:
    """Where an OTLP endpoint is configured and no provider is set yet, set one that
    exports there; return it (to shut down at exit), or None."""
    if not otel.configured():
        return None
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None  # the app set its own
    provider = otel.provider_from_env(SERVICE_NAME)
    if provider is not None:
        trace.set_tracer_provider(provider)
    return provider


def handler_tracer() -> Tracer | None:
    """The tracer for handler spans, or None where nothing would record them."""
    if "opentelemetry.trace" not in sys.modules:
        return None  # nothing imported OpenTelemetry, so nothing set a provider
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None  # no provider set: every span would be a no-op
    return trace.get_tracer("hookline.receiver", __version__)


@contextlib.contextmanager
def handler_span(tracer: Tracer, traceparent: str | None, event: Event) -> Iterator[None]:
    """The span of one run of ``event``'s handlers; an exception marks it failed."""
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
        "hookline handle",
        context=otel.context_of(traceparent),
        kind=SpanKind.CONSUMER,
        attributes={
            "hookline.event_type": event.event_type,
            "hookline.event_id": event.event_id,
            "hookline.user_id": event.user_id,
            "hookline.endpoint_id": event.webhook_id,
            "hookline.inbox_id": event.inbox_id,
            "hookline.attempt": event.attempt,
        },
    ):
        yield


__all__ = ["configure_from_env", "handler_span", "handler_tracer"]
