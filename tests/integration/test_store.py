"""The store's operations, each run on SQLite and on PostgreSQL (``database_url``)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import orjson
import pytest

from hookline.clock import ManualClock
from hookline.config import Limits
from hookline.exceptions import Conflict, LimitReached, NotFound, TooLarge, ValidationError
from hookline.store import AttemptResult, Endpoint, Job, NewEvent, Store
from hookline.store.claims import MAX_RUN
from tests.support.eventually import eventually

CAP = 64


@pytest.fixture
def clock() -> ManualClock:
    """The store's clock: the real time when the test starts, then moved only by the test."""
    return ManualClock(start=time.time())


@pytest.fixture
async def store(database_url: str, clock: ManualClock) -> AsyncIterator[Store]:
    store = await Store.open(database_url, clock=clock)
    try:
        yield store
    finally:
        await store.close()


def event(event_id: str, user: str, n: int = 0, event_type: str = "order_completed") -> NewEvent:
    return NewEvent(
        id=event_id, event_type=event_type, user_id=user, data=orjson.dumps({"n": n}).decode()
    )


async def app_with_endpoint(store: Store, users: list[str], **endpoint: Any) -> Endpoint:
    app, _ = await store.create_app("shop")
    for user in users:
        await store.install(app.id, user)
    options = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "timeout": 10.0}
    return await store.create_endpoint(app.id, **(options | endpoint))


async def statuses(store: Store, app_id: str) -> dict[str, int]:
    """How many of the app's deliveries are in each status, as its listing shows them."""
    rows = await store.list_deliveries(app_id, limit=1000, with_attempts=False)
    return dict(Counter(row.status for row in rows))


async def claim(store: Store, owner: str = "w1", limit: int = 100, **kw: Any) -> list[Job]:
    options = {"default_cap": CAP, "lease_margin": 15.0} | kw
    return await store.claim(owner, limit=limit, **options)


def result(job: Job, outcome: str = "delivered", **kw: Any) -> AttemptResult:
    status = {"delivered": 200, "gone": 410}.get(outcome, 500)
    options = {"status_code": status, "latency_ms": 1.0} | kw
    return AttemptResult(job=job, outcome=outcome, attempted_at=time.time(), **options)


# -- apps, installations, endpoints ----------------------------------------------------


async def test_apps_are_created_found_by_key_and_listed(store: Store) -> None:
    app, api_key = await store.create_app("shop")
    assert app.name == "shop" and api_key.startswith("hk_")
    assert (await store.get_app(app.id)).verification_key == app.verification_key
    found = await store.app_for_api_key(api_key)
    assert found is not None and found.id == app.id
    assert await store.app_for_api_key("hk_nope") is None
    assert [a.id for a in await store.list_apps()] == [app.id]
    with pytest.raises(NotFound):
        await store.get_app("app_missing")


async def test_installing_twice_keeps_one_installation(store: Store) -> None:
    app, _ = await store.create_app("shop")
    _, new = await store.install(app.id, "u1")
    _, again = await store.install(app.id, "u1")
    assert (new, again) == (True, False)
    assert [i.user_id for i in await store.list_installations(app.id)] == ["u1"]
    with pytest.raises(NotFound):
        await store.install("app_missing", "u1")


async def test_endpoints_keep_their_settings(store: Store) -> None:
    endpoint = await app_with_endpoint(
        store, [], event_types=["order_completed"], ordered=False, max_in_flight=3, timeout=2.5
    )
    row = await store.get_endpoint(endpoint.id)
    assert row.event_types == ("order_completed",)
    assert (row.ordered, row.max_in_flight, row.timeout, row.enabled) == (0, 3, 2.5, 1)
    assert [e.id for e in await store.list_endpoints(row.app_id)] == [endpoint.id]
    with pytest.raises(NotFound):
        await store.get_endpoint("ep_missing")


# -- publishing ---------------------------------------------------------------------------


async def test_publish_fans_out_to_matching_endpoints_of_installed_apps(store: Store) -> None:
    everything = await app_with_endpoint(store, ["u1", "u2"])
    app_id = everything.app_id
    await store.create_endpoint(
        app_id, url="http://127.0.0.1:9/orders", event_types=["order_completed"], timeout=10
    )
    published = await store.publish(
        [
            event("e1", "u1", event_type="order_completed"),
            event("e2", "u2", event_type="product_created"),
            event("e3", "stranger"),
        ]
    )
    assert [(p.id, p.deliveries, p.duplicate) for p in published] == [
        ("e1", 2, False),
        ("e2", 1, False),
        ("e3", 0, False),
    ]
    deliveries = await store.list_deliveries(app_id)
    assert sorted((d.event_id, d.user_id) for d in deliveries) == [
        ("e1", "u1"),
        ("e1", "u1"),
        ("e2", "u2"),
    ]
    assert len({d.token for d in deliveries}) == 3
    assert (await store.get_event("e3")).user_id == "stranger"


async def test_the_same_event_id_again_publishes_nothing_new(store: Store) -> None:
    endpoint = await app_with_endpoint(store, ["u1"])
    first = await store.publish([event("e1", "u1")])
    again = await store.publish([event("e1", "u1"), event("e1", "u1")])
    assert [p.duplicate for p in first + again] == [False, True, True]
    assert again[0].created_at == first[0].created_at
    assert len(await store.list_deliveries(endpoint.app_id)) == 1


async def test_the_same_event_id_with_other_data_is_a_conflict(store: Store) -> None:
    endpoint = await app_with_endpoint(store, ["u1"])
    await store.publish([event("e1", "u1", n=1)])
    with pytest.raises(Conflict):
        await store.publish([event("e2", "u1"), event("e1", "u1", n=2)])
    with pytest.raises(NotFound):  # nothing of the failed batch was kept
        await store.get_event("e2")
    assert len(await store.list_deliveries(endpoint.app_id)) == 1


async def test_publish_keeps_the_data_text_exactly(store: Store) -> None:
    await app_with_endpoint(store, ["u1"])
    text = '{"id":7,"name":"caf\\u00e9 \\"x\\"","nested":{"a":[1,2.50,null]}}'
    await store.publish([NewEvent(id="e1", event_type="order_completed", user_id="u1", data=text)])
    (job,) = await claim(store)
    assert job.data == text


# -- claiming and recording --------------------------------------------------------------


async def test_one_user_is_delivered_one_at_a_time_in_event_order(store: Store) -> None:
    endpoint = await app_with_endpoint(store, ["u1", "u2"])
    await store.publish([event(f"a{i}", "u1", i) for i in range(3)])
    await store.publish([event("b0", "u2")])
    await store.publish([event("a3", "u1", 3)])
    seen: list[str] = []
    while jobs := await claim(store):
        assert len({job.lane for job in jobs}) == len(jobs)  # one per lane
        assert await claim(store, owner="w2") == []  # the lanes are leased
        seen += [job.event_id for job in jobs]
        await store.record("w1", [result(job) for job in jobs])
    assert [e for e in seen if e.startswith("a")] == ["a0", "a1", "a2", "a3"]
    assert "b0" in seen[:2]  # the other user did not wait behind u1
    assert await statuses(store, endpoint.app_id) == {"delivered": 5}


async def test_unordered_endpoints_send_a_users_deliveries_at_once(store: Store) -> None:
    await app_with_endpoint(store, ["u1"], ordered=False)
    await store.publish([event(f"e{i}", "u1", i) for i in range(5)])
    jobs = await claim(store)
    assert sorted(job.event_id for job in jobs) == [f"e{i}" for i in range(5)]


async def test_a_job_carries_everything_needed_to_send_it(store: Store) -> None:
    endpoint = await app_with_endpoint(store, ["u1"], timeout=3.0)
    app = await store.get_app(endpoint.app_id)
    await store.publish([event("e1", "u1", 5)])
    (job,) = await claim(store)
    assert (job.event_id, job.user_id, job.event_type, job.attempts) == (
        "e1",
        "u1",
        "order_completed",
        0,
    )
    assert (job.url, job.timeout, job.endpoint_id) == (endpoint.url, 3.0, endpoint.id)
    assert job.keys == (app.verification_key,)
    assert len(job.token) == 48


async def test_a_job_carries_the_trace_context_its_event_was_published_with(
    store: Store,
) -> None:
    await app_with_endpoint(store, ["u1"])
    given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = NewEvent(id="e1", event_type="order_completed", user_id="u1", data="{}")
    await store.publish([replace(traced, traceparent=given), event("e2", "u1")])
    first, second = await claim(store), None
    assert [job.traceparent for job in first] == [given]
    await store.record("w1", [result(first[0])])
    (second,) = await claim(store)
    assert second.event_id == "e2" and second.traceparent is None
    assert (await store.get_event("e1")).traceparent == given


async def test_the_in_flight_cap_of_an_endpoint_holds_across_claimers(store: Store) -> None:
    await app_with_endpoint(store, [f"u{i}" for i in range(6)], max_in_flight=2)
    await store.publish([event(f"e{i}", f"u{i}") for i in range(6)])
    first = await claim(store, owner="w1")
    assert len(first) == 2
    assert await claim(store, owner="w2") == []
    await store.record("w1", [result(first[0])])
    assert len(await claim(store, owner="w2")) == 1


async def test_the_default_cap_applies_to_endpoints_without_one(store: Store) -> None:
    await app_with_endpoint(store, [f"u{i}" for i in range(5)])
    await store.publish([event(f"e{i}", f"u{i}") for i in range(5)])
    assert len(await claim(store, default_cap=3)) == 3


async def test_concurrent_claimers_never_share_a_lane_and_keep_the_cap(
    database_url: str, store: Store
) -> None:
    await app_with_endpoint(store, [f"u{i}" for i in range(40)], max_in_flight=10)
    await store.publish([event(f"e{u}-{i}", f"u{u}", i) for i in range(3) for u in range(40)])
    others = [await Store.open(database_url) for _ in range(3)]
    try:
        batches = await asyncio.gather(
            *(claim(s, owner=f"w{n}", limit=8) for n, s in enumerate([store, *others]))
        )
    finally:
        for other in others:
            await other.close()
    jobs = [job for batch in batches for job in batch]
    assert len(jobs) == 10
    assert len({job.lane for job in jobs}) == 10
    assert {job.event_id.split("-")[1] for job in jobs} == {"0"}  # each lane's head


async def test_a_lane_whose_lease_ran_out_is_claimed_again_with_the_same_token(
    store: Store, clock: ManualClock
) -> None:
    endpoint = await app_with_endpoint(store, ["u1"], timeout=0.1)
    await store.publish([event("e1", "u1"), event("e2", "u1")])
    (lost,) = await claim(store, owner="dead", lease_margin=0.0)
    assert await claim(store, owner="w2", lease_margin=0.0) == []
    clock.advance(0.25)
    (again,) = await claim(store, owner="w2")
    assert (again.delivery_id, again.token, again.event_id) == (lost.delivery_id, lost.token, "e1")
    # The presumed-dead worker records late: the delivery is done, the lease stays w2's.
    await store.record("dead", [result(lost)])
    assert await claim(store, owner="w3") == []
    await store.record("w2", [result(again)])
    (nxt,) = await claim(store, owner="w3")
    assert nxt.event_id == "e2"
    assert await statuses(store, endpoint.app_id) == {"delivered": 1, "pending": 1}


async def test_a_retry_waits_for_its_time_and_keeps_its_place(
    store: Store, clock: ManualClock
) -> None:
    endpoint = await app_with_endpoint(store, ["u1"])
    await store.publish([event("e1", "u1"), event("e2", "u1")])
    (job,) = await claim(store)
    await store.record("w1", [result(job, "retry", retry_at=clock.now() + 0.3, error="boom")])
    assert await claim(store) == []  # e2 waits behind e1
    clock.advance(0.29)
    assert await claim(store) == []  # not yet
    clock.advance(0.02)
    (again,) = await claim(store)
    assert (again.event_id, again.attempts, again.token) == ("e1", 1, job.token)
    await store.record("w1", [result(again, "failed", error="gave up")])
    (nxt,) = await claim(store)
    assert nxt.event_id == "e2"
    failed = (await store.list_deliveries(endpoint.app_id, status="failed"))[0]
    assert (failed.attempts, failed.last_error) == (2, "gave up")
    assert [a.outcome for a in failed.attempt_log] == ["retry", "failed"]


async def test_gone_disables_the_endpoint_and_stops_its_deliveries(store: Store) -> None:
    endpoint = await app_with_endpoint(store, ["u1", "u2"])
    await store.publish([event("e1", "u1"), event("e2", "u2")])
    jobs = await claim(store)
    await store.record("w1", [result(jobs[0], "gone"), result(jobs[1], "retry", retry_at=0.0)])
    row = await store.get_endpoint(endpoint.id)
    assert row.enabled == 0 and "410" in row.disabled_reason
    assert await claim(store) == []
    await store.publish([event("e3", "u1")])
    assert (await store.list_deliveries(endpoint.app_id, user_id="u1"))[0].event_id == "e1"


async def test_an_attempt_whose_endpoint_was_deleted_meanwhile_is_dropped(store: Store) -> None:
    """Deleting an endpoint (or its app) takes its deliveries along while one may be in
    flight: recording that attempt must not fail, or the engine would retry the record
    forever and record nothing else."""
    gone = await app_with_endpoint(store, ["u1"])
    kept = await app_with_endpoint(store, ["u2"])
    await store.publish([event("e1", "u1"), event("e2", "u2")])
    jobs = {job.endpoint_id: job for job in await claim(store)}
    await store.delete_endpoint(gone.id)
    await store.record("w1", [result(jobs[gone.id]), result(jobs[kept.id])])
    [delivery] = await store.list_deliveries(kept.app_id)
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert await store.list_deliveries(gone.app_id) == []


async def _blocked_on_a_lock(conn: asyncpg.Connection) -> None:
    """Wait until some session of this database waits for a lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    await eventually(lambda: conn.fetchval(query), message="a session waiting for a lock")


@pytest.mark.postgres
@pytest.mark.parametrize("delete", ["endpoint", "app"])
async def test_a_delete_beside_a_record_that_marks_the_endpoint_waits_for_it(
    postgres_url: str, delete: str
) -> None:
    """A record takes its lanes first, then marks the endpoint failing (its first failed
    attempt) or healthy. Deleting the endpoint, or its app, at that moment must wait for
    the record, not dead-lock with it: PostgreSQL ends a dead-lock by failing one side,
    and the delete was the one that failed (a 500 from the API)."""
    store = await Store.open(postgres_url)
    record = await asyncpg.connect(postgres_url)  # the statements a record runs, by hand
    try:
        endpoint = await app_with_endpoint(store, ["u1"])
        await store.publish([event("e1", "u1")])
        async with record.transaction():
            await record.execute(
                "SELECT 1 FROM lanes WHERE endpoint_id = $1 FOR UPDATE", endpoint.id
            )
            deleting = asyncio.create_task(
                store.delete_endpoint(endpoint.id)
                if delete == "endpoint"
                else store.delete_app(endpoint.app_id)
            )
            await _blocked_on_a_lock(record)
            await record.execute(
                "UPDATE endpoints SET failing_since = 1 WHERE id = $1 AND failing_since IS NULL",
                endpoint.id,
            )
        await deleting
        with pytest.raises(NotFound):
            await store.get_endpoint(endpoint.id)
    finally:
        await record.close()
        await store.close()


async def test_release_hands_claimed_lanes_to_another_worker(store: Store) -> None:
    await app_with_endpoint(store, ["u1"])
    await store.publish([event("e1", "u1")])
    (job,) = await claim(store, owner="w1")
    await store.release("w1")
    (again,) = await claim(store, owner="w2")
    assert again.delivery_id == job.delivery_id


# -- reading ---------------------------------------------------------------------------


async def test_deliveries_are_listed_newest_first_with_filters_and_attempts(store: Store) -> None:
    endpoint = await app_with_endpoint(store, ["u1", "u2"])
    app_id = endpoint.app_id
    await store.publish([event("e1", "u1"), event("e2", "u2", event_type="product_created")])
    jobs = await claim(store)
    await store.record("w1", [result(job) for job in jobs])
    listed = await store.list_deliveries(app_id)
    assert [d.event_id for d in listed] == ["e2", "e1"]
    assert [d.event_id for d in await store.list_deliveries(app_id, user_id="u1")] == ["e1"]
    assert [
        d.event_id for d in await store.list_deliveries(app_id, event_type="product_created")
    ] == ["e2"]
    assert await store.list_deliveries(app_id, endpoint_id="ep_other") == []
    assert await store.list_deliveries(app_id, since=time.time() + 60) == []
    older = await store.list_deliveries(app_id, before=listed[0].id, limit=1)
    assert [d.event_id for d in older] == ["e1"]
    one = await store.get_delivery(listed[1].id)
    assert one.url == endpoint.url and one.status == "delivered"
    assert [a.status_code for a in one.attempt_log] == [200]
    with pytest.raises(NotFound):
        await store.get_delivery(10**9)


# -- retention -------------------------------------------------------------------------


async def test_prune_removes_old_finished_events_with_their_attempts(
    store: Store, clock: ManualClock
) -> None:
    endpoint = await app_with_endpoint(store, ["u1", "u2"])
    app_id = endpoint.app_id
    await store.publish([event(f"old{i}", "u1", i) for i in range(5)] + [event("stuck", "u2")])
    while jobs := await claim(store):
        later = clock.now() + 60
        await store.record(
            "w1",
            [result(j, "retry", retry_at=later) if j.user_id == "u2" else result(j) for j in jobs],
        )
    assert await store.prune(3600) == 0  # nothing is an hour old
    clock.advance(0.05)
    await store.publish([event("new", "u1")])
    assert await store.prune(0.02, batch=2) == 5  # in three batches
    remaining = {d.event_id: d for d in await store.list_deliveries(app_id)}
    assert set(remaining) == {"stuck", "new"}  # pending ones stay, whatever their age
    with pytest.raises(NotFound):
        await store.get_event("old0")
    assert await statuses(store, app_id) == {"pending": 2}


async def test_test_notifications_are_pruned_like_any_delivery(
    store: Store, clock: ManualClock
) -> None:
    endpoint = await app_with_endpoint(store, [])
    for _ in range(3):
        await store.send_test(endpoint.id, "order_completed", '{"id": 1}')
    while jobs := await claim(store):
        await store.record("w1", [result(j) for j in jobs])
    clock.advance(0.05)
    assert await store.prune(0.02) == 3
    assert await store.list_deliveries(endpoint.app_id) == []


async def test_the_schema_is_current_after_open(database_url: str, store: Store) -> None:
    from hookline.store.queries import load_migrations

    latest = load_migrations(store.db.dialect)[-1][0]
    assert await store.db.schema_version() == latest
    assert await store.db.migrate() == []  # idempotent


# -- notifications ---------------------------------------------------------------------


async def test_other_processes_hear_of_a_publish(database_url: str, store: Store) -> None:
    await app_with_endpoint(store, ["u1"])
    other = await Store.open(database_url)
    heard = asyncio.Event()
    subscription = await other.on_published(heard.set)
    try:
        if store.db.dialect == "postgres":
            # It calls once when it starts listening (it may have missed a NOTIFY before);
            # a SQLite listener's socket is bound before on_published returns.
            await asyncio.wait_for(heard.wait(), 10)
            heard.clear()
        await store.publish([event("e1", "u1")])
        await asyncio.wait_for(heard.wait(), 10)
    finally:
        await subscription.close()
        await other.close()


# -- limits -----------------------------------------------------------------------------


async def test_an_app_has_at_most_its_endpoints_even_when_creates_race(database_url: str) -> None:
    limits = Limits(max_endpoints_per_app=3)
    stores = [await Store.open(database_url, limits=limits) for _ in range(3)]
    try:
        app, _ = await stores[0].create_app("shop")

        async def create(n: int) -> Any:
            return await stores[n % 3].create_endpoint(
                app.id, url=f"http://127.0.0.1:9/{n}", event_types=["*"], timeout=1
            )

        outcomes = await asyncio.gather(*(create(n) for n in range(12)), return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, LimitReached)]
        assert len(refused) == 9, outcomes
        assert "HOOKLINE_MAX_ENDPOINTS_PER_APP=3" in refused[0].message
        assert len(await stores[0].list_endpoints(app.id)) == 3
        other, _ = await stores[0].create_app("other")  # a limit per app, not overall
        await create_in(stores[0], other.id)
    finally:
        for s in stores:
            await s.close()


async def create_in(store: Store, app_id: str, **settings: Any) -> Endpoint:
    options = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "timeout": 10.0}
    return await store.create_endpoint(app_id, **(options | settings))


async def test_endpoint_timeout_and_in_flight_are_bounded(database_url: str) -> None:
    store = await Store.open(database_url, limits=Limits(max_timeout=30, max_in_flight=100))
    try:
        app, _ = await store.create_app("shop")
        with pytest.raises(ValidationError, match="HOOKLINE_MAX_TIMEOUT"):
            await create_in(store, app.id, timeout=30.5)
        with pytest.raises(ValidationError, match="HOOKLINE_MAX_IN_FLIGHT"):
            await create_in(store, app.id, max_in_flight=101)
        assert await store.list_endpoints(app.id) == []
        endpoint = await create_in(store, app.id, timeout=30, max_in_flight=100)
        with pytest.raises(ValidationError, match="HOOKLINE_MAX_TIMEOUT"):
            await store.update_endpoint(endpoint.id, timeout=31)
        with pytest.raises(ValidationError, match="HOOKLINE_MAX_IN_FLIGHT"):
            await store.update_endpoint(endpoint.id, max_in_flight=500)
        unchanged = await store.get_endpoint(endpoint.id)
        assert (unchanged.timeout, unchanged.max_in_flight) == (30, 100)
    finally:
        await store.close()


async def test_an_older_endpoint_with_a_longer_timeout_is_held_to_the_limit(
    database_url: str,
) -> None:
    before = await Store.open(database_url, limits=Limits(max_timeout=60))
    try:
        await app_with_endpoint(before, ["u1"], timeout=60)
        await before.publish([event("e1", "u1")])
    finally:
        await before.close()
    store = await Store.open(database_url, limits=Limits(max_timeout=30))
    try:
        (job,) = await claim(store, lease_margin=1.0)
        assert job.timeout == 30
    finally:
        await store.close()


async def test_an_app_gets_its_cap_and_its_fair_share_across_claimers(store: Store) -> None:
    # Two apps, each with two endpoints and plenty due; claims from two workers.
    apps = []
    for name in ("a", "b"):
        app, _ = await store.create_app(name)
        await store.install(app.id, f"{name}-user")
        for _ in range(2):
            await create_in(store, app.id, ordered=False)
        apps.append(app)
    await store.publish([event(f"{u}-{i}", f"{u}-user", i) for u in "ab" for i in range(40)])

    a, b = apps[0].id, apps[1].id
    # Apps take turns within a claim.
    turns = await claim(store, owner="w1", limit=4, app_cap=30, slots=20)
    assert Counter(j.app_id for j in turns) == {a: 2, b: 2}
    # The share is 20 slots / 2 apps = 10 each (below the app cap), counting what is held.
    more = await claim(store, owner="w2", limit=100, app_cap=30, slots=20)
    assert Counter(j.app_id for j in more) == {a: 8, b: 8}
    assert await claim(store, owner="w1", limit=100, app_cap=30, slots=20) == []
    # A lower app cap binds first; it counts what other workers hold.
    await store.record("w1", [result(j) for j in turns])
    await store.record("w2", [result(j) for j in more])
    few = await claim(store, owner="w1", limit=100, app_cap=3, slots=20)
    assert Counter(j.app_id for j in few) == {a: 3, b: 3}
    assert await claim(store, owner="w2", limit=100, app_cap=3, slots=20) == []


async def test_a_publish_past_the_delivery_bound_writes_nothing(database_url: str) -> None:
    store = await Store.open(database_url, limits=Limits(max_deliveries_per_publish=5000))
    try:
        app, _ = await store.create_app("wide")
        await store.install(app.id, "u1")
        for n in range(100):  # the most endpoints one app may have, each taking every event
            await create_in(store, app.id, url=f"http://127.0.0.1:9/{n}")

        started = time.perf_counter()
        with pytest.raises(TooLarge, match=r"would make 5100 deliveries.*at most 5000"):
            await store.publish([event(f"e{i}", "u1", i) for i in range(51)])
        refused = time.perf_counter() - started
        assert await store.list_deliveries(app.id) == []
        with pytest.raises(NotFound):
            await store.get_event("e0")

        started = time.perf_counter()
        (first, *_) = await store.publish([event(f"e{i}", "u1", i) for i in range(50)])
        accepted = time.perf_counter() - started
        assert first.deliveries == 100
        print(
            f"\n[{store.db.dialect}] a publish of 50 events x 100 endpoints (5,000 deliveries, "
            f"the bound) took {accepted * 1000:.0f} ms; one of 5,100 was refused in "
            f"{refused * 1000:.0f} ms, before writing"
        )
    finally:
        await store.close()


# -- keeping a lane for its next delivery ------------------------------------------------


async def keep(store: Store, owner: str, results: list[AttemptResult], **kw: Any) -> list[Job]:
    """Record as the engine does, with room to send what the record hands back."""
    options = {"keep": 100, "default_cap": CAP, "lease_margin": 15.0} | kw
    return await store.record(owner, results, **options)


async def lanes_left(database_url: str) -> int:
    if database_url.startswith("sqlite:"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            return int(db.execute("SELECT COUNT(*) FROM lanes").fetchone()[0])
        finally:
            db.close()
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM lanes"))
    finally:
        await conn.close()


async def test_a_lane_goes_on_with_its_next_head_in_the_record_of_the_last(
    database_url: str, store: Store
) -> None:
    endpoint = await app_with_endpoint(store, ["u1"])
    await store.publish([event(f"e{i}", "u1", i) for i in range(3)])
    (job,) = await claim(store)
    sent = [job.event_id]
    while job_list := await keep(store, "w1", [result(job)]):
        (job,) = job_list
        assert await claim(store, owner="w2") == []  # still this worker's, one in flight
        sent.append(job.event_id)
        assert job.run == len(sent) - 1
    assert sent == ["e0", "e1", "e2"]
    assert await statuses(store, endpoint.app_id) == {"delivered": 3}
    assert await lanes_left(database_url) == 0


async def test_a_kept_lane_holds_to_a_lowered_endpoint_cap(store: Store) -> None:
    endpoint = await app_with_endpoint(store, ["u1", "u2"], max_in_flight=2)
    await store.publish([event(f"{u}-{i}", u, i) for u in ("u1", "u2") for i in range(3)])
    first = await claim(store)
    assert len(first) == 2
    await store.update_endpoint(endpoint.id, max_in_flight=1)
    # Two lanes held against a cap of one: neither is kept; a claim gives out one.
    assert await keep(store, "w1", [result(j) for j in first]) == []
    assert len(await claim(store)) == 1


async def test_a_kept_lane_counts_against_its_endpoint_cap(store: Store) -> None:
    await app_with_endpoint(store, [f"u{i}" for i in range(4)], max_in_flight=2)
    await store.publish([event(f"u{u}-{i}", f"u{u}", i) for u in range(4) for i in range(3)])
    held = await claim(store, owner="w1")
    assert len(held) == 2
    for _ in range(2):
        held = await keep(store, "w1", [result(j) for j in held])
        assert len(held) == 2
        assert await claim(store, owner="w2") == []  # the endpoint stays at its cap
    assert await keep(store, "w1", [result(j) for j in held]) == []  # both lanes done
    assert len(await claim(store, owner="w2")) == 2


async def test_a_paused_or_disabled_endpoint_keeps_no_lane(store: Store) -> None:
    await app_with_endpoint(store, ["u1", "u2"])
    await store.publish([event(f"{u}-{i}", u, i) for u in ("u1", "u2") for i in range(2)])
    jobs = await claim(store)
    ok, slow = sorted(jobs, key=lambda j: j.user_id)
    # One answer says "slow down": the endpoint is paused, so the other lane is not kept.
    throttled = result(slow, "retry", retry_at=time.time(), throttle_for=5.0)
    assert await keep(store, "w1", [result(ok), throttled]) == []
    assert await claim(store) == []  # paused

    other = await app_with_endpoint(store, ["v1"])
    await store.publish([event(f"v-{i}", "v1", i) for i in range(2)])
    (job,) = [j for j in await claim(store) if j.endpoint_id == other.id]
    assert await keep(store, "w1", [result(job, "gone")]) == []  # 410: disabled


async def test_a_lane_whose_head_failed_waits_for_its_retry(store: Store) -> None:
    await app_with_endpoint(store, ["u1"])
    await store.publish([event("e1", "u1"), event("e2", "u1")])
    (job,) = await claim(store)
    assert await keep(store, "w1", [result(job, "retry", retry_at=time.time() + 60)]) == []
    assert await claim(store) == []


async def test_a_lane_goes_back_to_the_claims_after_a_run(store: Store) -> None:
    await app_with_endpoint(store, ["u1"])
    await store.publish([event(f"e{i}", "u1", i) for i in range(MAX_RUN + 1)])
    (job,) = await claim(store)
    run = 1
    while kept := await keep(store, "w1", [result(job)]):
        (job,) = kept
        run += 1
    assert run == MAX_RUN  # the claimed delivery and those that followed it
    (nxt,) = await claim(store, owner="w2")
    assert (nxt.event_id, nxt.run) == (f"e{MAX_RUN}", 0)


async def test_a_kept_lane_whose_worker_died_is_sent_again_with_the_same_token(
    store: Store, clock: ManualClock
) -> None:
    endpoint = await app_with_endpoint(store, ["u1"], timeout=0.1)
    await store.publish([event("e1", "u1"), event("e2", "u1")])
    (first,) = await claim(store, owner="dead", lease_margin=0.0)
    (kept,) = await keep(store, "dead", [result(first)], lease_margin=0.0)
    assert await claim(store, owner="w2") == []  # kept, not yet run out
    clock.advance(0.25)  # the worker died with e2 in flight
    (again,) = await claim(store, owner="w2")
    assert (again.delivery_id, again.token, again.event_id) == (kept.delivery_id, kept.token, "e2")
    await store.record("w2", [result(again)])
    assert await statuses(store, endpoint.app_id) == {"delivered": 2}


async def test_a_rate_limited_endpoint_keeps_no_lane(store: Store) -> None:
    await app_with_endpoint(store, ["u1"], rate_limit=100.0, rate_limit_burst=5)
    await store.publish([event(f"e{i}", "u1", i) for i in range(2)])
    (job,) = await claim(store)
    # Its next delivery goes through a claim, which takes it from the endpoint's limit.
    assert await keep(store, "w1", [result(job)]) == []
    (nxt,) = await claim(store)
    assert nxt.event_id == "e1"


async def test_the_lanes_table_is_vacuumed_while_lanes_are_leased(
    database_url: str, store: Store
) -> None:
    await app_with_endpoint(store, ["u1"])
    await store.publish([event(f"e{i}", "u1", i) for i in range(3)])
    (job,) = await claim(store)
    (job,) = await keep(store, "w1", [result(job)])
    await store.vacuum_lanes()  # beside a held lease, outside any transaction
    assert await keep(store, "w1", [result(job)]) != []
    assert await lanes_left(database_url) == 1
