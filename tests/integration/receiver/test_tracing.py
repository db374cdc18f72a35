"""The receiver keeps a webhook's ``traceparent`` and runs its handlers in a span that
continues that trace, on each backend; an inbox made before keeps working."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hookline.receiver import Event, Receiver
from hookline.receiver import workers as workers_module
from tests.support.eventually import eventually
from tests.support.receiver import KEY, signed_webhook

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
GIVEN = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Handler spans of this test's workers, on a provider of its own (not the global
    one, which would outlive the test)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(workers_module, "handler_tracer", lambda: provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


async def _send(receiver: Receiver, traceparent: str | None, **kwargs: object) -> None:
    headers, body = signed_webhook(**kwargs)  # type: ignore[arg-type]
    if traceparent is not None:
        headers["traceparent"] = traceparent
    receipt = await receiver.receive(headers, body)
    assert receipt.status == 200, receipt.body


async def test_handlers_run_in_a_span_continuing_the_webhooks_trace(
    database_url: str, spans: InMemorySpanExporter
) -> None:
    receiver = Receiver(keys=[KEY], database=database_url, poll_interval=0.02)
    inside: list[tuple[int, int]] = []

    @receiver.on("order_completed")
    def handle(event: Event) -> None:  # sync: runs in a worker thread, in the span too
        context = trace.get_current_span().get_span_context()
        inside.append((context.trace_id, context.span_id))
        if event.user_id == "fails":
            raise RuntimeError("the warehouse is closed")

    async with receiver.running():
        await _send(receiver, GIVEN, event_id="e1", user_id="u1")
        await _send(receiver, "00-nonsense", event_id="e2", user_id="u2")
        await _send(receiver, None, event_id="e3", user_id="u3")
        await _send(receiver, GIVEN, event_id="e4", user_id="fails")
        await eventually(lambda: len(spans.get_finished_spans()) >= 4)

    by_event = {s.attributes["hookline.event_id"]: s for s in spans.get_finished_spans()}
    first = by_event["e1"]
    assert first.name == "hookline handle" and first.kind is trace.SpanKind.CONSUMER
    assert first.context.trace_id == int(TRACE, 16)
    assert first.parent is not None and first.parent.span_id == int(PARENT, 16)
    assert first.attributes["hookline.event_type"] == "order_completed"
    assert first.attributes["hookline.attempt"] == 1
    assert (first.context.trace_id, first.context.span_id) in inside
    # An invalid traceparent, or none: a trace of its own.
    for event_id in ("e2", "e3"):
        assert by_event[event_id].parent is None
        assert by_event[event_id].context.trace_id != int(TRACE, 16)
    assert by_event["e4"].status.status_code is trace.StatusCode.ERROR


async def test_an_inbox_made_before_trace_context_is_brought_up_to_date(
    database_url: str,
) -> None:
    receiver = Receiver(keys=[KEY], database=database_url)
    await receiver.open_inbox()
    await receiver.stop()
    drop = "ALTER TABLE inbox_webhooks DROP COLUMN traceparent"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            db.execute(drop)
    else:
        conn = await asyncpg.connect(database_url)
        await conn.execute(drop)
        await conn.close()

    async with receiver.running(workers=False):
        await _send(receiver, GIVEN, event_id="e1")
        inbox = await receiver.open_inbox()
        head = await inbox.lane_head("user-1")
    assert head is not None and head.traceparent == GIVEN
