"""Publishing inside the platform's transactions, while workers are killed: exactly the
committed orders arrive.

The platform runs 1,000 transactions, each inserting an order and publishing its event
through the driver under test; 30 % of them roll back, at random. Meanwhile two
``hookline worker`` processes deliver to a sink on loopback, and one of them is killed
with SIGKILL (and started again) five times. At the end the event ids that arrived are
exactly the committed orders, each event's repeats carry its first token, and each
user's events arrived first in the order they were committed.

Four platform connections publish side by side, each for users of its own, so one
user's transactions follow one another and their commit order is known.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookline.store import Store
from tests.acceptance.scale.cluster import Proc, Sink, worker
from tests.conftest import fresh_postgres
from tests.support.eventually import eventually
from tests.support.platforms import POSTGRES_DRIVERS, SQLITE_DRIVERS, open_platform

TRANSACTIONS = 1000
CONNECTIONS = 4
USERS_PER_CONNECTION = 5
ROLLED_BACK = 0.3
KILLS = 5

DRIVERS = [pytest.param(d, marks=pytest.mark.postgres) for d in POSTGRES_DRIVERS] + [
    *SQLITE_DRIVERS
]


@pytest.fixture(params=DRIVERS)
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str, str]]:
    """(driver, the platform's URL, hookline's URL for the same database)."""
    driver: str = request.param
    if driver in SQLITE_DRIVERS:
        url = f"sqlite:///{tmp_path}/hookline.db"
        yield driver, url, url
        return
    async with fresh_postgres() as url:
        yield driver, url, url + "?schema=hookline"


async def _set_up(hookline_url: str, sink: Sink) -> str:
    """The app the platform's users installed, with one endpoint at the sink: its id."""
    store = await Store.open(hookline_url)
    try:
        app, _ = await store.create_app("shop")
        for n in range(CONNECTIONS * USERS_PER_CONNECTION):
            await store.install(app.id, f"store-{n}")
        await store.create_endpoint(app.id, url=sink.url(), event_types=["*"], timeout=2)
        return app.id
    finally:
        await store.close()


async def _run_platform(
    driver: str, url: str, which: int, chosen: random.Random, committed: dict[str, list[int]]
) -> None:
    """Its share of the transactions, one after another, for its own users."""
    users = [f"store-{which * USERS_PER_CONNECTION + k}" for k in range(USERS_PER_CONNECTION)]
    async with open_platform(driver, url) as platform:
        for n in range(which, TRANSACTIONS, CONNECTIONS):
            user = users[n % USERS_PER_CONNECTION]
            keep = chosen.random() >= ROLLED_BACK
            async with platform.transaction():
                await platform.insert_order(f"o-{n}")
                await platform.publish(
                    event_type="order_completed",
                    user_id=user,
                    data={"id": f"o-{n}", "n": n},
                    event_id=f"order-{n}",
                )
                if not keep:
                    platform.roll_back()
            if keep:
                committed[user].append(n)


async def _kill_workers(workers: list[Proc], sink: Sink, expected: int) -> None:
    """SIGKILL a worker ``KILLS`` times as the deliveries arrive, starting it again each
    time (as a supervisor would)."""
    for k in range(KILLS):
        goal = expected * (k + 1) // (KILLS + 2)
        await eventually(
            lambda goal=goal: sink.distinct() >= goal,
            timeout=180,
            message=lambda: workers[0].log(),
        )
        victim = workers[k % len(workers)]
        victim.kill9()
        victim.start()


@pytest.mark.slow
async def test_exactly_the_committed_orders_arrive_while_workers_are_killed(
    database: tuple[str, str, str], tmp_path: Path
) -> None:
    driver, url, hookline_url = database
    sink = await Sink(hold=0.002).start()
    app_id = await _set_up(hookline_url, sink)
    async with open_platform(driver, url):
        pass  # its orders table, made once before the connections race to make it
    workers = [worker(f"worker-{n}", hookline_url, tmp_path).start() for n in range(2)]
    chosen = random.Random(1313)
    committed: dict[str, list[int]] = defaultdict(list)
    try:
        # About 70 % of the transactions commit; the kills are spread over those.
        killing = asyncio.create_task(
            _kill_workers(workers, sink, int(TRANSACTIONS * (1 - ROLLED_BACK)))
        )
        await asyncio.gather(
            *(_run_platform(driver, url, c, chosen, committed) for c in range(CONNECTIONS))
        )
        await killing
        orders = {f"order-{n}" for ns in committed.values() for n in ns}
        async with open_platform(driver, url) as platform:
            assert await platform.orders() == {f"o-{n}" for ns in committed.values() for n in ns}
        await eventually(
            lambda: sink.distinct() >= len(orders),
            timeout=180,
            message=lambda: f"{sink.distinct()} of {len(orders)} arrived\n{workers[0].log()}",
        )
        await _settled(hookline_url, app_id, len(orders))
    finally:
        for proc in workers:
            await proc.stop()
        await sink.stop()

    assert sum(proc.kills for proc in workers) == KILLS
    assert {a.event_id for a in sink.arrivals} == orders
    first: dict[str, str] = {}
    order: dict[str, list[int]] = defaultdict(list)
    for arrival in sink.arrivals:  # in the order they arrived
        if arrival.event_id in first:
            assert arrival.token == first[arrival.event_id], f"{arrival.event_id}: new token"
            continue
        first[arrival.event_id] = arrival.token
        order[arrival.user_id].append(arrival.n)
    assert dict(order) == dict(committed)
    repeats = len(sink.arrivals) - len(orders)
    print(f"{driver}: {len(orders)} committed of {TRANSACTIONS}, all arrived; {repeats} repeats")


async def _settled(hookline_url: str, app_id: str, deliveries: int) -> None:
    """Every delivery is recorded as delivered: nothing more is on its way to the sink."""
    store = await Store.open(hookline_url, migrate=False)
    try:

        async def done() -> bool:
            rows = await store.list_deliveries(app_id, limit=deliveries + 1, with_attempts=False)
            return Counter(row.status for row in rows) == {"delivered": deliveries}

        await eventually(done, timeout=120, message="every delivery recorded as delivered")
    finally:
        await store.close()
