"""One trace from publish to the receiver's handler, exported over OTLP/HTTP.

The real ``hookline serve`` and the real ``hookline receive``, both with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set to a loopback collector that decodes what they send
(opentelemetry-proto). An event published with a ``traceparent`` makes, in that trace:
publish -> fan-out -> attempt (sender) -> handle (receiver), each the parent of the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.hookline_proc import ServeProcess
from tests.support.otlp_collector import OtlpCollector, ReceivedSpan
from tests.support.receive_process import ReceiveProcess

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
# OTLP's span kinds (opentelemetry.proto.trace.v1.Span.SpanKind).
INTERNAL, CLIENT, PRODUCER, CONSUMER = 1, 3, 4, 5


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as running:
        yield running


def _otel_env(collector: OtlpCollector) -> dict[str, str]:
    # Export each batch within 50 ms rather than 5 s.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    named = [s for s in spans if s.name == name]
    assert len(named) == 1, (name, spans)
    return named[0]


async def test_one_trace_from_publish_through_attempt_to_the_handler(
    collector: OtlpCollector, tmp_path: Path
) -> None:
    env = _otel_env(collector)
    async with ServeProcess(tmp_path / "sender.db", env=env) as serve, serve.api() as api:
        app = await api.create_app("traced")
        await api.install(app["id"], "store-1")
        receiver = ReceiveProcess(
            f"sqlite:///{tmp_path}/inbox.db",
            free_port(),
            tmp_path / "runs.jsonl",
            env={**env, "HOOKLINE_TEST_KEY": app["verification_key"]},
        )
        # In a thread: the event loop goes on meanwhile, and sees the server close an
        # idle keep-alive connection rather than sending the next request on it.
        await asyncio.to_thread(receiver.start)
        try:
            endpoint = await api.create_endpoint(app["id"], receiver.url, ["order_completed"])
            await api.expect(
                202,
                "POST",
                "/api/v1/events",
                json={"event_type": "order_completed", "user_id": "store-1", "data": {"id": 7}},
                headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
            )
            await eventually(
                lambda: any(s.name == "hookline handle" for s in collector.spans()),
                message=lambda: (
                    f"a handler span at the collector; have {collector.spans()}"
                    f"\n{receiver.stderr()}"
                ),
            )
        finally:
            receiver.stop()
        await eventually(
            lambda: any(s.name == "hookline attempt" for s in collector.spans()),
            message="the attempt span",
        )

    spans = [s for s in collector.spans() if s.trace_id == TRACE]
    publish = _one(spans, "hookline publish")
    fan_out = _one(spans, "hookline fan-out")
    attempt = _one(spans, "hookline attempt")
    handle = _one(spans, "hookline handle")

    # Each the parent of the next, the first a child of the publisher's own span.
    assert publish.parent_span_id == CALLER_SPAN
    assert fan_out.parent_span_id == publish.span_id
    assert attempt.parent_span_id == fan_out.span_id
    assert handle.parent_span_id == attempt.span_id
    assert [publish.kind, fan_out.kind, attempt.kind, handle.kind] == [
        PRODUCER,
        INTERNAL,
        CLIENT,
        CONSUMER,
    ]
    assert {publish.service, fan_out.service, attempt.service} == {"hookline"}
    assert handle.service == "hookline-receiver"

    # The delivery's id is the store's to choose.
    assert attempt.attributes | {"hookline.delivery_id": 0} == {
        "hookline.app_id": app["id"],
        "hookline.endpoint_id": endpoint["id"],
        "hookline.event_type": "order_completed",
        "hookline.event_id": fan_out.attributes["hookline.event_id"],
        "hookline.user_id": "store-1",
        "hookline.delivery_id": 0,
        "hookline.attempt": 1,
        "hookline.outcome": "delivered",
        "http.request.method": "POST",
        "http.response.status_code": 200,
    }
    assert fan_out.attributes["hookline.deliveries"] == 1
    assert handle.attributes["hookline.event_id"] == fan_out.attributes["hookline.event_id"]
    assert handle.attributes["hookline.endpoint_id"] == endpoint["id"]


async def test_each_attempt_of_a_retried_delivery_has_its_span(
    collector: OtlpCollector, tmp_path: Path
) -> None:
    """Without a traceparent at publish, the publish span starts the trace; a failed
    attempt's span is marked as an error and the retry is a sibling under the fan-out."""
    from tests.support.recorder import Answer, Recorder

    async with (
        Recorder() as recorder,
        ServeProcess(tmp_path / "sender.db", env=_otel_env(collector)) as serve,
        serve.api() as api,
    ):
        app = await api.create_app("traced")
        await api.install(app["id"], "store-1")
        url = recorder.script("/hook", [Answer(500)], then=Answer(200))
        await api.create_endpoint(app["id"], url, ["*"])
        await api.publish("order_completed", "store-1", {"id": 1})
        await eventually(
            lambda: len([s for s in collector.spans() if s.name == "hookline attempt"]) == 2,
            message=lambda: f"two attempt spans; have {collector.spans()}",
        )
        hits = recorder.hits("/hook")

    spans = collector.spans()
    publish = _one(spans, "hookline publish")
    fan_out = _one(spans, "hookline fan-out")
    attempts = sorted(
        (s for s in spans if s.name == "hookline attempt"),
        key=lambda s: s.attributes["hookline.attempt"],
    )
    assert publish.parent_span_id == ""
    assert {s.trace_id for s in spans} == {publish.trace_id}
    assert [a.parent_span_id for a in attempts] == [fan_out.span_id] * 2
    assert [a.attributes["hookline.attempt"] for a in attempts] == [1, 2]
    assert [a.attributes["http.response.status_code"] for a in attempts] == [500, 200]
    assert [a.status_code for a in attempts] == [2, 0]  # STATUS_CODE_ERROR, then unset
    # Each request carried its own attempt's context.
    sent = [h.headers.get("traceparent") or h.headers.get("Traceparent") for h in hits]
    assert sent == [f"00-{publish.trace_id}-{a.span_id}-01" for a in attempts]
