"""Publishing inside the platform's transactions, beside publishing through the API.

    python -m bench.transactional_publish --json bench/results/transactional_publish.json

Each contender commits ``-n`` platform transactions, ``--concurrency`` at a time, each
inserting one order row, and publishes one event per order; the figure is committed
events per second (every event makes one delivery: one app, one endpoint, users
installed; nothing delivers during the run, so only the publishing is measured):

* ``tx/<driver>``: ``hookline.publish(conn, ...)`` (or ``publish_async``) inside the
  platform's transaction, through asyncpg, psycopg (sync, on threads; async),
  SQLAlchemy (``Session`` on psycopg, on threads; ``AsyncSession`` on asyncpg) and
  Django (on threads), hookline's tables in the schema ``hookline`` of the same
  PostgreSQL database;
* ``http``: the transaction inserts and commits, then ``POST /api/v1/events`` to
  ``hookline serve --no-deliver`` on the same machine and database (``hookline.AsyncClient``);
* ``insert only``: the transaction without any publish, the platform's own cost;
* with ``--sqlite``, the same on SQLite: ``tx/sqlite3`` on hookline's database file
  (on threads, each transaction ``BEGIN IMMEDIATE``) beside ``http`` into ``hookline
  serve`` on that file.

PostgreSQL must answer at ``--pg`` (the local server's ``postgres`` database by default,
used only to create and drop ``hookline_bench_*`` databases).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sqlite3
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hookline
from bench._common import RunResult, print_table, write_json
from bench.hookline_server import ADMIN_TOKEN, HooklineServer
from bench.sender_postgres import ADMIN_DSN, pg_database
from hookline.store import Store
from hookline.transactional import wake_workers

USERS = 50
HTTP = "http (commit, then POST /api/v1/events)"
ORDERS = "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, total INTEGER NOT NULL)"


def _event(n: int, run: str) -> dict[str, Any]:
    return {
        "event_type": "order_completed",
        "user_id": f"store-{n % USERS}",
        "data": {"id": f"{run}-{n}", "total": n},
        "event_id": f"{run}-{n}",
    }


async def _set_up(hookline_url: str) -> None:
    """One app with ``USERS`` installations and one endpoint (never reached: nothing
    delivers during the run), so that each event makes one delivery."""
    store = await Store.open(hookline_url)
    try:
        app, _ = await store.create_app("bench")
        for n in range(USERS):
            await store.install(app.id, f"store-{n}")
        await store.create_endpoint(
            app.id, url="http://127.0.0.1:9/hook", event_types=["*"], timeout=5
        )
    finally:
        await store.close()


# -- running n transactions, so many at a time ----------------------------------------------


async def _timed_async(
    name: str,
    n: int,
    concurrency: int,
    one: Callable[[Any, int], Awaitable[None]],
    conns: list[Any],
) -> RunResult:
    numbers = iter(range(n))

    async def lane(conn: Any) -> None:
        for k in numbers:
            await one(conn, k)

    start = time.perf_counter()
    await asyncio.gather(*(lane(conns[i]) for i in range(concurrency)))
    seconds = time.perf_counter() - start
    return RunResult(name, n, n, seconds, params={"concurrency": concurrency})


def _timed_threads(
    name: str, n: int, concurrency: int, one: Callable[[int], None], setup: Callable[[], None]
) -> RunResult:
    """``one(k)`` on ``concurrency`` threads; ``setup`` runs first on each (its
    connection is the thread's own)."""
    numbers = itertools.count()
    lock = threading.Lock()
    ready = threading.Barrier(concurrency + 1)

    def lane() -> None:
        setup()
        ready.wait()
        while True:
            with lock:
                k = next(numbers)
            if k >= n:
                return
            one(k)

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(lane) for _ in range(concurrency)]
        ready.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        seconds = time.perf_counter() - start
    return RunResult(name, n, n, seconds, params={"concurrency": concurrency})


# -- the contenders on PostgreSQL ----------------------------------------------------------


async def asyncpg_tx(url: str, n: int, concurrency: int, *, publish: bool = True) -> RunResult:
    import asyncpg

    conns = [await asyncpg.connect(url) for _ in range(concurrency)]
    run = "apg" if publish else "ins"

    async def one(conn: Any, k: int) -> None:
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES ($1, $2)", f"{run}-{k}", k)
            if publish:
                await hookline.publish_async(conn, **_event(k, run))

    try:
        name = "tx/asyncpg" if publish else "insert only (asyncpg)"
        return await _timed_async(name, n, concurrency, one, conns)
    finally:
        for conn in conns:
            await conn.close()


async def psycopg_async_tx(url: str, n: int, concurrency: int) -> RunResult:
    import psycopg

    conns = [
        await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(concurrency)
    ]

    async def one(conn: Any, k: int) -> None:
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES (%s, %s)", (f"pga-{k}", k))
            await hookline.publish_async(conn, **_event(k, "pga"))

    try:
        return await _timed_async("tx/psycopg async", n, concurrency, one, conns)
    finally:
        for conn in conns:
            await conn.close()


async def sqlalchemy_async_tx(url: str, n: int, concurrency: int) -> RunResult:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://"), pool_size=concurrency
    )
    insert = text("INSERT INTO orders VALUES (:id, :total)")

    async def one(_: Any, k: int) -> None:
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(insert, {"id": f"saa-{k}", "total": k})
            await hookline.publish_async(session, **_event(k, "saa"))

    try:
        return await _timed_async(
            "tx/SQLAlchemy AsyncSession", n, concurrency, one, [None] * concurrency
        )
    finally:
        await engine.dispose()


def psycopg_tx(url: str, n: int, concurrency: int) -> RunResult:
    import psycopg

    local = threading.local()
    opened: list[Any] = []

    def setup() -> None:
        local.conn = psycopg.connect(url, autocommit=True)
        opened.append(local.conn)

    def one(k: int) -> None:
        conn = local.conn
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (%s, %s)", (f"pg-{k}", k))
            hookline.publish(conn, **_event(k, "pg"))

    try:
        return _timed_threads("tx/psycopg (threads)", n, concurrency, one, setup)
    finally:
        for conn in opened:
            conn.close()


def sqlalchemy_tx(url: str, n: int, concurrency: int) -> RunResult:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    engine = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), pool_size=concurrency
    )
    insert = text("INSERT INTO orders VALUES (:id, :total)")

    def one(k: int) -> None:
        with Session(engine) as session, session.begin():
            session.execute(insert, {"id": f"sa-{k}", "total": k})
            hookline.publish(session, **_event(k, "sa"))

    try:
        return _timed_threads("tx/SQLAlchemy Session (threads)", n, concurrency, one, lambda: None)
    finally:
        engine.dispose()


def django_tx(url: str, n: int, concurrency: int) -> RunResult:
    from urllib.parse import urlsplit

    import django
    from django.conf import settings

    parts = urlsplit(url)
    if not settings.configured:
        settings.configure(
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": parts.path.lstrip("/"),
                    "USER": parts.username or "",
                    "HOST": parts.hostname or "",
                    "PORT": str(parts.port or ""),
                    "CONN_MAX_AGE": None,
                }
            }
        )
        django.setup()
    from django.db import connection, connections, transaction

    def one(k: int) -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO orders VALUES (%s, %s)", (f"dj-{k}", k))
            hookline.publish(connection, **_event(k, "dj"))

    def setup() -> None:
        connection.ensure_connection()

    try:
        return _timed_threads("tx/Django (threads)", n, concurrency, one, setup)
    finally:
        connections.close_all()


async def http_after_commit(
    platform_url: str, base: str, n: int, concurrency: int, run: str, name: str
) -> RunResult:
    """The platform's transaction commits, then the event goes to the API (the dual
    write ``hookline.publish`` avoids)."""
    import asyncpg

    client = hookline.AsyncClient(base, ADMIN_TOKEN, max_connections=concurrency)
    sqlite = platform_url.startswith("sqlite:")
    conns: list[Any] = []
    if not sqlite:
        conns = [await asyncpg.connect(platform_url) for _ in range(concurrency)]
    else:
        conns = [None] * concurrency
    database = platform_url.removeprefix("sqlite:///")

    async def one(conn: Any, k: int) -> None:
        if sqlite:
            await asyncio.to_thread(_sqlite_insert, database, f"{run}-{k}", k)
        else:
            async with conn.transaction():
                await conn.execute("INSERT INTO orders VALUES ($1, $2)", f"{run}-{k}", k)
        event = _event(k, run)
        await client.events.publish(
            event["event_type"], event["user_id"], event["data"], event_id=event["event_id"]
        )

    try:
        return await _timed_async(name, n, concurrency, one, conns)
    finally:
        await client.aclose()
        for conn in conns:
            if conn is not None:
                await conn.close()


_SQLITE = threading.local()


def _sqlite_conn(path: str) -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_SQLITE, "conn", None)
    if conn is None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous = FULL")  # as hookline's own commits
        _SQLITE.conn = conn
    return conn


def _sqlite_insert(path: str, order_id: str, total: int) -> None:
    conn = _sqlite_conn(path)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO orders VALUES (?, ?)", (order_id, total))
    conn.execute("COMMIT")


def sqlite3_tx(path: str, n: int, concurrency: int) -> RunResult:
    def one(k: int) -> None:
        conn = _sqlite_conn(path)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO orders VALUES (?, ?)", (f"sq-{k}", k))
        hookline.publish(conn, **_event(k, "sq"))
        conn.execute("COMMIT")
        wake_workers(conn)

    return _timed_threads("tx/sqlite3 (threads) [SQLite]", n, concurrency, one, lambda: None)


# -- one run ---------------------------------------------------------------------------------


async def _orders_table(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(ORDERS)
    finally:
        await conn.close()


def run_postgres(admin_dsn: str, n: int, concurrency: int) -> list[RunResult]:
    results = []
    with pg_database(admin_dsn) as url:
        hookline_url = url + "?schema=hookline"
        asyncio.run(_set_up(hookline_url))
        asyncio.run(_orders_table(url))
        results.append(asyncio.run(asyncpg_tx(url, n, concurrency, publish=False)))
        results.append(asyncio.run(asyncpg_tx(url, n, concurrency)))
        results.append(asyncio.run(psycopg_async_tx(url, n, concurrency)))
        results.append(asyncio.run(sqlalchemy_async_tx(url, n, concurrency)))
        results.append(psycopg_tx(url, n, concurrency))
        results.append(sqlalchemy_tx(url, n, concurrency))
        results.append(django_tx(url, n, concurrency))
        with HooklineServer(hookline_url, args=("--no-deliver",)) as server:
            http = http_after_commit(url, server.base, n, concurrency, "http", HTTP)
            results.append(asyncio.run(http))
    return results


def run_sqlite(n: int, concurrency: int) -> list[RunResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
        path = f"{tmp}/hookline.db"
        url = f"sqlite:///{path}"
        asyncio.run(_set_up(url))
        with sqlite3.connect(path) as db:
            db.execute(ORDERS)
        results.append(sqlite3_tx(path, n, concurrency))
        with HooklineServer(url, args=("--no-deliver",)) as server:
            http = http_after_commit(
                url, server.base, n, concurrency, "sq-http", HTTP + " [SQLite]"
            )
            results.append(asyncio.run(http))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="transactions per contender")
    parser.add_argument("--concurrency", type=int, default=8, help="transactions at a time")
    parser.add_argument("--pg", default=ADMIN_DSN, help="PostgreSQL admin DSN")
    parser.add_argument("--sqlite", action="store_true", help="the SQLite pair too")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = run_postgres(args.pg, args.n, args.concurrency)
    if args.sqlite:
        results += run_sqlite(args.n, args.concurrency)
    print_table(results, title="committed events/s (the req/s column)")
    if args.json:
        write_json(args.json, results, n=args.n, concurrency=args.concurrency)


if __name__ == "__main__":
    main()
