"""Publishing through the outbox, with crashes: 1,000 platform transactions, each
inserting an order and publishing its event into the outbox of the platform's own
database, 30 % of them rolled back, while ``hookline relay`` moves the rows to hookline
(its API, or its database) and the relay and a ``hookline worker`` are killed with
SIGKILL five times each and started again.

What arrives at the sink is exactly the committed orders: none lost, none of a rolled-
back transaction, a repeat only of the same delivery (same token), each user's in order.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest

from hookline.outbox import source
from hookline.store import Store
from tests.acceptance.scale.cluster import (
    Proc,
    Sink,
    judge,
    make_app,
    start_api,
    stop_all,
    worker,
)
from tests.conftest import fresh_postgres
from tests.support.eventually import eventually
from tests.support.platforms import Platform, open_platform

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

USERS = 20
#: The relay and a worker are killed once in each round; 5 x 20 users x 10 = 1,000.
ROUNDS, PER_ROUND = 5, 10
ROLLED_BACK = 0.3
EVENTS = "SELECT count(*) FROM events"  # in hookline's database


@pytest.fixture
async def platform_db() -> AsyncIterator[str]:
    """The platform's own database, with the outbox installed."""
    async with fresh_postgres() as url:
        await source.install(url)
        yield url


async def _orders(platform: Platform, user: int, round_: int, committed: set[str]) -> None:
    """One round of one user's transactions, one after another (so each user's events
    have an order to keep), each committed or, 30 % of the time, rolled back."""
    rng = random.Random(f"{user}-{round_}")
    for i in range(PER_ROUND):
        n = round_ * PER_ROUND + i
        order_id = f"o{user}-{n}"
        async with platform.transaction():
            await platform.insert_order(order_id)
            await platform.publish(
                event_type="order_completed",
                user_id=f"u{user}",
                data={"id": order_id, "n": n},
                event_id=f"order-{order_id}",
            )
            # The platform's own work: other users' transactions, begun later, commit
            # before this one (ids and commit order differ).
            await asyncio.sleep(rng.uniform(0, 0.3))
            if rng.random() < ROLLED_BACK:
                platform.roll_back()
            else:
                committed.add(f"order-{order_id}")


async def _count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _settled(hookline_url: str, deliveries: int) -> None:
    """Every delivery is recorded as delivered: no repeat is on its way to the sink."""
    store = await Store.open(hookline_url, migrate=False)
    try:
        (app,) = await store.list_apps()

        async def done() -> bool:
            rows = await store.list_deliveries(app.id, limit=deliveries + 1, with_attempts=False)
            return Counter(row.status for row in rows) == {"delivered": deliveries}

        await eventually(done, message="every delivery recorded as delivered")
    finally:
        await store.close()


@pytest.mark.parametrize("to", ["api", "database"])
async def test_kill9_of_the_relay_and_workers_delivers_exactly_the_committed_orders(
    to: str, tmp_path: Path, postgres_url: str, platform_db: str
) -> None:
    sink = await Sink().start()
    api, base = await start_api(postgres_url, tmp_path)
    workers = [worker(f"w{i}", postgres_url, tmp_path).start() for i in range(2)]
    target = base if to == "api" else postgres_url
    # The admin token comes from the environment (cluster.ENV), not the command line.
    relay = Proc(
        "relay",
        ["relay", "--from", platform_db, "--to", target, "--poll", "0.5", "--batch", "50"],
        tmp_path,
    ).start()
    committed: set[str] = set()
    try:
        await make_app(base, USERS, sink.url(), cap=64)
        async with AsyncExitStack() as stack:
            platforms = [
                await stack.enter_async_context(open_platform("asyncpg", platform_db))
                for _ in range(USERS)
            ]
            chaos = random.Random(7)
            for round_ in range(ROUNDS):
                relayed = await _count(postgres_url, EVENTS)
                load = asyncio.gather(
                    *(_orders(platforms[u], u, round_, committed) for u in range(USERS))
                )

                async def relaying(since: int = relayed) -> bool:
                    return await _count(postgres_url, EVENTS) > since

                # Killed while it relays, at a random moment, with more being committed.
                await eventually(relaying, message=relay.log)
                await asyncio.sleep(chaos.uniform(0, 0.2))
                relay.kill9()
                relay.start()
                workers[round_ % 2].kill9()
                workers[round_ % 2].start()
                await load
            orders = await platforms[0].orders()
        assert {f"order-{o}" for o in orders} == committed
        await eventually(
            lambda: sink.distinct() >= len(committed),
            timeout=120,
            message=lambda: f"{sink.distinct()} of {len(committed)} arrived\n{relay.log()}",
        )

        async def outbox_empty() -> bool:
            return await _count(platform_db, "SELECT count(*) FROM hookline.outbox") == 0

        await eventually(outbox_empty, message=lambda: f"the outbox emptied\n{relay.log()}")
        await _settled(postgres_url, len(committed))
    finally:
        await stop_all([relay, *workers, api])
        await sink.stop()

    assert relay.kills == ROUNDS and sum(w.kills for w in workers) == ROUNDS
    assert 600 < len(committed) < 800  # about 30 % of 1,000 rolled back
    assert {a.event_id for a in sink.arrivals} == committed
    verdict = judge(sink, committed, USERS)
    assert verdict.lost == []
    assert verdict.changed_tokens == []  # a repeat is the same delivery again
    assert verdict.out_of_order == []
    # A row relayed again after a kill was a duplicate to hookline, not a new event.
    assert await _count(postgres_url, EVENTS) == len(committed)
    print(
        f"{len(committed)} committed of {ROUNDS * PER_ROUND * USERS}; "
        f"{len(sink.arrivals)} arrivals, {verdict.duplicates} repeated"
    )
