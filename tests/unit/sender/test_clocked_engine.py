"""Retries, leases and endpoint health on a clock the test moves.

The store is SQLite in memory, the endpoint a scripted transport, and the store, the
engine and the health monitor share one ``ManualClock``: a retry ten minutes away, a
lease left by a dead process or an endpoint failing for five days is a call to
``advance``. "Not before it was due" is checked once the claimer has looked and gone
back to sleep, never after a sleep of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from hookline.clock import ManualClock
from hookline.config import EngineSettings, RetryPolicy
from hookline.sender import Engine
from hookline.sender.health import HealthMonitor
from hookline.sender.transport import Reply
from hookline.store import Endpoint, Job, NewEvent, Store
from tests.support.eventually import eventually

POLL = 1.0
TIMEOUT = 5.0  # the endpoint's
MARGIN = 15.0  # the engine's lease margin: a lease lasts TIMEOUT + MARGIN


@dataclass
class Scripted:
    """A transport that answers every POST with ``status`` and notes when it was sent."""

    clock: ManualClock
    status: int = 500
    sent: list[tuple[str, float]] = field(default_factory=list)  # (event_id, when)

    async def post(self, job: Job, body: bytes, headers: Mapping[str, str]) -> Reply:
        self.sent.append((job.event_id, self.clock.now()))
        return Reply(status=self.status, excerpt="")

    async def close(self) -> None:
        pass


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(clock: ManualClock) -> AsyncIterator[Store]:
    opened = await Store.open("sqlite:///:memory:", clock=clock)
    try:
        yield opened
    finally:
        await opened.close()


def _settings(**overrides: Any) -> EngineSettings:
    values: dict[str, Any] = {
        "retry": RetryPolicy(schedule=(0, 60, 600), jitter=0),
        "allow_private_targets": True,
        "poll_interval": POLL,
        "lease_margin": MARGIN,
        "retention_days": 0,
    }
    return EngineSettings(**{**values, **overrides})


async def _endpoint(store: Store) -> Endpoint:
    app, _ = await store.create_app("shop")
    await store.install(app.id, "store-1")
    return await store.create_endpoint(
        app.id, url="http://127.0.0.1:9/hook", event_types=["*"], timeout=TIMEOUT
    )


async def _publish(store: Store, event_id: str) -> None:
    data = orjson.dumps({"id": event_id}).decode()
    await store.publish([NewEvent(event_id, "order_completed", "store-1", data)])


async def _attempts(store: Store, app_id: str) -> int:
    [delivery] = await store.list_deliveries(app_id)
    return int(delivery.attempts)


async def _looked(clock: ManualClock) -> None:
    """Until the claimer has claimed what was due and gone back to sleep."""
    await eventually(lambda: POLL in clock.pending(), message="the claimer asleep")


async def _recorded(store: Store, app_id: str, attempts: int) -> None:
    async def done() -> bool:
        return await _attempts(store, app_id) == attempts

    await eventually(done, message=f"{attempts} attempt(s) recorded")


async def test_a_failing_delivery_is_retried_on_its_schedule_then_fails(
    store: Store, clock: ManualClock
) -> None:
    endpoint = await _endpoint(store)
    transport = Scripted(clock)
    engine = Engine(store, _settings(), transport=transport)
    await engine.start()
    try:
        start = clock.now()
        await _publish(store, "evt_1")
        await _recorded(store, endpoint.app_id, 1)

        clock.advance(59)
        await _looked(clock)
        assert len(transport.sent) == 1  # a second early would be too soon
        clock.advance(1)
        await _recorded(store, endpoint.app_id, 2)

        clock.advance(599)
        await _looked(clock)
        assert len(transport.sent) == 2
        clock.advance(1)
        await _recorded(store, endpoint.app_id, 3)
        [delivery] = await store.list_deliveries(endpoint.app_id)
        assert delivery.status == "failed"

        clock.advance(86400)
        await _looked(clock)
    finally:
        await engine.stop()
    assert [when - start for _, when in transport.sent] == [0, 60, 660]


async def test_a_lease_left_by_a_dead_engine_is_taken_over_once_it_runs_out(
    store: Store, clock: ManualClock
) -> None:
    """The lane goes out again, with the same token, when its lease ends, not before."""
    endpoint = await _endpoint(store)
    await _publish(store, "evt_orphan")
    [orphan] = await store.claim("dead-engine", limit=10, default_cap=64, lease_margin=MARGIN)
    transport = Scripted(clock, status=200)
    engine = Engine(store, _settings(), transport=transport)
    await engine.start()
    try:
        await _looked(clock)
        clock.advance(TIMEOUT + MARGIN - 1)
        await _looked(clock)
        assert transport.sent == []
        clock.advance(2)
        await eventually(lambda: transport.sent, message="the delivery sent again")
        await _recorded(store, endpoint.app_id, 1)
    finally:
        await engine.stop()
    [delivery] = await store.list_deliveries(endpoint.app_id)
    assert delivery.status == "delivered"
    assert transport.sent[0][0] == orphan.event_id == "evt_orphan"


async def test_an_endpoint_failing_for_days_is_disabled_probed_and_enabled_again(
    store: Store, clock: ManualClock
) -> None:
    endpoint = await _endpoint(store)
    transport = Scripted(clock)
    settings = _settings(retry=RetryPolicy(schedule=(0, 86400 * 30), jitter=0))
    monitor = HealthMonitor(store, settings, transport)
    engine = Engine(store, settings, transport=transport)
    await engine.start()
    try:
        await _publish(store, "evt_1")
        await _recorded(store, endpoint.app_id, 1)
    finally:
        await engine.stop()

    clock.advance(settings.disable_after - 1)
    assert await monitor.check() == []
    clock.advance(2)
    [disabled] = await monitor.check()
    assert disabled.id == endpoint.id
    assert not (await store.get_endpoint(endpoint.id)).enabled

    assert await monitor.probe() == []  # still failing: stays disabled
    transport.status = 200
    assert await monitor.probe() == [endpoint.id]
    assert (await store.get_endpoint(endpoint.id)).enabled
