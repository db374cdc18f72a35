"""A ``traceparent`` given at publish goes on to every delivery of the event.

Here the sender itself does not trace (no OTLP endpoint is configured): it passes the
caller's trace context on unchanged, as W3C asks of a participant that adds no span.
With tracing on, see tests/acceptance/test_tracing.py.
"""

from __future__ import annotations

from typing import Any

from tests.support.hookline_proc import Api
from tests.support.recorder import Hit, Recorder

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GIVEN = f"00-{TRACE}-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def traceparent(hit: Hit) -> str | None:
    found = [v for k, v in hit.headers.items() if k.lower() == "traceparent"]
    assert len(found) <= 1
    return found[0] if found else None


async def _endpoint(api: Api, recorder: Recorder, users: list[str]) -> dict[str, Any]:
    app = await api.create_app("traced")
    for user in users:
        await api.install(app["id"], user)
    await api.create_endpoint(app["id"], recorder.url("/a"), ["*"])
    await api.create_endpoint(app["id"], recorder.url("/b"), ["*"])
    return app


def _event(event_id: str, user: str = "store-1", **extra: Any) -> dict[str, Any]:
    return {"event_type": "order_completed", "user_id": user, "data": {"id": 1}} | {
        "event_id": event_id,
        **extra,
    }


async def test_a_traceparent_header_reaches_every_delivery_unchanged(
    api: Api, recorder: Recorder
) -> None:
    await _endpoint(api, recorder, ["store-1"])
    await api.expect(
        202, "POST", "/api/v1/events", json=_event("e1"), headers={"traceparent": GIVEN}
    )
    await recorder.wait_for(lambda: len(recorder.hits()) == 2)
    assert [traceparent(h) for h in recorder.hits()] == [GIVEN, GIVEN]
    stored = await api.expect(200, "GET", "/api/v1/events/e1")
    assert stored["traceparent"] == GIVEN


async def test_an_invalid_traceparent_is_ignored_and_not_stored(
    api: Api, recorder: Recorder
) -> None:
    await _endpoint(api, recorder, ["store-1"])
    bad = f"00-{TRACE.upper()}-00f067aa0ba902b7-01"
    await api.expect(202, "POST", "/api/v1/events", json=_event("e1"), headers={"traceparent": bad})
    await api.expect(202, "POST", "/api/v1/events", json=_event("e2", traceparent="nonsense"))
    await api.expect(202, "POST", "/api/v1/events", json=_event("e3"))
    await recorder.wait_for(lambda: len(recorder.hits()) == 6)
    assert [traceparent(h) for h in recorder.hits()] == [None] * 6
    for event_id in ("e1", "e2", "e3"):
        stored = await api.expect(200, "GET", f"/api/v1/events/{event_id}")
        assert stored["traceparent"] is None


async def test_a_batch_carries_the_header_and_each_events_own_wins(
    api: Api, recorder: Recorder
) -> None:
    await _endpoint(api, recorder, ["store-1", "store-2", "store-3"])
    events = [
        _event("e1", "store-1"),
        _event("e2", "store-2", traceparent=OTHER),
        _event("e3", "store-3", traceparent="00-bad"),
    ]
    await api.expect(
        202, "POST", "/api/v1/events/batch", json={"events": events}, headers={"traceparent": GIVEN}
    )
    await recorder.wait_for(lambda: len(recorder.hits()) == 6)
    seen = {(h.path, h.event_id): traceparent(h) for h in recorder.hits()}
    for path in ("/a", "/b"):
        assert seen[(path, "e1")] == GIVEN
        assert seen[(path, "e2")] == OTHER
        assert seen[(path, "e3")] == GIVEN
