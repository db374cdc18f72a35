"""The store operations behind the dashboard and the CLI, on every backend."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from hookline.exceptions import NotFound, ValidationError
from hookline.store import AttemptResult, NewEvent, Store
from hookline.store.deliveries import TEST_USER


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _setup(store: Store) -> tuple[str, str]:
    app, _ = await store.create_app("shop")
    await store.install(app.id, "store-1")
    endpoint = await store.create_endpoint(
        app.id, url="https://example.com/hook", event_types=["order_completed"], timeout=5
    )
    return str(app.id), str(endpoint.id)


async def _fail_everything(store: Store) -> int:
    """Claim and record every due delivery as finally failed; return how many."""
    jobs = await store.claim("t", limit=100, default_cap=64, lease_margin=5)
    now = time.time()
    results = [
        AttemptResult(job=j, outcome="failed", attempted_at=now, status_code=500) for j in jobs
    ]
    await store.record("t", results)
    return len(jobs)


async def test_send_test_reaches_one_endpoint_only(store: Store) -> None:
    app_id, endpoint_id = await _setup(store)
    # Another endpoint of the same app, subscribed to everything, gets nothing.
    await store.create_endpoint(app_id, url="https://example.org/", event_types=["*"], timeout=5)
    sent = await store.send_test(endpoint_id, "product_created", '{"id": "p-1"}')
    (delivery,) = await store.list_deliveries(app_id)
    assert delivery.endpoint_id == endpoint_id
    assert (delivery.id, delivery.status) == (sent.id, "pending")
    assert (await store.get_event(delivery.event_id)).data == {"id": "p-1"}
    assert delivery.user_id == TEST_USER
    assert delivery.event_type == "product_created"  # even though not subscribed
    (job,) = await store.claim("t", limit=10, default_cap=64, lease_margin=5)
    assert job.delivery_id == delivery.id
    assert job.data == '{"id": "p-1"}'


async def test_no_test_to_a_disabled_endpoint(store: Store) -> None:
    _, endpoint_id = await _setup(store)
    await store.update_endpoint(endpoint_id, enabled=False)
    with pytest.raises(ValidationError):
        await store.send_test(endpoint_id, "order_completed", "{}")
    with pytest.raises(NotFound):
        await store.send_test("ep_missing", "order_completed", "{}")


async def test_retry_sends_failed_deliveries_again_with_their_token(store: Store) -> None:
    app_id, endpoint_id = await _setup(store)
    events = [
        NewEvent(id=f"e{i}", event_type="order_completed", user_id="store-1", data="{}")
        for i in range(3)
    ]
    await store.publish(events)
    failed = 0
    while (n := await _fail_everything(store)) > 0:
        failed += n
    assert failed == 3
    assert await store.count_failed_deliveries(app_id=app_id) == 3
    assert await store.count_failed_deliveries(endpoint_id="ep_other") == 0
    ids = await store.failed_delivery_ids(app_id=app_id, limit=2)
    assert len(ids) == 2
    assert await store.failed_delivery_ids(app_id=app_id, after=ids[-1]) == [ids[-1] + 1]
    before = {d.id: d.token for d in await store.list_deliveries(app_id)}

    assert await store.retry_deliveries(ids) == 2
    assert await store.retry_deliveries(ids) == 0  # pending already: left alone
    assert await store.count_failed_deliveries(app_id=app_id) == 1
    jobs = await store.claim("t", limit=10, default_cap=64, lease_margin=5)
    # One user, one ordered lane: the oldest retried delivery goes first, alone.
    assert [j.delivery_id for j in jobs] == [ids[0]]
    assert jobs[0].token == before[ids[0]]
    assert endpoint_id == jobs[0].endpoint_id


async def test_timeline_buckets_by_status(store: Store) -> None:
    app_id, endpoint_id = await _setup(store)
    await store.publish(
        [NewEvent(id="a", event_type="order_completed", user_id="store-1", data="{}")]
    )
    await _fail_everything(store)
    await store.send_test(endpoint_id, "order_completed", "{}")
    now = time.time()
    rows = await store.delivery_timeline(app_id, since=now - 3600, bucket=600)
    counts = {(r.bucket, r.status): r.count for r in rows}
    assert counts == {(5, "failed"): 1, (5, "pending"): 1}
    assert await store.delivery_timeline(app_id, since=now + 60, bucket=600) == []
    only_other = await store.delivery_timeline(
        app_id, since=now - 3600, bucket=600, endpoint_id="ep_other"
    )
    assert only_other == []
