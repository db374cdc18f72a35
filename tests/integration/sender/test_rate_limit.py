"""An endpoint's rate limit: claims take no more than it allows, across claimers.

The store tests run on SQLite and on PostgreSQL, with a limit slow enough (one delivery
every 100 s) that no claim in a test ever sees it refill: what a claim may take is then
known exactly, whatever the machine's speed. The engine test sends through two engines
on one SQLite file into a real loopback endpoint and checks what arrives there.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from hookline.clock import ManualClock
from hookline.config import EngineSettings, RetryPolicy
from hookline.exceptions import ValidationError
from hookline.sender import Engine
from hookline.store import AttemptResult, Claimed, Endpoint, Job, NewEvent, Store
from tests.support.recorder import Recorder, in_flight_peak, most_in_one_second

SLOW = 0.01  # one delivery every 100 s: nothing refills within a test


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def endpoint_for(store: Store, users: int, **settings: Any) -> Endpoint:
    app, _ = await store.create_app("shop")
    for u in range(users):
        await store.install(app.id, f"u{u}")
    options = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "timeout": 10.0}
    return await store.create_endpoint(app.id, **(options | settings))


async def publish(store: Store, users: int, per_user: int) -> None:
    await store.publish(
        [
            NewEvent(
                id=f"e{u}-{n}",
                event_type="order_completed",
                user_id=f"u{u}",
                data=orjson.dumps({"n": n}).decode(),
            )
            for n in range(per_user)
            for u in range(users)
        ]
    )


async def claim(store: Store, owner: str = "w1", **kw: Any) -> Claimed:
    return await store.claim(owner, **({"limit": 100, "default_cap": 64, "lease_margin": 15} | kw))


def delivered(job: Job, **kw: Any) -> AttemptResult:
    options: dict[str, Any] = {"status_code": 200, "latency_ms": 1.0} | kw
    return AttemptResult(job=job, outcome="delivered", attempted_at=time.time(), **options)


# -- the store ---------------------------------------------------------------------------


async def test_a_claim_takes_the_burst_and_then_nothing_until_the_limit_allows(
    store: Store,
) -> None:
    endpoint = await endpoint_for(store, 10, rate_limit=SLOW, rate_limit_burst=3)
    await publish(store, 10, 1)
    first = await claim(store)
    assert len(first) == 3
    again = await claim(store, owner="w2")
    assert again == []
    # It says when the next one is allowed: 100 s after the first of the burst.
    assert again.opens_at is not None
    assert again.opens_at - time.time() == pytest.approx(100, abs=5)
    row = await store.get_endpoint(endpoint.id)
    assert (row.rate_limit, row.rate_limit_burst) == (SLOW, 3)


async def test_concurrent_claimers_together_take_no_more_than_the_limit(
    database_url: str, store: Store
) -> None:
    await endpoint_for(store, 40, rate_limit=SLOW, rate_limit_burst=5)
    await publish(store, 40, 2)
    others = [await Store.open(database_url) for _ in range(3)]
    try:
        batches = await asyncio.gather(
            *(claim(s, owner=f"w{n}", limit=8) for n, s in enumerate([store, *others]))
        )
    finally:
        for other in others:
            await other.close()
    jobs = [job for batch in batches for job in batch]
    assert len(jobs) == 5
    assert len({job.lane for job in jobs}) == 5


async def test_a_finished_delivery_does_not_give_its_slot_back(store: Store) -> None:
    """Unlike the in-flight cap, a rate counts what was sent, not what is in flight."""
    await endpoint_for(store, 4, rate_limit=SLOW, rate_limit_burst=2)
    await publish(store, 4, 2)
    jobs = await claim(store)
    assert len(jobs) == 2
    await store.record("w1", [delivered(job) for job in jobs])
    assert await claim(store) == []


async def test_the_stricter_of_the_limit_and_the_in_flight_cap_holds(store: Store) -> None:
    await endpoint_for(store, 10, rate_limit=SLOW, rate_limit_burst=5, max_in_flight=2)
    await publish(store, 10, 1)
    jobs = await claim(store)
    assert len(jobs) == 2  # the cap, though the burst allows 5
    await store.record("w1", [delivered(jobs[0])])
    third = await claim(store)
    assert len(third) == 1  # the cap again: one lane still in flight
    await store.record("w1", [delivered(job) for job in [jobs[1], *third]])
    last = await claim(store)
    assert len(last) == 2  # the cap and the limit: 2 left of the burst of 5
    await store.record("w1", [delivered(job) for job in last])
    assert await claim(store) == []  # the limit alone


async def test_the_stricter_of_the_limit_and_the_pace_holds(database_url: str) -> None:
    clock = ManualClock(start=time.time())
    store = await Store.open(database_url, clock=clock)
    try:
        await endpoint_for(store, 10, rate_limit=SLOW, rate_limit_burst=5)
        await publish(store, 10, 1)
        (job, *_) = await claim(store, limit=1)
        # A 429: the endpoint is paced (and paused for what it asked, here nothing more).
        slow_down = AttemptResult(
            job=job,
            outcome="retry",
            attempted_at=clock.now(),
            status_code=429,
            retry_at=clock.now(),
            throttle_for=0.0,
        )
        await store.record("w1", [slow_down])
        row = await store.get_endpoint(job.endpoint_id)
        assert row.pace > 0
        assert row.paused_until is not None
        assert await claim(store) == []  # paused
        clock.set(row.paused_until + 0.001)  # the pause is over: moved to, not waited for
        paced = await claim(store)
        assert len(paced) == 1  # the pace: one per claim, though the limit allows four more
        assert paced.opens_at is not None  # and when the pace lets the next one go
    finally:
        await store.close()


async def record_keeping(store: Store, jobs: list[Job]) -> list[Job]:
    """Record ``jobs`` delivered, letting their lanes go on with their next heads."""
    return await store.record(
        "w1", [delivered(job) for job in jobs], keep=10, default_cap=64, lease_margin=15
    )


async def test_a_lane_goes_on_from_its_record_only_without_a_limit(store: Store) -> None:
    """A lane whose head was answered may send its next delivery from the record, with
    no claim between; a rate-limited endpoint's lanes always go back to the claims,
    which count them against the limit."""
    limited = await endpoint_for(store, 1, rate_limit=SLOW, rate_limit_burst=2)
    await publish(store, 1, 4)
    (job,) = await claim(store)
    assert await record_keeping(store, [job]) == []
    (job,) = await claim(store)
    assert await record_keeping(store, [job]) == []
    assert await claim(store) == []  # the burst of 2 is spent: 2 still wait
    # The same without a limit: the lane goes on from the record.
    await store.update_endpoint(limited.id, rate_limit=None)
    (job,) = await claim(store)
    (nxt,) = await record_keeping(store, [job])
    assert nxt.lane == job.lane and nxt.event_id == "e0-3"


async def test_a_limited_delivery_goes_out_a_moment_after_its_claim_or_is_handed_back(
    store: Store,
) -> None:
    await endpoint_for(store, 2, rate_limit=SLOW, rate_limit_burst=3)
    await publish(store, 2, 1)
    before = time.time()
    jobs = await claim(store)
    # Every job of a claim goes at one moment, shortly after it, whatever the commit took.
    assert len({job.send_at for job in jobs}) == 1
    assert all(job.send_at is not None and job.send_at > before for job in jobs)
    # One that missed its moment is handed back, and claimed again (counted again).
    await store.hand_back("w1", jobs[:1])
    (again,) = await claim(store, owner="w2")
    assert (again.delivery_id, again.token) == (jobs[0].delivery_id, jobs[0].token)
    assert await claim(store, owner="w3") == []  # 3 of the burst taken


async def test_each_users_order_holds_under_the_limit(store: Store) -> None:
    await endpoint_for(store, 3, rate_limit=SLOW, rate_limit_burst=1000)
    await publish(store, 3, 4)
    seen: dict[str, list[str]] = defaultdict(list)
    while jobs := await claim(store):
        assert len({job.user_id for job in jobs}) == len(jobs)  # one per user at a time
        for job in jobs:
            seen[job.user_id].append(job.event_id)
        await store.record("w1", [delivered(job) for job in jobs])
    assert seen == {f"u{u}": [f"e{u}-{n}" for n in range(4)] for u in range(3)}


async def test_without_a_limit_nothing_is_held_back(store: Store) -> None:
    endpoint = await endpoint_for(store, 10)
    assert (endpoint.rate_limit, endpoint.rate_limit_burst) == (None, 1)
    await publish(store, 10, 1)
    jobs = await claim(store)
    assert len(jobs) == 10
    assert jobs.opens_at is None


async def test_a_limit_is_set_changed_and_removed(store: Store) -> None:
    endpoint = await endpoint_for(store, 10)
    changed = await store.update_endpoint(endpoint.id, rate_limit=SLOW, rate_limit_burst=2)
    assert (changed.rate_limit, changed.rate_limit_burst) == (SLOW, 2)
    await publish(store, 10, 1)
    assert len(await claim(store)) == 2
    kept = await store.update_endpoint(endpoint.id, timeout=5.0)
    assert (kept.rate_limit, kept.rate_limit_burst) == (SLOW, 2)
    removed = await store.update_endpoint(endpoint.id, rate_limit=None)
    assert removed.rate_limit is None
    assert len(await claim(store)) == 8


@pytest.mark.parametrize(
    "bad",
    [
        {"rate_limit": 0},
        {"rate_limit": -1},
        {"rate_limit": 0.0001},
        {"rate_limit": 10_001},
        {"rate_limit": float("nan")},
        {"rate_limit": float("inf")},
        {"rate_limit_burst": 0},
        {"rate_limit_burst": 1001},
    ],
)
async def test_bad_limits_are_refused_and_nothing_is_stored(
    store: Store, bad: dict[str, Any]
) -> None:
    endpoint = await endpoint_for(store, 1, rate_limit=5, rate_limit_burst=2)
    with pytest.raises(ValidationError, match="rate_limit"):
        await store.update_endpoint(endpoint.id, **bad)
    row = await store.get_endpoint(endpoint.id)
    assert (row.rate_limit, row.rate_limit_burst) == (5, 2)
    before = len(await store.list_endpoints(endpoint.app_id))
    with pytest.raises(ValidationError, match="rate_limit"):
        await endpoint_for(store, 0, **bad)
    assert len(await store.list_endpoints(endpoint.app_id)) == before


# -- the engine --------------------------------------------------------------------------


async def test_two_engines_on_one_sqlite_file_keep_the_limit_and_each_users_order(
    sqlite_url: str,
) -> None:
    rate, burst, users, per_user = 10, 3, 6, 8
    settings = EngineSettings(
        retry=RetryPolicy(schedule=(0, 0.1, 0.2), jitter=0.0),
        allow_private_targets=True,
        poll_interval=0.5,
        lease_margin=1.0,
    )
    stores = [await Store.open(sqlite_url) for _ in range(2)]
    engines = [Engine(s, settings) for s in stores]
    async with Recorder() as sink:
        try:
            app, _ = await stores[0].create_app("shop")
            for u in range(users):
                await stores[0].install(app.id, f"u{u}")
            await stores[0].create_endpoint(
                app.id,
                url=sink.url("/hook"),
                event_types=["*"],
                timeout=5.0,
                rate_limit=rate,
                rate_limit_burst=burst,
            )
            for engine in engines:
                await engine.start()
            await publish(stores[0], users, per_user)
            for engine in engines:
                engine.wake()
            await sink.wait_for(lambda: len(sink.hits()) >= users * per_user, timeout=60)
        finally:
            for engine in engines:
                await engine.stop()
            for s in stores:
                await s.close()
    hits = sink.hits()
    assert len(hits) == users * per_user
    # The bound holds at the endpoint: rate + burst - 1 in any second, with one to spare
    # for the time between a claim and its request's arrival.
    assert most_in_one_second([h.started for h in hits]) <= rate + burst
    order: dict[str, list[int]] = defaultdict(list)
    for hit in sorted(hits, key=lambda h: h.started):
        order[hit.user_id].append(hit.json["data"]["n"])
    assert order == {f"u{u}": list(range(per_user)) for u in range(users)}
    assert in_flight_peak(hits, key=lambda h: h.user_id) <= users
    for user in order:
        assert in_flight_peak([h for h in hits if h.user_id == user]) == 1
