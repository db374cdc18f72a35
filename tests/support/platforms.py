"""A platform's own code, through each driver ``hookline.publish`` takes.

Each ``Platform`` holds one connection of its driver to the database hookline lives in
and has an ``orders`` table of its own there. ``async with platform.transaction():``
begins a transaction the driver's usual way, and commits it at the end (or rolls it back
after ``platform.roll_back()`` or an exception); inside, ``insert_order`` and
``publish`` write through that connection.

Every method is async. The blocking drivers run on a thread of their own (one per
platform: ``sqlite3`` and Django tie a connection to its thread), so a sink in the test's
event loop keeps answering while they work.

    async with open_platform("psycopg", database) as platform:
        async with platform.transaction():
            await platform.insert_order("o-1")
            await platform.publish(event_type="order_completed", user_id="u", data={})
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import hookline
from hookline.store import Published
from hookline.transactional import wake_workers
from tests.support.django_settings import configure_django

T = TypeVar("T")

#: Every driver, by the name tests are parametrised with.
POSTGRES_DRIVERS = [
    "asyncpg",
    "psycopg",
    "psycopg_async",
    "sqlalchemy",
    "sqlalchemy_async",
    "django",
]
SQLITE_DRIVERS = ["sqlite3"]
#: SQLAlchemy's Session and AsyncSession (pysqlite, aiosqlite) and Django on hookline's
#: SQLite file.
OTHER_SQLITE_DRIVERS = ["sqlalchemy_sqlite", "sqlalchemy_async_sqlite", "django_sqlite"]


class Rollback(Exception):
    """Raised inside ``transaction()`` to end it with a rollback."""


class Platform:
    """One connection of a driver, on its own thread where the driver blocks."""

    def __init__(self, url: str) -> None:
        #: hookline's database URL without options (no ?schema=).
        self.url = url
        self._thread: ThreadPoolExecutor | None = None

    @property
    def raw(self) -> Any:
        """The object given to ``hookline.publish``: the connection, or the session."""
        return getattr(self, "session", None) or self.conn  # type: ignore[attr-defined]

    async def call(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    # Each driver fills these in.
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def begin(self) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def publish(self, **event: Any) -> Published:
        raise NotImplementedError

    async def publish_async_on_sync(self, **event: Any) -> Published:
        """``publish_async`` given this (blocking) connection: the TypeError it raises."""
        raise NotImplementedError

    @property
    def placeholder(self) -> str:
        return "%s"

    async def insert_order(self, order_id: str) -> None:
        await self.execute(f"INSERT INTO orders (id) VALUES ({self.placeholder})", order_id)

    async def orders(self) -> set[str]:
        """The committed orders (read in a transaction of their own)."""
        async with self.transaction():
            return {row[0] for row in await self.execute("SELECT id FROM orders")}

    async def search_path(self) -> str:
        if self.url.startswith("sqlite:"):
            return ""
        ((value,),) = await self.execute("SELECT current_setting('search_path')")
        return str(value)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Platform]:
        await self.begin()
        try:
            yield self
        except BaseException:
            await self.rollback()
            if isinstance(self._pending, Rollback):
                self._pending = None
            raise
        if self._pending is not None:
            self._pending = None
            await self.rollback()
            return
        await self.commit()

    _pending: Rollback | None = None

    def roll_back(self) -> None:
        """End the current transaction with a rollback instead of a commit."""
        self._pending = Rollback()


class AsyncpgPlatform(Platform):
    async def open(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.url)

    async def close(self) -> None:
        await self.conn.close()

    async def begin(self) -> None:
        self.tx = self.conn.transaction()
        await self.tx.start()

    async def commit(self) -> None:
        await self.tx.commit()

    async def rollback(self) -> None:
        await self.tx.rollback()

    @property
    def placeholder(self) -> str:
        return "$1"

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.conn.fetch(sql, *args)]

    async def publish(self, **event: Any) -> Published:
        return await hookline.publish_async(self.conn, **event)


class PsycopgPlatform(Platform):
    """Outside autocommit: psycopg begins the transaction, commit() ends it."""

    async def open(self) -> None:
        import psycopg

        self._thread = ThreadPoolExecutor(1)
        self.conn = await self.call(lambda: psycopg.connect(self.url))

    async def close(self) -> None:
        await self.call(self.conn.close)
        assert self._thread is not None
        self._thread.shutdown()

    async def commit(self) -> None:
        await self.call(self.conn.commit)

    async def rollback(self) -> None:
        await self.call(self.conn.rollback)

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            cur = self.conn.execute(sql, args)
            return list(cur.fetchall()) if cur.description else []

        return await self.call(run)

    async def publish(self, **event: Any) -> Published:
        return await self.call(lambda: hookline.publish(self.conn, **event))

    async def publish_async_on_sync(self, **event: Any) -> Published:
        return await hookline.publish_async(self.conn, **event)


class AsyncPsycopgPlatform(Platform):
    """In autocommit mode, with ``async with conn.transaction()``."""

    async def open(self) -> None:
        import psycopg

        self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)

    async def close(self) -> None:
        await self.conn.close()

    async def begin(self) -> None:
        self.tx = self.conn.transaction()
        await self.tx.__aenter__()

    async def commit(self) -> None:
        await self.tx.__aexit__(None, None, None)

    async def rollback(self) -> None:
        import psycopg

        await self.tx.__aexit__(psycopg.Rollback, psycopg.Rollback(), None)

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(sql, args)
        return list(await cur.fetchall()) if cur.description else []

    async def publish(self, **event: Any) -> Published:
        return await hookline.publish_async(self.conn, **event)


class SQLAlchemyPlatform(Platform):
    """A ``Session`` on psycopg, or pysqlite for a SQLite file (SQLAlchemy's own
    transaction, begun by the session)."""

    async def open(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        self._thread = ThreadPoolExecutor(1)
        url = self.url.replace("postgresql://", "postgresql+psycopg://")
        self.engine = create_engine(url, poolclass=_null_pool())
        self.session = Session(self.engine)

    async def close(self) -> None:
        await self.call(self.session.close)
        await self.call(self.engine.dispose)
        assert self._thread is not None
        self._thread.shutdown()

    async def begin(self) -> None:
        await self.call(self.session.begin)

    async def commit(self) -> None:
        await self.call(self.session.commit)

    async def rollback(self) -> None:
        await self.call(self.session.rollback)

    @property
    def placeholder(self) -> str:
        return ":p0"

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        def run() -> list[tuple[Any, ...]]:
            result = self.session.execute(text(sql), {f"p{i}": a for i, a in enumerate(args)})
            return [tuple(row) for row in result] if result.returns_rows else []

        return await self.call(run)

    async def publish(self, **event: Any) -> Published:
        return await self.call(lambda: hookline.publish(self.session, **event))

    async def publish_async_on_sync(self, **event: Any) -> Published:
        return await hookline.publish_async(self.session, **event)


class AsyncSQLAlchemyPlatform(Platform):
    """An ``AsyncSession`` on asyncpg, or aiosqlite for a SQLite file."""

    async def open(self) -> None:
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

        url = self.url.replace("postgresql://", "postgresql+asyncpg://")
        url = url.replace("sqlite://", "sqlite+aiosqlite://")
        self.engine = create_async_engine(url, poolclass=_null_pool())
        self.session = AsyncSession(self.engine)

    async def close(self) -> None:
        await self.session.close()
        await self.engine.dispose()

    async def begin(self) -> None:
        await self.session.begin()

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()

    @property
    def placeholder(self) -> str:
        return ":p0"

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        result = await self.session.execute(text(sql), {f"p{i}": a for i, a in enumerate(args)})
        return [tuple(row) for row in result] if result.returns_rows else []

    async def publish(self, **event: Any) -> Published:
        return await hookline.publish_async(self.session, **event)


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


class DjangoPlatform(Platform):
    """Django's connection (an alias of its own), inside ``transaction.atomic``."""

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(1)
        self.alias = "hookline_" + secrets.token_hex(4)
        await self.call(self._configure)

    def _configure(self) -> None:
        from urllib.parse import urlsplit

        from django.db import connections

        configure_django()
        parts = urlsplit(self.url)
        given = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username or "",
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
        if self.url.startswith("sqlite:"):
            given = {"ENGINE": "django.db.backends.sqlite3", "NAME": self.url[len("sqlite:///") :]}
        # Its own alias, beside whatever the process configured (filled in as Django
        # fills in DATABASES; configure_settings insists on a default being there).
        filled = connections.configure_settings({"default": {}, self.alias: given})
        connections.settings[self.alias] = filled[self.alias]
        self.conn = connections[self.alias]

    async def close(self) -> None:
        def close() -> None:
            from django.db import connections

            self.conn.close()
            del connections[self.alias]
            del connections.settings[self.alias]

        await self.call(close)
        assert self._thread is not None
        self._thread.shutdown()

    async def begin(self) -> None:
        from django.db import transaction

        self.atomic = transaction.atomic(using=self.alias)
        await self.call(self.atomic.__enter__)

    async def commit(self) -> None:
        await self.call(lambda: self.atomic.__exit__(None, None, None))

    async def rollback(self) -> None:
        from django.db import transaction

        def rollback() -> None:
            transaction.set_rollback(True, using=self.alias)
            self.atomic.__exit__(None, None, None)

        await self.call(rollback)

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall()) if cur.description else []

        return await self.call(run)

    async def publish(self, **event: Any) -> Published:
        return await self.call(lambda: hookline.publish(self.conn, **event))

    async def publish_async_on_sync(self, **event: Any) -> Published:
        return await hookline.publish_async(self.conn, **event)


class SQLitePlatform(Platform):
    """``sqlite3`` on hookline's own database file: ``BEGIN IMMEDIATE`` ... ``COMMIT``,
    then a wake-up for the workers."""

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(1)
        path = self.url[len("sqlite:///") :]
        self.conn = await self.call(lambda: sqlite3.connect(path, isolation_level=None))

    async def close(self) -> None:
        await self.call(self.conn.close)
        assert self._thread is not None
        self._thread.shutdown()

    async def begin(self) -> None:
        await self.call(lambda: self.conn.execute("BEGIN IMMEDIATE"))

    async def commit(self) -> None:
        def commit() -> None:
            self.conn.execute("COMMIT")
            wake_workers(self.conn)

        await self.call(commit)

    async def rollback(self) -> None:
        await self.call(lambda: self.conn.execute("ROLLBACK"))

    @property
    def placeholder(self) -> str:
        return "?"

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self.call(lambda: list(self.conn.execute(sql, args).fetchall()))

    async def search_path(self) -> str:
        return ""

    async def publish(self, **event: Any) -> Published:
        return await self.call(lambda: hookline.publish(self.conn, **event))

    async def publish_async_on_sync(self, **event: Any) -> Published:
        return await hookline.publish_async(self.conn, **event)


PLATFORMS: dict[str, type[Platform]] = {
    "asyncpg": AsyncpgPlatform,
    "psycopg": PsycopgPlatform,
    "psycopg_async": AsyncPsycopgPlatform,
    "sqlalchemy": SQLAlchemyPlatform,
    "sqlalchemy_async": AsyncSQLAlchemyPlatform,
    "django": DjangoPlatform,
    "sqlite3": SQLitePlatform,
    "sqlalchemy_sqlite": SQLAlchemyPlatform,
    "sqlalchemy_async_sqlite": AsyncSQLAlchemyPlatform,
    "django_sqlite": DjangoPlatform,
}


@asynccontextmanager
async def open_platform(driver: str, url: str) -> AsyncIterator[Platform]:
    """A platform on ``url`` (hookline's database, without ``?schema=``) with an empty
    ``orders`` table of its own."""
    platform = PLATFORMS[driver](url)
    await platform.open()
    try:
        async with platform.transaction():
            await platform.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)")
        yield platform
    finally:
        await platform.close()
