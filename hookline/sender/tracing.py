"""The sender's OpenTelemetry spans: publish, then each event's fan-out, then each attempt.

    publish (producer)               one per API request, child of the caller's traceparent
      fan-out (internal)             one per event: its deliveries; kept with the event
        attempt (client)             one per attempt of each delivery, sent as traceparent
          ... the receiver's handler span, child of the attempt

The fan-out span's context is what the event stores as its ``traceparent``, so every
attempt, in any process and however much later, is a child of it; the attempt's own
context is the ``traceparent`` header of its request. This module is imported only where
tracing is configured (``hookline.otel.configured``): where it is off, the API and the
engine hold None and pay one comparison per publish and per attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from hookline import __version__, otel
from hookline.otel import context_of, traceparent_of
from hookline.store import AttemptResult, Job, NewEvent, Published

SERVICE_NAME = "hookline"


class SenderTracing:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("hookline.sender", __version__)

    @classmethod
    def from_env(cls) -> SenderTracing | None:
        provider = otel.provider_from_env(SERVICE_NAME)
        return None if provider is None else cls(provider)

    def shutdown(self) -> None:
        """Export what is left (the batch processor waits for its last export)."""
        self.provider.shutdown()

    # -- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        events: Sequence[NewEvent],
        parent: str | None,
        store: Callable[[Sequence[NewEvent]], Awaitable[list[Published]]],
    ) -> list[Published]:
        """``store(events)`` inside a publish span (child of the request's ``parent``),
        each event with a fan-out span whose context it is stored with. An event that
        came with a trace context of its own fans out in that trace instead."""
        attributes: dict[str, str | int] = {"hookline.events": len(events)}
        if len(events) == 1:
            attributes["hookline.event_type"] = events[0].event_type
        with self._tracer.start_as_current_span(
            "hookline publish",
            context=context_of(parent),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        ) as publish_span:
            here = trace.set_span_in_context(publish_span)
            spans = [
                self._tracer.start_span(
                    "hookline fan-out",
                    context=here if e.traceparent == parent else context_of(e.traceparent),
                    attributes={
                        "hookline.event_id": e.id,
                        "hookline.event_type": e.event_type,
                        "hookline.user_id": e.user_id,
                    },
                )
                for e in events
            ]
            traced = [
                replace(e, traceparent=traceparent_of(span))
                for e, span in zip(events, spans, strict=True)
            ]
            try:
                published = await store(traced)
            except BaseException as exc:
                for span in spans:
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    span.end()
                raise
            for span, outcome in zip(spans, published, strict=True):
                span.set_attribute("hookline.deliveries", outcome.deliveries)
                span.set_attribute("hookline.duplicate", outcome.duplicate)
                span.end()
        return published

    # -- attempts -------------------------------------------------------------------------

    def start_attempt(self, job: Job) -> tuple[Job, Span]:
        """The attempt's span, child of its event's fan-out, and the job carrying its
        context (the request's ``traceparent``)."""
        span = self._tracer.start_span(
            "hookline attempt",
            context=context_of(job.traceparent),
            kind=SpanKind.CLIENT,
            attributes={
                "hookline.app_id": job.app_id,
                "hookline.endpoint_id": job.endpoint_id,
                "hookline.event_type": job.event_type,
                "hookline.event_id": job.event_id,
                "hookline.user_id": job.user_id,
                "hookline.delivery_id": job.delivery_id,
                "hookline.attempt": job.attempts + 1,
                "http.request.method": "POST",
            },
        )
        return replace(job, traceparent=traceparent_of(span)), span

    def end_attempt(self, span: Span, result: AttemptResult) -> None:
        span.set_attribute("hookline.outcome", result.outcome)
        if result.status_code is not None:
            span.set_attribute("http.response.status_code", result.status_code)
        if result.outcome != "delivered":
            span.set_status(Status(StatusCode.ERROR, result.error or ""))
        span.end()


__all__ = ["SenderTracing"]
