"""``hookline.publish`` inside the platform's own transaction, through every driver.

hookline lives in the platform's database (PostgreSQL: the schema ``hookline``; SQLite:
hookline's own file, where the platform keeps its ``orders`` beside it). A commit keeps
the event with its deliveries, a rollback leaves nothing, a bad event raises before
anything is written and leaves the platform's transaction usable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import hookline
from hookline.exceptions import (
    ConfigError,
    EventConflict,
    NotFound,
    NotInTransaction,
    TooLarge,
    ValidationError,
)
from hookline.store import Store
from tests.conftest import fresh_postgres
from tests.support.eventually import eventually
from tests.support.platforms import (
    OTHER_SQLITE_DRIVERS,
    POSTGRES_DRIVERS,
    SQLITE_DRIVERS,
    Platform,
    open_platform,
)

ON_SQLITE = [*SQLITE_DRIVERS, *OTHER_SQLITE_DRIVERS]
DRIVERS = [pytest.param(d, marks=pytest.mark.postgres) for d in POSTGRES_DRIVERS] + ON_SQLITE

#: The drivers whose connection can be outside a transaction. (psycopg outside
#: autocommit and a SQLAlchemy Session always begin one themselves.)
CAN_BE_OUTSIDE = [
    *(pytest.param(d, marks=pytest.mark.postgres) for d in ("asyncpg", "psycopg_async", "django")),
    "sqlite3",
    "django_sqlite",
]


@dataclass
class World:
    platform: Platform
    store: Store
    app_id: str
    driver: str


@pytest.fixture(params=DRIVERS)
async def world(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[World]:
    driver: str = request.param
    if driver in ON_SQLITE:
        url = f"sqlite:///{tmp_path}/hookline.db"
        async with _world(driver, url, url) as world:
            yield world
        return
    async with fresh_postgres() as url, _world(driver, url, url + "?schema=hookline") as world:
        yield world


@asynccontextmanager
async def _world(driver: str, url: str, hookline_url: str) -> AsyncIterator[World]:
    store = await Store.open(hookline_url)
    try:
        app, _ = await store.create_app("shop")
        await store.install(app.id, "store-1")
        # Two endpoints take order_completed, a third does not.
        for types in (["*"], ["order_completed"], ["product_created"]):
            await store.create_endpoint(
                app.id, url="http://127.0.0.1:9/hook", event_types=types, timeout=5
            )
        async with open_platform(driver, url) as platform:
            yield World(platform, store, app.id, driver)
    finally:
        await store.close()


def _order(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "event_type": "order_completed",
        "user_id": "store-1",
        "data": {"id": f"o-{n}"},
        "event_id": f"order-{n}",
        **changes,
    }


async def _deliveries(world: World) -> list[str]:
    return [d.event_id for d in await world.store.list_deliveries(world.app_id)]


async def test_commit_keeps_the_event_and_its_deliveries_and_rollback_leaves_nothing(
    world: World,
) -> None:
    platform = world.platform
    async with platform.transaction():
        before = await platform.search_path()
        await platform.insert_order("o-1")
        published = await platform.publish(**_order(1))
        # The platform's own statements go on finding its own tables.
        assert await platform.search_path() == before
        await platform.insert_order("o-1b")
    assert (published.id, published.deliveries, published.duplicate) == ("order-1", 2, False)

    async with platform.transaction():
        await platform.insert_order("o-2")
        await platform.publish(**_order(2))
        platform.roll_back()

    assert await platform.orders() == {"o-1", "o-1b"}
    assert (await world.store.get_event("order-1")).data == {"id": "o-1"}
    with pytest.raises(NotFound):
        await world.store.get_event("order-2")
    assert sorted(await _deliveries(world)) == ["order-1", "order-1"]

    # The same event again: a duplicate, as through the API.
    async with platform.transaction():
        again = await platform.publish(**_order(1))
    assert (again.duplicate, again.deliveries) == (True, 0)
    assert len(await _deliveries(world)) == 2


async def test_a_publish_first_in_the_transaction_goes_with_its_rollback(world: World) -> None:
    """The publish as the transaction's first statement: nothing of it outlives the
    rollback, and the commit keeps it. (pysqlite and aiosqlite begin SQLite's transaction
    only before the first write, whatever SQLAlchemy's ``begin()`` said.)"""
    platform = world.platform
    async with platform.transaction():
        await platform.publish(**_order(1))
        await platform.insert_order("o-1")
        platform.roll_back()
    assert await platform.orders() == set()
    with pytest.raises(NotFound):
        await world.store.get_event("order-1")
    assert await _deliveries(world) == []

    async with platform.transaction():
        await platform.publish(**_order(2))
        await platform.insert_order("o-2")
    assert await platform.orders() == {"o-2"}
    assert await _deliveries(world) == ["order-2", "order-2"]


async def test_a_bad_event_raises_before_anything_is_written(world: World) -> None:
    platform = world.platform
    async with platform.transaction():
        await platform.publish(**_order(1))
    bad: list[tuple[dict[str, Any], type[Exception]]] = [
        (_order(2, event_type="order_shipped_to_mars"), ValidationError),
        (_order(2, user_id="not a user"), ValidationError),
        (_order(2, data=["not", "an", "object"]), ValidationError),
        (_order(2, data={"blob": "x" * 300_000}), ValidationError),
        # JSON has no NaN or Infinity (the API's parser refuses them); written as null,
        # they would change the data unseen.
        (_order(2, data={"total": float("nan")}), ValidationError),
        (_order(2, data={"lines": [{"price": float("-inf")}]}), ValidationError),
        (_order(2, event_id="no spaces allowed"), ValidationError),
        (_order(1, data={"id": "changed"}), EventConflict),
    ]
    async with platform.transaction():
        await platform.insert_order("o-2")
        for event, error in bad:
            with pytest.raises(error):
                await platform.publish(**event)
        # The platform's transaction is intact: it goes on, and commits.
        await platform.publish(**_order(2))
    assert await platform.orders() == {"o-2"}
    assert sorted(await _deliveries(world)) == ["order-1", "order-1", "order-2", "order-2"]


async def test_too_many_deliveries_are_refused_before_anything_is_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKLINE_MAX_DELIVERIES_PER_PUBLISH", "1")
    async with world.platform.transaction():
        with pytest.raises(TooLarge):
            await world.platform.publish(**_order(1))
        await world.platform.insert_order("o-1")
    assert await world.platform.orders() == {"o-1"}
    assert await _deliveries(world) == []


@pytest.mark.parametrize("world", CAN_BE_OUTSIDE, indirect=True)
async def test_a_connection_outside_a_transaction_is_refused(world: World) -> None:
    with pytest.raises(NotInTransaction, match="not inside a transaction"):
        await world.platform.publish(**_order(1))
    with pytest.raises(NotFound):
        await world.store.get_event("order-1")


async def test_the_wrong_function_for_the_connection_says_which_to_use(world: World) -> None:
    if world.driver in ("asyncpg", "psycopg_async", "sqlalchemy_async", "sqlalchemy_async_sqlite"):
        with pytest.raises(TypeError, match="publish_async"):
            hookline.publish(world.platform.raw, **_order(1))
    else:
        with pytest.raises(TypeError, match=r"hookline\.publish\(conn"):
            await world.platform.publish_async_on_sync(**_order(1))


async def test_tables_not_found_say_how_to_make_them(world: World) -> None:
    async with world.platform.transaction():
        await world.platform.insert_order("o-1")
        if world.driver in ON_SQLITE:
            await world.platform.execute("ALTER TABLE installations RENAME TO elsewhere")
            with pytest.raises(ConfigError, match="hookline migrate"):
                await world.platform.publish(**_order(1))
            world.platform.roll_back()
        else:
            with pytest.raises(ConfigError, match="hookline migrate"):
                await world.platform.publish(**_order(1), schema="not_there")
            world.platform.roll_back()


def test_an_unknown_connection_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"cannot publish on a builtins\.object"):
        hookline.publish(object(), **_order(1))
    with pytest.raises(ConfigError, match="schema="):
        hookline.publish(object(), **_order(1), schema="Bad-Name")


@pytest.mark.postgres
async def test_pooled_and_core_connections_publish_too() -> None:
    """An asyncpg pool's connection, and SQLAlchemy's Core ``Connection`` and
    ``AsyncConnection`` (not only sessions)."""
    import asyncpg
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    async with fresh_postgres() as url, _world("asyncpg", url, url + "?schema=hookline") as world:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await hookline.publish_async(conn, **_order(1))
        finally:
            await pool.close()

        engine = create_engine(
            url.replace("postgresql://", "postgresql+psycopg://"), poolclass=NullPool
        )
        with engine.begin() as core:
            hookline.publish(core, **_order(2))
        with engine.connect() as core, pytest.raises(NotInTransaction):
            core.execution_options(isolation_level="AUTOCOMMIT")
            hookline.publish(core, **_order(3))
        engine.dispose()

        async_engine = create_async_engine(
            url.replace("postgresql://", "postgresql+asyncpg://"), poolclass=NullPool
        )
        async with async_engine.begin() as async_core:
            await hookline.publish_async(async_core, **_order(4))
        await async_engine.dispose()

        assert sorted(await _deliveries(world)) == [f"order-{n}" for n in (1, 1, 2, 2, 4, 4)]


@pytest.mark.postgres
async def test_a_publish_cancelled_while_it_waits_is_cancelled() -> None:
    """A publish waiting for a lane another transaction holds, cancelled (a request's
    timeout, a task group ending): the caller sees the cancellation, not an error of
    the statement that would put the search_path back in a transaction that can take
    none any more."""
    import asyncpg

    async with fresh_postgres() as url, _world("asyncpg", url, url + "?schema=hookline"):
        holder, waiter = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            async with holder.transaction():
                await hookline.publish_async(holder, **_order(1))
                waiting = waiter.transaction()
                await waiting.start()
                publishing = asyncio.create_task(hookline.publish_async(waiter, **_order(2)))

                async def waits_for_the_lane() -> bool:
                    return bool(
                        await holder.fetchval(
                            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                            waiter.get_server_pid(),
                        )
                    )

                await eventually(waits_for_the_lane, message="the publish to wait")
                publishing.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await publishing
                assert publishing.cancelled()
                await waiting.rollback()
        finally:
            await holder.close()
            await waiter.close()


@pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"]
)
async def test_an_engine_made_with_autocommit_is_refused(database: str, tmp_path: Any) -> None:
    """``create_engine(..., isolation_level="AUTOCOMMIT")``: SQLAlchemy still says it is
    in a transaction, but each statement commits on its own."""
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import NullPool

    async with AsyncExitStack() as stack:
        if database == "sqlite":
            url = f"sqlite:///{tmp_path}/hookline.db"
            sync_url, async_url = url, url.replace("sqlite://", "sqlite+aiosqlite://")
            world = await stack.enter_async_context(_world("sqlite3", url, url))
        else:
            url = await stack.enter_async_context(fresh_postgres())
            sync_url = url.replace("postgresql://", "postgresql+psycopg://")
            async_url = url.replace("postgresql://", "postgresql+asyncpg://")
            world = await stack.enter_async_context(
                _world("asyncpg", url, url + "?schema=hookline")
            )
        engine = create_engine(sync_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with Session(engine) as session, session.begin():
                with pytest.raises(NotInTransaction, match="AUTOCOMMIT"):
                    hookline.publish(session, **_order(1))
            with engine.begin() as core, pytest.raises(NotInTransaction, match="AUTOCOMMIT"):
                hookline.publish(core, **_order(2))
        finally:
            engine.dispose()
        async_engine = create_async_engine(
            async_url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            async with AsyncSession(async_engine) as session, session.begin():
                with pytest.raises(NotInTransaction, match="AUTOCOMMIT"):
                    await hookline.publish_async(session, **_order(3))
        finally:
            await async_engine.dispose()
        assert await _deliveries(world) == []


async def test_on_sqlite_wake_workers_after_the_commit_wakes_listening_engines(
    tmp_path: Any,
) -> None:
    import asyncio
    import sqlite3

    from hookline.store.publishing import PUBLISHED_CHANNEL
    from hookline.store.wakeup import Listener
    from hookline.transactional import wake_workers

    path = f"{tmp_path}/hookline.db"
    async with _world("sqlite3", f"sqlite:///{path}", f"sqlite:///{path}"):
        woken = asyncio.Event()
        listener = Listener(path, PUBLISHED_CHANNEL, woken.set)
        try:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            hookline.publish(conn, **_order(1))
            conn.execute("COMMIT")
            wake_workers(conn)
            await asyncio.wait_for(woken.wait(), 10)
            conn.close()
        finally:
            await listener.close()


async def test_wake_workers_on_a_session_leaves_it_as_it_was(tmp_path: Any) -> None:
    """``wake_workers(session)`` after the commit begins nothing: the session's next
    ``begin()`` works, and it holds no connection meanwhile."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import NullPool

    from hookline.transactional import wake_workers

    url = f"sqlite:///{tmp_path}/hookline.db"
    async with _world("sqlite3", url, url) as world:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with Session(engine) as session:
                with session.begin():
                    hookline.publish(session, **_order(1))
                wake_workers(session)
                assert not session.in_transaction()
                with session.begin():
                    hookline.publish(session, **_order(2))
                wake_workers(session)
        finally:
            engine.dispose()
        assert sorted(await _deliveries(world)) == ["order-1", "order-1", "order-2", "order-2"]


async def test_wake_workers_takes_an_async_session_too(tmp_path: Any) -> None:
    """The SQLite wake-up after an ``AsyncSession``'s commit, as after a ``Session``'s."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.pool import NullPool

    from hookline.store.publishing import PUBLISHED_CHANNEL
    from hookline.store.wakeup import Listener
    from hookline.transactional import wake_workers

    path = f"{tmp_path}/hookline.db"
    async with _world("sqlite3", f"sqlite:///{path}", f"sqlite:///{path}"):
        woken = asyncio.Event()
        listener = Listener(path, PUBLISHED_CHANNEL, woken.set)
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=NullPool)
        try:
            async with AsyncSession(engine) as session:
                async with session.begin():
                    await hookline.publish_async(session, **_order(1))
                wake_workers(session)
                assert not session.in_transaction()
            await asyncio.wait_for(woken.wait(), 10)
        finally:
            await engine.dispose()
            await listener.close()


@pytest.mark.postgres
async def test_wake_workers_does_nothing_on_postgresql_asyncio_connections() -> None:
    """As the docs say: on PostgreSQL the commit's NOTIFY wakes the workers, whatever
    the connection (not a TypeError for an asyncio one)."""
    import asyncpg
    import psycopg

    from hookline.transactional import wake_workers

    async with fresh_postgres() as url:
        conn = await asyncpg.connect(url)
        try:
            wake_workers(conn)
        finally:
            await conn.close()
        async with await psycopg.AsyncConnection.connect(url) as aconn:
            wake_workers(aconn)


@pytest.mark.postgres
async def test_a_psycopg_connection_with_its_own_row_factory_publishes() -> None:
    """psycopg connections made with ``row_factory=dict_row`` (or another): hookline's
    statements read their rows their own way."""
    import psycopg
    from psycopg.rows import dict_row, namedtuple_row

    async with fresh_postgres() as url, _world("psycopg", url, url + "?schema=hookline") as world:
        for n, factory in enumerate([dict_row, namedtuple_row]):
            with psycopg.connect(url, row_factory=factory) as conn, conn.transaction():
                hookline.publish(conn, **_order(n))
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as aconn:
            async with aconn.transaction():
                await hookline.publish_async(aconn, **_order(2))
        assert sorted(await _deliveries(world)) == [f"order-{n}" for n in (0, 0, 1, 1, 2, 2)]


async def test_a_sqlite3_connection_with_its_own_row_factory_publishes(tmp_path: Any) -> None:
    """sqlite3 with a row_factory of the platform's (dicts here): hookline's statements
    read tuples, and wake_workers still finds the file."""
    import sqlite3

    from hookline.store.publishing import PUBLISHED_CHANNEL
    from hookline.store.wakeup import Listener
    from hookline.transactional import wake_workers

    path = f"{tmp_path}/hookline.db"
    async with _world("sqlite3", f"sqlite:///{path}", f"sqlite:///{path}") as world:
        woken = asyncio.Event()
        listener = Listener(path, PUBLISHED_CHANNEL, woken.set)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.row_factory = lambda cur, row: {
                d[0]: v for d, v in zip(cur.description, row, strict=True)
            }
            conn.execute("BEGIN IMMEDIATE")
            hookline.publish(conn, **_order(1))
            conn.execute("COMMIT")
            wake_workers(conn)
            await asyncio.wait_for(woken.wait(), 10)
        finally:
            conn.close()
            await listener.close()
        assert await _deliveries(world) == ["order-1", "order-1"]


@pytest.mark.postgres
async def test_an_asyncpg_connection_with_its_own_json_codecs_publishes() -> None:
    """asyncpg's own recipe for JSON (``set_type_codec("jsonb", encoder=json.dumps,
    ...)``) on the platform's connection: hookline's JSON goes as JSON all the same."""
    import json

    import asyncpg

    async with fresh_postgres() as url, _world("asyncpg", url, url + "?schema=hookline") as world:
        conn = await asyncpg.connect(url)
        try:
            for kind in ("json", "jsonb"):
                await conn.set_type_codec(
                    kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
                )
            async with conn.transaction():
                await hookline.publish_async(conn, **_order(1))
        finally:
            await conn.close()
        assert await _deliveries(world) == ["order-1", "order-1"]
