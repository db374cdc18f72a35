"""The delivery engine in-process, on a real SQLite file and real HTTP over loopback.

These tests need control the CLI does not give: stopping an engine at a chosen moment,
a claim whose owner never comes back, two engines on one database, a resolver that
lies. Waiting always polls with a deadline; only lower bounds of delays are asserted.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from itertools import pairwise
from typing import Any

import orjson
import pytest

from hookline.config import EngineSettings, Limits, RetryPolicy
from hookline.exceptions import Conflict
from hookline.sender import Engine
from hookline.sender.publisher import Publisher
from hookline.sender.transport import new_transport
from hookline.store import Delivery, NewEvent, Store
from tests.support.eventually import eventually
from tests.support.listener import ConnectionCounter
from tests.support.recorder import Answer, Hit, Recorder, in_flight_peak

FAST = RetryPolicy(schedule=(0, 0.1, 0.2), jitter=0.0)


def settings(**overrides: Any) -> EngineSettings:
    values: dict[str, Any] = {
        "retry": FAST,
        "allow_private_targets": True,
        "poll_interval": 0.05,
        "lease_margin": 0.5,
    }
    return EngineSettings(**{**values, **overrides})


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(sqlite_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec


async def _setup(
    store: Store, url: str, users: Sequence[str] = ("store-1",), **endpoint: Any
) -> dict[str, Any]:
    app, _ = await store.create_app("shop")
    for user in users:
        await store.install(app.id, user)
    options = {"timeout": 5.0, **endpoint}
    made = await store.create_endpoint(app.id, url=url, event_types=["*"], **options)
    return {"id": app.id, "endpoint": made}


def _events(user: str, count: int, first: int = 0) -> list[NewEvent]:
    return [
        NewEvent(
            id=f"{user}-{seq}",
            event_type="order_completed",
            user_id=user,
            data=orjson.dumps({"id": seq, "seq": seq}).decode(),
        )
        for seq in range(first, first + count)
    ]


async def _settled(store: Store, app_id: str, expected: int) -> list[Delivery]:
    rows: list[Delivery] = []

    async def done() -> bool:
        nonlocal rows
        rows = await store.list_deliveries(app_id, limit=10_000)
        return len(rows) == expected and all(r.status != "pending" for r in rows)

    await eventually(done, message=lambda: f"{expected} settled deliveries, have {len(rows)}")
    return sorted(rows, key=lambda r: r.id)


def _no_overlap(hits: list[Hit]) -> None:
    ordered = sorted(hits, key=lambda h: h.started)
    for before, after in pairwise(ordered):
        assert before.ended is not None and before.ended <= after.started


# -- stopping ---------------------------------------------------------------------------


async def test_stop_records_a_send_that_finishes_within_the_grace(
    store: Store, recorder: Recorder
) -> None:
    app = await _setup(store, recorder.script("/slow", [Answer(sleep=0.5)]))
    engine = Engine(store, settings())
    await engine.start()
    await store.publish(_events("store-1", 1))
    await recorder.wait_for(lambda: len(recorder.open_hits("/slow")) == 1)
    await engine.stop(grace=10)

    (delivery,) = await store.list_deliveries(app["id"])
    assert delivery.status == "delivered"
    assert [a.status_code for a in delivery.attempt_log] == [200]


@pytest.mark.slow
async def test_stop_hands_back_a_send_that_does_not_finish(
    store: Store, recorder: Recorder
) -> None:
    app = await _setup(store, recorder.script("/hang", [Answer(hang=True)]), timeout=30.0)
    first = Engine(store, settings())
    await first.start()
    await store.publish(_events("store-1", 1))
    await recorder.wait_for(lambda: len(recorder.open_hits("/hang")) == 1)
    await first.stop(grace=0.2)

    # The lane was handed back: the next engine sends at once, not after the 30 s lease.
    second = Engine(store, settings())
    await second.start()
    try:
        (delivery,) = await _settled(store, app["id"], 1)
    finally:
        await second.stop()
    hung, again = recorder.hits("/hang")
    assert hung.cancelled and again.status == 200
    assert again.json["token"] == hung.json["token"] == delivery.token
    assert delivery.attempts == 1


# -- leases -----------------------------------------------------------------------------


async def test_a_claim_whose_owner_died_is_sent_once_its_lease_runs_out(
    store: Store, recorder: Recorder
) -> None:
    app = await _setup(store, recorder.url("/hook"), timeout=1.0)
    await store.publish(_events("store-1", 3))
    # A worker claims the first delivery and dies before sending or recording it.
    (lost,) = await store.claim("dead-worker", limit=10, default_cap=10, lease_margin=0.5)
    claimed_at = time.time()

    engine = Engine(store, settings(lease_margin=0.5))
    await engine.start()
    try:
        rows = await _settled(store, app["id"], 3)
    finally:
        await engine.stop()
    hits = recorder.hits("/hook")
    assert [h.event_id for h in hits] == ["store-1-0", "store-1-1", "store-1-2"]
    assert hits[0].json["token"] == lost.token
    # Nothing of that user's lane went out before the lease (timeout + margin) ran out.
    first_arrival = time.time() - (time.monotonic() - hits[0].started)
    assert first_arrival >= claimed_at + 1.0 + 0.5 - 0.05
    assert {r.status for r in rows} == {"delivered"}


async def test_two_engines_on_one_database_never_send_a_lane_twice_at_once(
    store: Store, recorder: Recorder, sqlite_url: str
) -> None:
    users = [f"user-{n}" for n in range(8)]
    url = recorder.script("/hook", then=Answer(sleep=0.01))
    app = await _setup(store, url, users)
    other_store = await Store.open(sqlite_url)
    engines = [Engine(store, settings()), Engine(other_store, settings())]
    for engine in engines:
        await engine.start()
    try:
        for first in range(0, 20, 5):
            await store.publish([e for u in users for e in _events(u, 5, first)])
        rows = await _settled(store, app["id"], len(users) * 20)
    finally:
        for engine in engines:
            await engine.stop()
        await other_store.close()
    assert {r.status for r in rows} == {"delivered"}
    hits = recorder.hits("/hook")
    assert len(hits) == len(users) * 20  # no crash, so no repeats
    for user in users:
        mine = [h for h in hits if h.user_id == user]
        assert [h.json["data"]["seq"] for h in mine] == list(range(20))
        _no_overlap(mine)


# -- a lane's next delivery -------------------------------------------------------------


async def test_a_lanes_next_delivery_goes_out_without_a_claim(
    store: Store, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await _setup(store, recorder.script("/ok", then=Answer(200)), ["store-1", "store-2"])
    claimed: list[int] = []
    claim = store.claim

    async def counting_claim(*args: Any, **kwargs: Any) -> Any:
        jobs = await claim(*args, **kwargs)
        claimed.extend(job.delivery_id for job in jobs)
        return jobs

    monkeypatch.setattr(store, "claim", counting_claim)
    engine = Engine(store, settings(endpoint_max_in_flight=1))
    await engine.start()
    try:
        await store.publish([e for u in ("store-1", "store-2") for e in _events(u, 5)])
        rows = await _settled(store, app["id"], 10)
    finally:
        await engine.stop()
    assert all(r.status == "delivered" for r in rows)
    # Each user's first delivery was claimed; the others followed in the records.
    assert len(claimed) == 2
    assert in_flight_peak(recorder.hits("/ok")) == 1  # the endpoint's cap
    for user in ("store-1", "store-2"):
        seqs = [h.json["data"]["seq"] for h in recorder.hits("/ok") if h.json["user_id"] == user]
        assert seqs == list(range(5))


# -- concurrency limits -----------------------------------------------------------------


async def test_the_default_in_flight_cap_holds_per_endpoint(
    store: Store, recorder: Recorder
) -> None:
    users = [f"user-{n}" for n in range(10)]
    app = await _setup(store, recorder.script("/slow", then=Answer(sleep=0.2)), users)
    engine = Engine(store, settings(endpoint_max_in_flight=3))
    await engine.start()
    try:
        await store.publish([e for u in users for e in _events(u, 2)])
        await _settled(store, app["id"], 20)
    finally:
        await engine.stop()
    assert in_flight_peak(recorder.hits("/slow")) == 3


async def test_an_unordered_endpoint_sends_one_users_events_in_parallel(
    store: Store, recorder: Recorder
) -> None:
    app = await _setup(store, recorder.script("/any", then=Answer(sleep=0.2)), ordered=False)
    engine = Engine(store, settings())
    await engine.start()
    try:
        await store.publish(_events("store-1", 5))
        await _settled(store, app["id"], 5)
    finally:
        await engine.stop()
    assert in_flight_peak(recorder.hits("/any")) > 1


# -- the address policy at send time ----------------------------------------------------


async def lying_resolver(host: str) -> list[str]:
    """Says every name is 127.0.0.1: a public name rebound to loopback after registration."""
    return ["127.0.0.1"]


@pytest.mark.parametrize("allow_private", [False, True])
async def test_a_name_rebound_to_loopback_is_not_dialled(
    store: Store, recorder: Recorder, allow_private: bool
) -> None:
    url = f"http://hooks.example.com:{recorder.port}/rebound"
    app = await _setup(store, url)
    transport = new_transport(allow_private=allow_private, resolve=lying_resolver)
    engine = Engine(store, settings(allow_private_targets=allow_private), transport=transport)
    await engine.start()
    try:
        await store.publish(_events("store-1", 1))
        (delivery,) = await _settled(store, app["id"], 1)
    finally:
        await engine.stop()
        await transport.close()
    if allow_private:  # the lying resolver does reach the recorder when that is allowed
        assert delivery.status == "delivered"
        assert len(recorder.hits("/rebound")) == 1
        return
    assert delivery.status == "failed"
    assert all(
        a.error == "hooks.example.com: refused by the address policy: 127.0.0.1 is loopback"
        for a in delivery.attempt_log
    )
    assert recorder.hits() == []


async def test_a_literal_private_address_is_refused_at_send_time(
    store: Store, recorder: Recorder
) -> None:
    # Registered while private targets were allowed; the operator has since turned that off.
    app = await _setup(store, recorder.url("/private"))
    engine = Engine(store, settings(allow_private_targets=False))
    await engine.start()
    try:
        await store.publish(_events("store-1", 1))
        (delivery,) = await _settled(store, app["id"], 1)
    finally:
        await engine.stop()
    assert delivery.status == "failed"
    assert all("127.0.0.1" in a.error for a in delivery.attempt_log)
    assert recorder.hits() == []


#: Loopback spelled as apps might, each URL with the listener's port; the socket-level
#: check must hold even for URLs that registration would refuse.
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # fullwidth digits
    "127\u30020\u30020\u30021",  # ideographic full stops
    "\u2460\u2461\u2466.\u24ea.\u24ea.\u2460",  # circled digits
    "0x7f.1",  # resolved by inet_aton
    "0x7F000001",
    "2130706433",  # refused by aiohttp itself as not canonical
    "127.1",
    "LocalHost",  # from /etc/hosts; names that need DNS would leave the machine
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
]


async def test_no_spelling_of_loopback_is_dialled_even_when_stored_unchecked(
    store: Store, sqlite_url: str
) -> None:
    async with ConnectionCounter() as listener:
        app, _ = await store.create_app("shop")
        await store.install(app.id, "store-1")
        urls = {}
        for host in LOOPBACK_SPELLINGS:
            url = f"http://{host}:{listener.port}/hook"
            endpoint = await store.create_endpoint(
                app.id, url="https://hooks.example.com/hook", event_types=["*"], timeout=5.0
            )
            urls[endpoint.id] = url
        # Straight into the table, past every check the store and registration make: the
        # socket-level policy is the one that must hold.
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
            db.executemany(
                "UPDATE endpoints SET url = ? WHERE id = ?", [(u, i) for i, u in urls.items()]
            )
        engine = Engine(store, settings(allow_private_targets=False))
        await engine.start()
        try:
            await store.publish(_events("store-1", 1))
            deliveries = await _settled(store, app.id, len(urls))
        finally:
            await engine.stop()
        assert listener.accepted == []
    for delivery in deliveries:
        url = urls[delivery.endpoint_id]
        assert delivery.attempt_log, url
        for attempt in delivery.attempt_log:
            print(f"{url}: {attempt.error}")
            error = attempt.error
            assert "refused by the address policy" in error or "not a canonical" in error, url
            assert "ssl:default" not in error


async def test_a_refused_connection_says_so_without_ssl_noise(store: Store) -> None:
    async with ConnectionCounter() as listener:
        closed = listener.port
    app = await _setup(store, f"http://127.0.0.1:{closed}/gone")
    engine = Engine(store, settings(retry=RetryPolicy(schedule=(0,))))
    await engine.start()
    try:
        await store.publish(_events("store-1", 1))
        (delivery,) = await _settled(store, app["id"], 1)
    finally:
        await engine.stop()
    assert delivery.last_error == f"connection refused by 127.0.0.1:{closed}"


# -- publishing -------------------------------------------------------------------------


async def test_a_conflicting_request_does_not_spoil_its_group_commit(
    store: Store, recorder: Recorder
) -> None:
    app = await _setup(store, recorder.url("/hook"))
    publisher = Publisher(store)
    (original,) = _events("store-1", 1)
    await publisher.publish([original])
    changed = NewEvent(original.id, original.event_type, original.user_id, '{"id": "other"}')

    results = await asyncio.gather(
        publisher.publish(_events("store-1", 2, first=1)),
        publisher.publish([*_events("store-1", 1, first=10), changed]),
        publisher.publish(_events("store-1", 1, first=3)),
        return_exceptions=True,
    )
    assert isinstance(results[1], Conflict)
    assert [p.id for p in results[0]] == ["store-1-1", "store-1-2"]  # type: ignore[union-attr]
    assert [p.id for p in results[2]] == ["store-1-3"]  # type: ignore[union-attr]
    rows = await store.list_deliveries(app["id"])
    assert sorted(r.event_id for r in rows) == [f"store-1-{n}" for n in range(4)]


# -- an attempt that goes wrong ---------------------------------------------------------


async def _fails_at_the_cap(store: Store, recorder: Recorder, path: str) -> Delivery:
    app = await _setup(store, recorder.url(path))
    engine = Engine(store, settings())
    await engine.start()
    try:
        await store.publish(_events("store-1", 1))
        (delivery,) = await _settled(store, app["id"], 1)
    finally:
        await engine.stop()
    hits = recorder.hits(path)
    # Recorded and retried on the schedule (0, 0.1, 0.2), then failed at the cap.
    assert delivery.status == "failed"
    assert delivery.attempts == len(hits) == len(FAST.schedule)
    # (The attempts' own start times: a loaded machine may delay a request's arrival.)
    started = [a.attempted_at for a in delivery.attempt_log]
    for (before, after), delay in zip(pairwise(started), FAST.schedule[1:], strict=True):
        assert after - before >= delay - 0.001
    endpoint = await store.get_endpoint(app["endpoint"].id)
    assert endpoint.failing_since is not None, "it counts toward auto-disable"
    return delivery


async def test_a_retry_after_of_non_ascii_digits_is_a_plain_failed_attempt(
    store: Store, recorder: Recorder
) -> None:
    # "²".isdigit() is true and float("²") raises: the header is ignored, not fatal.
    recorder.script("/sup", then=Answer(500, headers={"Retry-After": "\u00b2"}))
    delivery = await _fails_at_the_cap(store, recorder, "/sup")
    assert [a.status_code for a in delivery.attempt_log] == [500] * 3
    assert [a.error for a in delivery.attempt_log] == ["answered 500"] * 3


async def test_an_unexpected_error_inside_an_attempt_is_recorded_as_a_failed_attempt(
    store: Store, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(value: str | None, now: float) -> float | None:
        raise LookupError("injected")

    monkeypatch.setattr("hookline.sender.attempt.parse_retry_after", broken)
    delivery = await _fails_at_the_cap(store, recorder, "/raise")
    assert [a.status_code for a in delivery.attempt_log] == [None] * 3
    assert all("LookupError: injected" in a.error for a in delivery.attempt_log)


# -- storage bounds ---------------------------------------------------------------------


async def test_recover_counts_as_an_attempt_and_the_log_keeps_its_first_and_last(
    sqlite_url: str, recorder: Recorder
) -> None:
    store = await Store.open(sqlite_url, limits=Limits(attempt_log_head=2, attempt_log_tail=2))
    engine = Engine(store, settings())
    await engine.start()
    try:
        app = await _setup(store, recorder.script("/down", then=Answer(500)))
        await store.publish(_events("store-1", 1))
        (delivery,) = await _settled(store, app["id"], 1)
        for recovered in range(1, 4):
            # Each recover is one more attempt past the cap, not a new schedule.
            assert await store.recover_endpoint(app["endpoint"].id, since=0) == 1
            engine.wake()
            (delivery,) = await _settled(store, app["id"], 1)
            assert delivery.attempts == len(FAST.schedule) + recovered
    finally:
        await engine.stop()
    try:
        assert len(recorder.hits("/down")) == delivery.attempts == len(FAST.schedule) + 3
        assert delivery.status == "failed"
        log = delivery.attempt_log
        assert len(log) == 4 and delivery.attempts_omitted == 2
        stored = await store.db.fetch("attempts_of", ids=f"[{delivery.id}]", head=99, tail=99)
        assert [a["id"] for a in stored] == [a.id for a in log]  # dropped, not just hidden
        hits = recorder.hits("/down")
        assert [a.attempted_at for a in log] == sorted(a.attempted_at for a in log)
        assert len({h.json["token"] for h in hits}) == 1

        # Retention keys on the event's age: the recovers just now do not keep it.
        event = await store.get_event("store-1-0")
        age = time.time() - event.created_at
        assert delivery.updated_at > time.time() - age / 2
        assert await store.prune(age / 2) == 1
        assert await store.list_deliveries(app["id"]) == []
    finally:
        await store.close()
