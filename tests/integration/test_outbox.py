"""The outbox in a platform's PostgreSQL database and the relay that empties it, on real
PostgreSQL: a platform database with the outbox, and hookline's database beside it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from hookline.exceptions import ConfigError, ValidationError
from hookline.outbox import queries, source, write_params
from hookline.outbox.relay import Relay, RelaySettings
from hookline.outbox.targets import HttpTarget, StoreTarget, Target
from hookline.sql.named import Query
from hookline.store import NewEvent, Store
from tests.conftest import fresh_postgres
from tests.support import hookline_proc
from tests.support.eventually import eventually
from tests.support.faulty_proxy import FaultyProxy
from tests.support.hookline_proc import ADMIN_TOKEN, ServeProcess
from tests.support.platforms import POSTGRES_DRIVERS, open_platform
from tests.support.tcp_forwarder import Forwarder

pytestmark = pytest.mark.postgres


@pytest.fixture
async def platform() -> AsyncIterator[str]:
    """The platform's database, with the outbox installed."""
    async with fresh_postgres() as url:
        assert await source.install(url) is True
        yield url


@pytest.fixture
async def hookline_db() -> AsyncIterator[str]:
    async with fresh_postgres() as url:
        store = await Store.open(url)
        await store.close()
        yield url


async def write(conn: asyncpg.Connection, user_id: str, event_id: str, **data: Any) -> None:
    """One event into the outbox, as ``hookline.publish`` writes it."""
    q = Query.compile(queries()["write"])
    event = NewEvent(event_id, "order_completed", user_id, orjson.dumps(data).decode())
    await conn.execute(q.sql, *q.args(write_params(event)))


async def stored_ids(url: str) -> list[str]:
    """The events hookline holds, in the order it stored them."""
    conn = await asyncpg.connect(url)
    try:
        return [row["id"] for row in await conn.fetch("SELECT id FROM events ORDER BY seq")]
    finally:
        await conn.close()


async def outbox_rows(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM hookline.outbox ORDER BY id")]
    finally:
        await conn.close()


class Running:
    """A relay in the test's event loop."""

    def __init__(self, platform: str, target: Target, **settings: Any) -> None:
        self.relay = Relay(
            platform, target, RelaySettings(**{"poll": 0.2, "max_backoff": 0.5, **settings})
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Relay:
        self.task = asyncio.create_task(self.relay.run())
        return self.relay

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.relay.stop()
        await asyncio.wait_for(self.task, 30)


async def test_committed_rows_reach_hookline_in_order_and_leave_the_outbox(
    platform: str, hookline_db: str
) -> None:
    conn = await asyncpg.connect(platform)
    try:
        async with conn.transaction():
            await write(conn, "store-1", "evt-1", n=1)
            await write(conn, "store-2", "evt-2", n=1)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await write(conn, "store-1", "evt-rolled-back", n=2)
                raise RuntimeError("the platform's transaction fails")
        async with conn.transaction():
            await write(conn, "store-1", "evt-3", n=3)
    finally:
        await conn.close()
    assert [r["event_id"] for r in await outbox_rows(platform)] == ["evt-1", "evt-2", "evt-3"]

    async with Running(platform, StoreTarget(hookline_db)) as relay:
        await eventually(lambda: relay.relayed == 3, message="3 rows relayed")
    assert await stored_ids(hookline_db) == ["evt-1", "evt-2", "evt-3"]
    assert await outbox_rows(platform) == []
    assert (await source.status(platform))["pending"] == 0


async def _waiting_on_advisory_lock(platform: str, pid: int) -> bool:
    conn = await asyncpg.connect(platform)
    try:
        row = await conn.fetchrow(
            "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", pid
        )
    finally:
        await conn.close()
    return row is not None and (row["wait_event_type"], row["wait_event"]) == ("Lock", "advisory")


async def test_a_users_row_never_overtakes_an_earlier_uncommitted_one(
    platform: str, hookline_db: str
) -> None:
    first, other, second = [await asyncpg.connect(platform) for _ in range(3)]
    try:
        # store-1's first transaction writes and stays open.
        t1 = first.transaction()
        await t1.start()
        await write(first, "store-1", "s1-first", n=1)
        # Another user's transaction writes after it, and commits first.
        async with other.transaction():
            await write(other, "store-2", "s2-only", n=1)
        # store-1's second transaction must wait for the first one to end.
        t3 = second.transaction()
        await t3.start()
        writing = asyncio.create_task(write(second, "store-1", "s1-second", n=2))
        pid = second.get_server_pid()
        await eventually(
            lambda: _waiting_on_advisory_lock(platform, pid),
            message="the second transaction of store-1 waiting for the first",
        )
        async with Running(platform, StoreTarget(hookline_db)) as relay:
            # The committed row of the other user goes; store-1's do not overtake.
            await eventually(lambda: relay.relayed == 1, message="store-2's row relayed")
            assert not writing.done()
            await t1.commit()
            await writing
            await t3.commit()
            await eventually(lambda: relay.relayed == 3, message="all three relayed")
        assert await stored_ids(hookline_db) == ["s2-only", "s1-first", "s1-second"]
    finally:
        for conn in (first, other, second):
            await conn.close()


async def test_a_refused_event_is_set_aside_and_the_rows_after_it_go_on(
    platform: str, hookline_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(platform)
    try:
        async with conn.transaction():
            await write(conn, "store-1", "evt-1", n=1)
            await write(conn, "store-1", "evt-1", n=2)  # the same id, other data
            await write(conn, "store-1", "evt-2", n=3)
    finally:
        await conn.close()

    with caplog.at_level(logging.ERROR, "hookline.relay"):
        async with Running(platform, StoreTarget(hookline_db)) as relay:
            await eventually(lambda: relay.relayed + relay.refused == 3, message="3 rows done")
    assert (relay.relayed, relay.refused) == (2, 1)
    assert await stored_ids(hookline_db) == ["evt-1", "evt-2"]
    (kept,) = await outbox_rows(platform)
    assert (kept["event_id"], orjson.loads(kept["data"])) == ("evt-1", {"n": 2})
    assert kept["failed_at"] is not None
    assert "already published" in kept["error"]
    assert "hookline refused event evt-1" in caplog.text
    assert (await source.status(platform))["failed"] == 1


async def test_the_relay_waits_for_hookline_and_sends_again_once_it_is_back(
    platform: str,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve = ServeProcess(tmp_path / "hookline.db")
    conn = await asyncpg.connect(platform)
    try:
        await write(conn, "store-1", "evt-1", n=1)
        await serve.start()
        base = serve.base_url
        await serve.interrupt()  # hookline is down: its port refuses connections
        with caplog.at_level(logging.WARNING, "hookline.relay"):
            async with Running(platform, HttpTarget(base, ADMIN_TOKEN)) as relay:
                await eventually(
                    lambda: "is unavailable" in caplog.text, message="the relay saying it waits"
                )
                assert len(await outbox_rows(platform)) == 1
                # Up again on the same port (the relay knows that one).
                monkeypatch.setattr(hookline_proc, "free_port", lambda: serve.port)
                await serve.start()
                await eventually(lambda: relay.relayed == 1, message="the row relayed")
                await write(conn, "store-1", "evt-2", n=2)  # woken by the commit's NOTIFY
                await eventually(lambda: relay.relayed == 2, message="the next row relayed")
        async with serve.api() as api:
            for event_id in ("evt-1", "evt-2"):
                await api.expect(200, "GET", f"/api/v1/events/{event_id}")
        assert "trying again in" in caplog.text
    finally:
        await conn.close()
        await serve.stop()


async def test_two_relays_take_turns(
    platform: str, hookline_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(platform)
    try:
        with caplog.at_level(logging.INFO, "hookline.relay"):
            async with Running(platform, StoreTarget(hookline_db)) as first:
                await eventually(lambda: "relaying from" in caplog.text, message="first relay")
                second_run = Running(platform, StoreTarget(hookline_db))
                second = await second_run.__aenter__()
                await eventually(
                    lambda: "another relay holds this outbox" in caplog.text,
                    message="the second relay standing by",
                )
                await write(conn, "store-1", "evt-1", n=1)
                await eventually(lambda: first.relayed == 1, message="the first relay sends")
            # The first one stopped: the second takes over.
            await write(conn, "store-1", "evt-2", n=2)
            await eventually(lambda: second.relayed == 1, message="the second relay sends")
            await second_run.__aexit__()
        assert await stored_ids(hookline_db) == ["evt-1", "evt-2"]
    finally:
        await conn.close()


@pytest.mark.parametrize("driver", POSTGRES_DRIVERS)
async def test_publish_writes_into_the_outbox_through_each_driver(
    driver: str, platform: str, hookline_db: str
) -> None:
    async with open_platform(driver, platform) as shop:
        async with shop.transaction():
            await shop.insert_order("o-1")
            published = await shop.publish(
                event_type="order_completed",
                user_id="store-1",
                data={"id": "o-1"},
                event_id="order-o-1",
            )
        async with shop.transaction():
            await shop.insert_order("o-2")
            await shop.publish(event_type="order_completed", user_id="store-1", data={"id": "o-2"})
            shop.roll_back()
        # Checked as the API checks it, before anything is written.
        with pytest.raises(ValidationError, match="unknown event type"):
            async with shop.transaction():
                await shop.insert_order("o-3")
                await shop.publish(event_type="order_shipped", user_id="store-1", data={})
        async with shop.transaction():  # made an id at write
            await shop.insert_order("o-4")
            made = await shop.publish(
                event_type="order_completed", user_id="store-1", data={"id": "o-4"}
            )
        assert await shop.orders() == {"o-1", "o-4"}

    assert (published.id, published.deliveries, published.duplicate) == ("order-o-1", 0, False)
    assert made.id.startswith("evt_")
    rows = await outbox_rows(platform)
    assert [(r["event_id"], orjson.loads(r["data"])) for r in rows] == [
        ("order-o-1", {"id": "o-1"}),
        (made.id, {"id": "o-4"}),
    ]
    async with Running(platform, StoreTarget(hookline_db)) as relay:
        await eventually(lambda: relay.relayed == 2, message="2 rows relayed")
    assert await stored_ids(hookline_db) == ["order-o-1", made.id]


async def test_publish_without_an_outbox_or_hookline_tables_says_how_to_make_either() -> None:
    async with fresh_postgres() as url, open_platform("asyncpg", url) as shop:
        with pytest.raises(ConfigError, match="hookline outbox install"):
            async with shop.transaction():
                await shop.publish(event_type="order_completed", user_id="u", data={})


async def test_a_503_a_429_and_a_lost_answer_from_hookline_publish_each_event_once(
    platform: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(platform)
    try:
        async with conn.transaction():
            for n in range(3):
                await write(conn, "store-1", f"evt-{n}", n=n)
    finally:
        await conn.close()
    async with (
        ServeProcess(tmp_path / "hookline.db") as serve,
        # The relay's check of its token at its start goes through. The first try
        # gets a 503, the second a 429; the third is stored by hookline, but its
        # answer is lost on the way back; the fourth goes through.
        FaultyProxy(serve.base_url, ["forward", "503", "429", "drop"]) as proxy,
    ):
        with caplog.at_level(logging.WARNING, "hookline.relay"):
            async with Running(platform, HttpTarget(proxy.url, ADMIN_TOKEN)) as relay:
                await eventually(lambda: relay.relayed == 3, message="3 rows relayed")
        assert proxy.requests("POST", "/api/v1/events/batch") == [
            "503",
            "429",
            "drop",
            "forward",
        ]
        assert caplog.text.count("is unavailable") == 3
        async with serve.api() as api:
            for n in range(3):
                await api.expect(200, "GET", f"/api/v1/events/evt-{n}")
        assert serve.counts()["events"] == 3  # sent twice, stored once
    assert await outbox_rows(platform) == []


async def test_the_relay_waits_for_the_platforms_database_and_goes_on(
    platform: str, hookline_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, port, name = "127.0.0.1", 5432, platform.rsplit("/", 1)[1]
    forwarder = await Forwarder((host, port)).start()
    through = f"postgresql://postgres@127.0.0.1:{forwarder.port}/{name}"
    conn = await asyncpg.connect(platform)
    try:
        with caplog.at_level(logging.WARNING, "hookline.relay"):
            async with Running(through, StoreTarget(hookline_db)) as relay:
                await write(conn, "store-1", "evt-1", n=1)
                await eventually(lambda: relay.relayed == 1, message="the first row relayed")
                await forwarder.cut()  # the platform's database is gone for the relay
                await eventually(
                    lambda: "connecting again" in caplog.text, message="the relay saying so"
                )
                await write(conn, "store-1", "evt-2", n=2)  # committed meanwhile
                await forwarder.start()
                await eventually(lambda: relay.relayed == 2, message="the second row relayed")
    finally:
        await conn.close()
        await forwarder.cut()
    assert await stored_ids(hookline_db) == ["evt-1", "evt-2"]
    assert "the outbox database" in caplog.text


async def test_a_token_hookline_refuses_stops_the_relay(platform: str, tmp_path: Any) -> None:
    conn = await asyncpg.connect(platform)
    try:
        await write(conn, "store-1", "evt-1", n=1)
    finally:
        await conn.close()
    async with ServeProcess(tmp_path / "hookline.db") as serve:
        relay = Relay(platform, HttpTarget(serve.base_url, "not-the-admin-token-at-all"))
        with pytest.raises(ConfigError, match="refused the relay's token"):
            await asyncio.wait_for(relay.run(), 60)
    assert len(await outbox_rows(platform)) == 1  # kept for a relay with the right one


async def test_a_token_hookline_refuses_stops_the_relay_at_its_start(
    platform: str, tmp_path: Any
) -> None:
    """An empty outbox: the relay stops at once all the same, not at its first row; the
    admin token gets past the start and relays."""
    async with ServeProcess(tmp_path / "hookline.db") as serve:
        relay = Relay(platform, HttpTarget(serve.base_url, "not-the-admin-token-at-all"))
        with pytest.raises(ConfigError, match="refused the relay's token"):
            await asyncio.wait_for(relay.run(), 60)
        async with Running(platform, HttpTarget(serve.base_url, ADMIN_TOKEN)) as relay:
            conn = await asyncpg.connect(platform)
            try:
                await write(conn, "store-1", "evt-1", n=1)
            finally:
                await conn.close()
            await eventually(lambda: relay.relayed == 1, message="the row relayed")


async def test_a_statement_that_hangs_makes_the_relay_connect_again(
    platform: str, hookline_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = await asyncpg.connect(platform)
    caplog.set_level(logging.INFO, "hookline.relay")
    try:
        async with Running(platform, StoreTarget(hookline_db), command_timeout=0.5) as relay:
            await eventually(lambda: "relaying from" in caplog.text, message="the relay started")
            # A statement of the relay's waits on this lock as on a silent peer.
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("LOCK TABLE hookline.outbox IN ACCESS EXCLUSIVE MODE")
            await eventually(
                lambda: "TimeoutError" in caplog.text and "connecting again" in caplog.text,
                message="the relay giving up on the statement",
            )
            await lock.rollback()
            await write(blocker, "store-1", "evt-1", n=1)
            await eventually(lambda: relay.relayed == 1, message="the row relayed")
    finally:
        await blocker.close()


async def test_a_row_whose_data_is_not_json_is_set_aside(platform: str, tmp_path: Any) -> None:
    conn = await asyncpg.connect(platform)
    try:
        await conn.execute(
            "INSERT INTO hookline.outbox (event_id, event_type, user_id, data) VALUES "
            "('evt-bad', 'order_completed', 'store-1', 'not json')"
        )
        await write(conn, "store-1", "evt-good", n=1)
    finally:
        await conn.close()
    async with (
        ServeProcess(tmp_path / "hookline.db") as serve,
        Running(platform, HttpTarget(serve.base_url, ADMIN_TOKEN)) as relay,
    ):
        await eventually(lambda: (relay.relayed, relay.refused) == (1, 1), message="both done")
    (kept,) = await outbox_rows(platform)
    assert (kept["event_id"], kept["error"]) == ("evt-bad", "event 'evt-bad': its data is not JSON")


async def test_uninstall_waits_for_a_publish_in_flight_and_keeps_its_row(platform: str) -> None:
    """`outbox uninstall` while a platform transaction has written a row but not yet
    committed it: the uninstall waits for that transaction, then finds the row and
    refuses, instead of counting none and dropping the row committed meanwhile."""
    conn = await asyncpg.connect(platform)
    try:
        tx = conn.transaction()
        await tx.start()
        await write(conn, "u1", "evt-in-flight", n=1)
        uninstalling = asyncio.create_task(source.uninstall(platform))

        async def blocked() -> bool:
            # Or done: dropped at once, without waiting (what is tested against).
            return await _waiting_on_a_lock(platform) > 0 or uninstalling.done()

        await eventually(blocked, message="the uninstall to wait for the publishing transaction")
        await tx.commit()
        with pytest.raises(ConfigError, match="still holds 1 row"):
            await asyncio.wait_for(uninstalling, 30)
    finally:
        await conn.close()
    assert [row["event_id"] for row in await outbox_rows(platform)] == ["evt-in-flight"]


async def _waiting_on_a_lock(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    finally:
        await conn.close()


async def test_a_commit_wakes_the_waiting_relay_without_its_poll(
    platform: str, hookline_db: str
) -> None:
    """The relay waiting for rows hears the commit's NOTIFY: a row goes at once, not at
    the next poll (here far beyond the test's wait)."""
    conn = await asyncpg.connect(platform)
    try:
        await write(conn, "store-1", "evt-1", n=1)
        async with Running(platform, StoreTarget(hookline_db), poll=3600) as relay:
            # The first read finds the row; the relay then waits (listening since start).
            await eventually(lambda: relay.relayed == 1, timeout=30, message="the first row")
            async with conn.transaction():
                await write(conn, "store-1", "evt-2", n=2)
            await eventually(lambda: relay.relayed == 2, timeout=30, message="woken by NOTIFY")
    finally:
        await conn.close()
    assert await stored_ids(hookline_db) == ["evt-1", "evt-2"]


async def test_a_batch_too_large_for_one_publish_goes_in_halves_not_row_by_row(
    platform: str, hookline_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hookline refuses a batch as a whole (here: more deliveries than one publish may
    make): the relay sends it in smaller batches, in order, not one request a row."""
    monkeypatch.setenv("HOOKLINE_MAX_DELIVERIES_PER_PUBLISH", "4")
    store = await Store.open(hookline_db)
    try:
        app, _ = await store.create_app("shop")
        await store.install(app.id, "store-1")
        await store.create_endpoint(
            app.id, url="http://127.0.0.1:9/hook", event_types=["*"], timeout=5
        )
    finally:
        await store.close()
    conn = await asyncpg.connect(platform)
    try:
        async with conn.transaction():
            for n in range(8):
                await write(conn, "store-1", f"evt-{n}", n=n)
    finally:
        await conn.close()

    target = StoreTarget(hookline_db)
    batches: list[int] = []
    send = target.send

    async def counted(events: Any) -> None:
        batches.append(len(events))
        await send(events)

    monkeypatch.setattr(target, "send", counted)
    async with Running(platform, target) as relay:
        await eventually(lambda: relay.relayed == 8, message="8 rows relayed")
    assert batches == [8, 4, 4]
    assert await stored_ids(hookline_db) == [f"evt-{n}" for n in range(8)]
