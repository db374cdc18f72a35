"""An endpoint in trouble as a whole versus one delivery that failed, on an ordered
endpoint: two engines sharing one database (SQLite and PostgreSQL), real HTTP on loopback.

- A delivery that fails while its endpoint answers other requests is retried within
  seconds, so its user's lane flows on; the long schedule is for an endpoint that fails
  as a whole.
- A "slow down" answer (429, 503) paces the endpoint for every engine and uses up no
  attempt; other endpoints keep flowing meanwhile.

Spacing is read from the sink's own timestamps of the requests, with generous bounds;
waits are on conditions.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import orjson
import pytest

from hookline.config import EngineSettings, RetryPolicy
from hookline.sender import Engine
from hookline.store import AttemptResult, Delivery, Job, NewEvent, Store
from tests.support.eventually import eventually
from tests.support.recorder import Answer, Hit, Recorder

_FAST = {"allow_private_targets": True, "poll_interval": 0.05, "lease_margin": 1.0}


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[list[Store]]:
    opened = [await Store.open(database_url) for _ in range(2)]
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def _engines(stores: list[Store], settings: EngineSettings) -> list[Engine]:
    engines = [Engine(s, settings) for s in stores]
    for engine in engines:
        await engine.start()
    return engines


async def _stop(engines: list[Engine]) -> None:
    for engine in engines:
        await engine.stop(grace=1.0)


def _events(users: list[str], count: int, event_type: str = "order_completed") -> list[NewEvent]:
    """``count`` events per user, interleaved across users in publication order."""
    return [
        NewEvent(
            f"{event_type}-{user}-{seq}",
            event_type,
            user,
            orjson.dumps({"id": seq, "seq": seq}).decode(),
        )
        for seq in range(count)
        for user in users
    ]


async def _settled(store: Store, app_id: str, expected: int, timeout: float) -> list[Delivery]:
    rows: list[Delivery] = []

    async def done() -> bool:
        nonlocal rows
        rows = await store.list_deliveries(app_id, limit=10_000)
        return len(rows) == expected and all(r.status != "pending" for r in rows)

    await eventually(
        done,
        timeout=timeout,
        message=lambda: (
            f"{expected} settled deliveries, {sum(r.status != 'pending' for r in rows)} so far"
        ),
    )
    return rows


def _order_kept(hits: list[Hit]) -> None:
    """Per user: one request at a time, and the next event only after the previous one
    was answered 2xx."""
    by_user: dict[str, list[Hit]] = defaultdict(list)
    for hit in sorted(hits, key=lambda h: h.started):
        by_user[hit.user_id].append(hit)
    for user, seen in by_user.items():
        delivered = [h.json["data"]["seq"] for h in seen if h.status == 200]
        assert delivered == sorted(delivered) == list(range(len(delivered))), user
        for before, after in pairwise(seen):
            assert before.ended is not None and before.ended <= after.started, user
            if after.json["data"]["seq"] != before.json["data"]["seq"]:
                assert before.status == 200, f"{user}: moved on past a failed head"


def _retry_gaps(hits: list[Hit]) -> list[float]:
    """Seconds between each failed request and the next request of the same delivery."""
    by_event: dict[str, list[Hit]] = defaultdict(list)
    for hit in sorted(hits, key=lambda h: h.started):
        by_event[hit.event_id].append(hit)
    return [
        after.started - before.started
        for seen in by_event.values()
        for before, after in pairwise(seen)
    ]


async def test_a_flaky_endpoint_flows_in_order_with_quick_retries(
    stores: list[Store], recorder: Recorder
) -> None:
    # Every fifth request fails. On the schedule alone (5 s, then 5 min) a delivery
    # failing twice would hold its user's lane for five minutes.
    url = recorder.respond(
        "/flaky", lambda hits: Answer(500, body="oops") if len(hits) % 5 == 0 else Answer(200)
    )
    store = stores[0]
    app, _ = await store.create_app("shop")
    users = [f"user-{n}" for n in range(10)]
    for user in users:
        await store.install(app.id, user)
    await store.create_endpoint(app.id, url=url, event_types=["*"], timeout=5)
    engines = await _engines(stores, EngineSettings(**_FAST))  # the default retry policy
    try:
        await store.publish(_events(users, 20))
        rows = await _settled(store, app.id, 200, timeout=120)
    finally:
        await _stop(engines)

    hits = recorder.hits("/flaky")
    failed = [h for h in hits if h.status == 500]
    gaps = _retry_gaps(hits)
    print(
        f"\n{len(hits)} requests, {len(failed)} answered 500; retried after "
        f"{min(gaps):.2f}-{max(gaps):.2f} s"
    )
    assert all(r.status == "delivered" for r in rows)
    assert failed, "the sink failed some requests"
    _order_kept(hits)
    # Every attempt counted, each one logged.
    assert sum(r.attempts for r in rows) == len(hits)
    by_id = {r.event_id: r for r in rows}
    for event_id, seen in _by_event(hits).items():
        assert by_id[event_id].attempts == len(seen)
        assert [a.status_code for a in by_id[event_id].attempt_log] == [h.status for h in seen]
    # Retried within seconds (0.5, 1, 2, 5 s), not on the schedule's 5 s then 5 min.
    assert len(gaps) == len(failed)
    assert max(gaps) < 60


def _by_event(hits: list[Hit]) -> dict[str, list[Hit]]:
    by_event: dict[str, list[Hit]] = defaultdict(list)
    for hit in sorted(hits, key=lambda h: h.started):
        by_event[hit.event_id].append(hit)
    return by_event


async def test_an_endpoint_failing_as_a_whole_gets_the_long_schedule(
    stores: list[Store], recorder: Recorder
) -> None:
    policy = RetryPolicy(schedule=(0, 2, 600, 600, 600), jitter=0.0)
    # The endpoint answers its first request, then fails everything.
    url = recorder.respond("/down", lambda hits: Answer(200) if len(hits) == 1 else Answer(500))
    store = stores[0]
    app, _ = await store.create_app("shop")
    await store.install(app.id, "user-1")
    await store.create_endpoint(app.id, url=url, event_types=["*"], timeout=5)
    engines = await _engines(stores, EngineSettings(retry=policy, **_FAST))
    rows: list[Delivery] = []
    try:
        await store.publish(_events(["user-1"], 3))

        async def parked() -> bool:
            nonlocal rows
            rows = sorted(await store.list_deliveries(app.id), key=lambda r: r.id)
            head = rows[1]
            return (
                head.next_attempt_at is not None
                and head.attempts >= 2
                and (
                    _seconds(head.next_attempt_at) - _seconds(head.attempt_log[-1].attempted_at)
                    > 100
                )
            )

        await eventually(parked, timeout=60, message="the second delivery parked on the schedule")
    finally:
        await _stop(engines)

    first, second, third = rows
    assert first.status == "delivered"
    assert second.status == third.status == "pending"
    assert third.attempts == 0, "its lane waits behind the failing head"
    tries = [_seconds(a.attempted_at) for a in second.attempt_log]
    gaps = [b - a for a, b in pairwise(tries)]
    parked_for = _seconds(second.next_attempt_at) - tries[-1]
    shown = ", ".join(f"{g:.2f}" for g in gaps)
    print(f"\nretried after {shown} s, then parked for {parked_for:.0f} s")
    # Its first failure came right after a success: retried soon (0.5 s, then 1 s while
    # that success is within the endpoint's quarter-second stamp), never later than the
    # schedule; with nothing answered since, the schedule's 600 s.
    assert len(tries) <= 3
    assert all(gap < 2 * 0.95 + 1.0 for gap in gaps)  # generous: a claim is not instant
    assert parked_for >= 600 - 1


async def test_a_fresh_endpoint_that_fails_gets_the_schedule_from_the_start(
    stores: list[Store], recorder: Recorder
) -> None:
    policy = RetryPolicy(schedule=(0, 3, 600), jitter=0.0)
    url = recorder.respond("/dead", lambda hits: Answer(500))
    store = stores[0]
    app, _ = await store.create_app("shop")
    await store.install(app.id, "user-1")
    await store.create_endpoint(app.id, url=url, event_types=["*"], timeout=5)
    engines = await _engines(stores, EngineSettings(retry=policy, **_FAST))
    try:
        await store.publish(_events(["user-1"], 1))
        await recorder.wait_for(lambda: len(recorder.hits("/dead")) == 2, timeout=60)
    finally:
        await _stop(engines)
    first, second = recorder.hits("/dead")
    assert second.started - first.started >= 3 * 0.95  # the schedule's 3 s, not 1 s


def _seconds(value: Any) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else float(value)


@pytest.mark.slow
async def test_slow_down_answers_pace_the_endpoint_and_use_no_attempts(
    stores: list[Store], recorder: Recorder
) -> None:
    # /busy answers 429 with Retry-After: 3 until the test has seen enough of it.
    throttling = True

    def busy(hits: list[Hit]) -> Answer:
        return Answer(429, headers={"Retry-After": "3"}) if throttling else Answer(200)

    busy_url = recorder.respond("/busy", busy)
    calm_url = recorder.script("/calm", then=Answer(200))
    store = stores[0]
    app, _ = await store.create_app("shop")
    users = [f"user-{n}" for n in range(5)]
    for user in users:
        await store.install(app.id, user)
    await store.create_endpoint(app.id, url=busy_url, event_types=["order_completed"], timeout=5)
    await store.create_endpoint(app.id, url=calm_url, event_types=["product_created"], timeout=5)
    # A schedule of one attempt: were a 429 counted, every delivery would fail at once.
    engines = await _engines(stores, EngineSettings(retry=RetryPolicy(schedule=(0,)), **_FAST))
    try:
        await store.publish(_events(users, 4))
        await recorder.wait_for(lambda: len(recorder.hits("/busy")) >= 1)
        first_answer = time.monotonic()

        def throttled_after_the_burst() -> list[Hit]:
            return [h for h in recorder.hits("/busy") if h.started > first_answer + 1.0]

        # While /busy is paused, the other endpoint's deliveries all go out.
        await store.publish(_events(users, 10, "product_created"))
        await recorder.wait_for(lambda: len(recorder.hits("/calm")) == 50, timeout=60)
        calm_done = time.monotonic()
        await recorder.wait_for(lambda: len(throttled_after_the_burst()) >= 4, timeout=60)
        throttling = False
        lifted = time.monotonic()
        rows = await _settled(store, app.id, 70, timeout=120)
    finally:
        await _stop(engines)

    busy_hits = recorder.hits("/busy")
    paced = [h for h in throttled_after_the_burst() if h.started < lifted]
    gaps = [b.started - a.started for a, b in pairwise(paced)]
    print(
        f"\n/busy: {len(busy_hits)} requests, {len(paced)} while paced, gaps "
        f"{', '.join(f'{g:.2f}' for g in gaps)} s"
    )
    assert all(r.status == "delivered" for r in rows)
    # One request at a time, about one per 3 s (Retry-After), for every engine together.
    assert all(gap >= 3 * 0.8 for gap in gaps), gaps
    # The other endpoint finished while /busy was still held back.
    assert calm_done < lifted
    # No attempt used up: each delivery counts its one 2xx; its 429s are in its log.
    assert all(r.attempts == 1 for r in rows)
    logged = sum(len(r.attempt_log) for r in rows)
    assert logged == len(busy_hits) + len(recorder.hits("/calm"))
    _order_kept(busy_hits)


@pytest.mark.slow
async def test_a_timeout_storm_on_one_endpoint_never_delays_another_of_the_same_app(
    stores: list[Store], recorder: Recorder
) -> None:
    # The defaults: an endpoint holds at most 64 in flight, its app 128, so a sibling
    # endpoint of the same app still has room while the first one's requests all hang.
    tarpit = recorder.script("/tarpit", then=Answer(hang=True))
    calm = recorder.script("/calm", then=Answer(200))
    store = stores[0]
    app, _ = await store.create_app("shop")
    users = [f"user-{n}" for n in range(100)]
    for user in users:
        await store.install(app.id, user)
    await store.create_endpoint(app.id, url=tarpit, event_types=["order_completed"], timeout=30)
    await store.create_endpoint(app.id, url=calm, event_types=["product_created"], timeout=5)
    settings = EngineSettings(**_FAST)
    engines = await _engines(stores, settings)
    try:
        await store.publish(_events(users, 2))
        cap = settings.endpoint_max_in_flight
        await recorder.wait_for(lambda: len(recorder.open_hits("/tarpit")) == cap)
        await store.publish(_events(users[:10], 3, "product_created"))
        await recorder.wait_for(lambda: len(recorder.hits("/calm")) == 30)
        last_landed = recorder.hits("/calm")[-1].started
    finally:
        await _stop(engines)
    held = recorder.hits("/tarpit")
    assert len(held) == cap, "nothing beyond the endpoint's cap went to the tarpit"
    # Every one of the other endpoint's deliveries landed while all of them still hung.
    assert all(h.ended is None or h.ended > last_landed for h in held)


async def test_the_pace_doubles_once_per_slow_down_and_shrinks_with_good_answers(
    stores: list[Store],
) -> None:
    store = stores[0]
    app, _ = await store.create_app("shop")
    ep = await store.create_endpoint(
        app.id, url="http://127.0.0.1:9/", event_types=["*"], timeout=2
    )
    job = Job(1, "t", 0, ep.id, "u", "u", app.id, "order_completed", "e", "{}",
              ep.url, 2.0, ("k",))  # fmt: skip

    async def answer(now: float, *results: AttemptResult) -> dict[str, Any]:
        """The endpoint's stored state (its pause as written, passed or not)."""
        async with store.db.transaction() as tx:
            await store._track_endpoints(tx, list(results), now)
        row = await store.db.fetchrow("get_endpoint", id=ep.id)
        assert row is not None
        return row

    def slow(sent: float, asked: float = 0.0) -> AttemptResult:
        return AttemptResult(job, "retry", sent, status_code=429, throttle_for=asked)

    def good(sent: float) -> AttemptResult:
        return AttemptResult(job, "delivered", sent, status_code=200)

    row = await answer(100.0, slow(99.0, asked=3.0))
    assert (row["pace"], row["pause_until"]) == (0.1, 103.0)  # Retry-After over the pace
    # A burst sent before that slow-down slows it no further.
    row = await answer(100.5, slow(99.5), slow(99.9))
    assert row["pace"] == 0.1
    # Sent after it: doubled, and paused for the pace when no Retry-After is given.
    row = await answer(104.0, slow(103.5))
    assert (row["pace"], row["pause_until"]) == (0.2, 104.2)
    row = await answer(105.0, slow(104.5))
    assert row["pace"] == pytest.approx(0.4)
    # Each good answer adds a request a second to the rate: 2.5/s, 3.5/s, ... unpaced
    # below PACE_MIN.
    paces = []
    for n in range(10):
        row = await answer(106.0 + n, good(105.5 + n))
        paces.append(row["pace"])
    assert paces[0] == pytest.approx(0.4 / 1.4)
    assert paces == sorted(paces, reverse=True)
    assert paces[-1] == 0
    assert row["failing_since"] is None
