"""One app cannot starve the others: its endpoints never answer, it floods them with
deliveries and test notifications, and another app's healthy endpoint is still served
at once, by two engines sharing one database (SQLite and PostgreSQL).

The proof is structural: the tarpit never has more connections open than the app's cap,
and the other app's deliveries all land while every one of those connections is still
held. Latencies are printed, not asserted (the machine is shared and loaded).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from hookline.config import EngineSettings, Limits, RetryPolicy
from hookline.sender import Engine
from hookline.store import NewEvent, Store
from tests.support.recorder import Answer, Recorder, in_flight_peak

_FAST = {"allow_private_targets": True, "poll_interval": 0.05, "lease_margin": 1.0}
_ONE_RETRY = RetryPolicy(schedule=(0, 60), jitter=0.0)

#: Two engines of 8 slots each; one app may hold 3 deliveries in flight, all together.
SMALL = EngineSettings(retry=_ONE_RETRY, concurrency=8, app_max_in_flight=3, **_FAST)
#: The defaults (512 slots per engine, an app cap of 128), and the flood the issue saw.
DEFAULT = EngineSettings(retry=_ONE_RETRY, **_FAST)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec


def _event(name: str, user: str) -> NewEvent:
    return NewEvent(name, "order_completed", user, orjson.dumps({"id": name}).decode())


async def _latencies(
    store: Store, recorder: Recorder, engines: list[Engine], tag: str
) -> list[float]:
    """Publish ten events for the healthy app, one after another, waking the engines as
    ``serve`` does; seconds each took to reach its endpoint."""
    seconds = []
    for n in range(10):
        before = len(recorder.hits("/healthy"))
        published = time.monotonic()
        await store.publish([_event(f"{tag}-{n}", "b-user")])
        for engine in engines:
            engine.wake()
        await recorder.wait_for(lambda n=before: len(recorder.hits("/healthy")) > n, timeout=20)
        seconds.append(recorder.hits("/healthy")[before].started - published)
    return seconds


@pytest.mark.parametrize(
    ("settings", "flood", "tests"),
    [
        pytest.param(SMALL, 200, 50, id="small"),
        pytest.param(DEFAULT, 2000, 1100, id="default", marks=pytest.mark.slow),
    ],
)
async def test_a_tarpit_app_holds_its_share_of_the_slots_and_no_more(
    database_url: str, recorder: Recorder, settings: EngineSettings, flood: int, tests: int
) -> None:
    tarpit = recorder.script("/tarpit", then=Answer(hang=True))
    healthy = recorder.script("/healthy", then=Answer(200))
    # The tarpit's requests must outlast the test however loaded the machine is: one that
    # timed out would free its slot for the next, and the count of hits would grow.
    limits = Limits(max_timeout=3600)
    stores = [await Store.open(database_url, limits=limits) for _ in range(2)]
    store = stores[0]
    a, _ = await store.create_app("attacker")
    victim, _ = await store.create_app("victim")
    await store.install(a.id, "a-user")
    await store.install(victim.id, "b-user")
    # Unordered endpoints asking for the most in flight each, at the longest timeout.
    a_endpoints = [
        await store.create_endpoint(
            a.id, url=tarpit, event_types=["*"], timeout=3600, ordered=False, max_in_flight=128
        )
        for _ in range(4)
    ]
    await store.create_endpoint(victim.id, url=healthy, event_types=["*"], timeout=5)
    engines = [Engine(s, settings) for s in stores]
    for engine in engines:
        await engine.start()
    try:
        baseline = await _latencies(store, recorder, engines, "calm")

        for first in range(0, flood, 500):  # 500 events x 4 endpoints a publish
            await store.publish(
                [_event(f"flood-{n}", "a-user") for n in range(first, min(first + 500, flood))]
            )
        for n in range(tests):
            endpoint = a_endpoints[n % len(a_endpoints)]
            await store.send_test(endpoint.id, "order_completed", '{"id": "test"}')
        await recorder.wait_for(lambda: len(recorder.open_hits("/tarpit")) == settings.app_cap)

        attacked = await _latencies(store, recorder, engines, "attack")
        last_landed = recorder.hits("/healthy")[-1].started
        held = recorder.hits("/tarpit")
    finally:
        # The tarpit answers at last, so the requests in flight end (a stopping engine
        # waits for them), and what is sent after that does not count.
        recorder.release()
        await asyncio.gather(*(engine.stop(grace=0.5) for engine in engines))
        for s in stores:
            await s.close()

    print(
        f"\n[{database_url.split(':')[0]}, {flood} deliveries and {tests} tests to the tarpit] "
        "victim latency p50/max: "
        f"calm {statistics.median(baseline) * 1000:.1f}/{max(baseline) * 1000:.1f} ms, "
        f"under attack {statistics.median(attacked) * 1000:.1f}/{max(attacked) * 1000:.1f} ms; "
        f"tarpit connections at once: {in_flight_peak(held)} of the app's cap "
        f"{settings.app_cap}, {2 * settings.concurrency} slots"
    )
    assert in_flight_peak(held) == settings.app_cap
    assert len(held) == settings.app_cap, "nothing of the attacker's went out beyond its cap"
    # Every victim delivery landed while all of the attacker's slots were still held:
    # it waited for none of them.
    assert all(h.ended is None or h.ended > last_landed for h in held)
