"""PostgreSQL backend, on an asyncpg pool: many processes on many hosts share one database.

What makes it safe to share is in the SQL (``queries/postgres.sql``): claims take an
advisory lock so the per-endpoint cap counts every process's leases, lanes are leased
with ``FOR UPDATE SKIP LOCKED``, and lane rows are always locked in one order.

What makes it survive a database restart is here. Every driver error is translated at
this edge, by the table in ``hookline.sql.errors``: a lost or refused connection, a server
shutting down or a timeout becomes ``StorageUnavailable`` (the API answers 503, the engine
waits and retries), anything else ``StorageError``. After such a failure the pool's
connections are replaced and, for a short and growing back-off, calls fail at once instead
of each waiting for a connect timeout; the first call after the back-off tries the server
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from hookline.config import SCHEMA_NAME
from hookline.exceptions import ConfigError, StorageError, StorageUnavailable, ValidationError
from hookline.sql.errors import postgres_errors, storage_error
from hookline.sql.named import Query, compile_queries
from hookline.store.connector import Connection, Row
from hookline.store.queries import load_queries, upgrade_steps

log = logging.getLogger("hookline.store")

#: Errors the driver (or the network under it) raises; nothing else is translated.
_DRIVER_ERRORS = postgres_errors()

#: Held while migrating, so that processes starting together migrate one at a time.
_MIGRATION_LOCK = 7031964200


def split_schema(url: str) -> tuple[str, str | None]:
    """The URL without its ``schema`` option, and that schema (None: not given).

    ``postgresql://host/db?schema=hookline`` keeps hookline's tables in the schema
    ``hookline`` of that database (made by ``hookline migrate``): hookline's connections
    get it as their ``search_path``, and ``hookline.publish`` on a platform's connection
    to the same database finds the tables there. The option is hookline's, not the
    server's, so the driver never sees it.
    """
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for key, value in options if key == "schema"]
    if not given:
        return url, None
    if len(given) > 1 or not SCHEMA_NAME.fullmatch(given[0]):
        raise ConfigError(
            f"schema={given[-1]!r} in the database URL: give one schema name of lowercase "
            "letters, digits and _ (not starting with a digit), e.g. ?schema=hookline"
        )
    rest = urlencode([(key, value) for key, value in options if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), given[0]


@cache
def compiled_queries() -> dict[str, Query]:
    return compile_queries(load_queries("postgres"))


def _args(query: Query, params: dict[str, Any]) -> list[Any]:
    values = query.args(params)
    for value in values:
        if isinstance(value, str) and "\x00" in value:
            # PostgreSQL cannot hold NUL in text; the input rules refuse it in what is
            # stored, and this refuses it in a lookup (an id in a path).
            raise ValidationError("text must not contain NUL (\\u0000) characters")
    return values


class _Backoff:
    """After a failure, fail fast for a while (0.1 s, doubling up to 5 s)."""

    FIRST, LAST = 0.1, 5.0

    def __init__(self) -> None:
        self._delay = 0.0
        self._until = 0.0

    def check(self) -> None:
        if time.monotonic() < self._until:
            raise StorageUnavailable("PostgreSQL is unreachable; trying again shortly")

    def failed(self) -> None:
        self._delay = min(max(self._delay * 2, self.FIRST), self.LAST)
        self._until = time.monotonic() + self._delay

    def succeeded(self) -> None:
        self._delay = 0.0

    @property
    def delay(self) -> float:
        return self._delay


class _Conn:
    """Named queries on one connection (inside a transaction, or not)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        errors: Callable[[str], contextlib.AbstractAsyncContextManager[None]],
    ) -> None:
        self._conn = conn
        self._errors = errors
        self._queries = compiled_queries()

    async def fetch(self, query: str, **params: Any) -> list[Row]:
        q = self._queries[query]
        async with self._errors(query):
            rows = await self._conn.fetch(q.sql, *_args(q, params))
        return [dict(row) for row in rows]

    async def fetchrow(self, query: str, **params: Any) -> Row | None:
        rows = await self.fetch(query, **params)
        return rows[0] if rows else None

    async def execute(self, query: str, **params: Any) -> None:
        q = self._queries[query]
        async with self._errors(query):
            await self._conn.execute(q.sql, *_args(q, params))


class PostgresConnector:
    dialect = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 3.0,
        acquire_timeout: float = 5.0,
        command_timeout: float = 60.0,
        schema: str | None = None,
    ) -> None:
        self.dsn = dsn
        #: Where hookline's tables are (None: the server's default ``search_path``).
        self.schema = schema
        self.pool_size = pool_size
        # Short on purpose: while the database is gone, an API request should get its
        # 503 in seconds, not hang.
        self.connect_timeout = connect_timeout
        self.acquire_timeout = acquire_timeout
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._backoff = _Backoff()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresConnector:
        dsn, schema = split_schema(url)
        return cls(dsn, schema=schema, **options)

    # -- errors -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _errors(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except _DRIVER_ERRORS as exc:
            error = storage_error(exc, what, database="PostgreSQL")
            if isinstance(error, StorageUnavailable):
                self._backoff.failed()
                if self._pool is not None:
                    # Every pooled connection is suspect now: open new ones on next use.
                    await self._pool.expire_connections()
            raise error from exc

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        async with self._errors("connecting"):
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                max_inactive_connection_lifetime=60,
                server_settings={"search_path": self.schema} if self.schema else None,
            )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), 10)
        except _DRIVER_ERRORS:  # TimeoutError included
            pool.terminate()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StorageError("the PostgreSQL connector is not open")
        pool = self._pool
        self._backoff.check()
        async with self._errors("connecting"):
            conn = await pool.acquire(timeout=self.acquire_timeout)
        self._backoff.succeeded()
        try:
            yield conn
        finally:
            # A broken connection is closed by the pool itself; nothing to report.
            with contextlib.suppress(*_DRIVER_ERRORS):
                await pool.release(conn)

    # -- queries ------------------------------------------------------------------------

    async def fetch(self, query: str, **params: Any) -> list[Row]:
        async with self._connection() as conn:
            return await _Conn(conn, self._errors).fetch(query, **params)

    async def fetchrow(self, query: str, **params: Any) -> Row | None:
        async with self._connection() as conn:
            return await _Conn(conn, self._errors).fetchrow(query, **params)

    async def execute(self, query: str, **params: Any) -> None:
        async with self._connection() as conn:
            await _Conn(conn, self._errors).execute(query, **params)

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Connection]:
        async with self._connection() as conn:
            tx = conn.transaction()
            async with self._errors("BEGIN"):
                await tx.start()
                if not durable:
                    await conn.execute("SET LOCAL synchronous_commit = off")
            try:
                yield _Conn(conn, self._errors)
            except BaseException:
                with contextlib.suppress(*_DRIVER_ERRORS):
                    await tx.rollback()
                raise
            async with self._errors("COMMIT"):
                await tx.commit()

    # -- schema -------------------------------------------------------------------------

    async def schema_version(self) -> int:
        async with self._connection() as conn:
            async with self._errors("reading the schema version"):
                if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
                    return 0
                return int(
                    await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                )

    async def migrate(self) -> list[int]:
        """Bring the schema up to date in one transaction: all of it applies, or none."""
        applied: list[int] = []
        async with self._connection() as conn:
            async with self._errors("migrating"):
                async with conn.transaction():
                    await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                    if self.schema:
                        # A checked name (split_schema), so it may stand in the statement.
                        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                        "KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                    )
                    current = await conn.fetchval(
                        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                    )
                    for sql, versions in upgrade_steps("postgres", int(current)):
                        await conn.execute(sql)
                        for version, name in versions:
                            await conn.execute(
                                "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                                version,
                                name,
                                time.time(),
                            )
                            applied.append(version)
        return applied

    # -- notifications ------------------------------------------------------------------

    async def listen(self, channel: str, callback: Callable[[], None]) -> Listener:
        listener = Listener(self.dsn, channel, callback, connect_timeout=self.connect_timeout)
        listener.start()
        return listener


class Listener:
    """Calls ``callback`` on every notification of ``channel``, on a connection of its own.

    The connection is re-opened with back-off whenever it is lost (a restart, a network
    drop: the termination callback, or a failed check every few seconds, tells). After
    each (re)connection the callback runs once too: a notification sent while nobody was
    listening is lost, and the work it announced must not wait for a poll.
    """

    CHECK_EVERY = 5.0

    def __init__(
        self, dsn: str, channel: str, callback: Callable[[], None], *, connect_timeout: float
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        self.callback = callback
        self.connect_timeout = connect_timeout
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"hookline-listen-{self.channel}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = _Backoff()
        while True:
            try:
                await self._listen_once(backoff)
            except _DRIVER_ERRORS as exc:
                log.debug("listening on %s: %r; reconnecting", self.channel, exc)
            backoff.failed()
            await asyncio.sleep(backoff.delay)

    async def _listen_once(self, backoff: _Backoff) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self.channel, self._notified)
            backoff.succeeded()
            self.callback()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.CHECK_EVERY)
                if not lost.is_set():
                    await conn.execute("SELECT 1", timeout=self.connect_timeout)
        finally:
            conn.terminate()

    def _notified(self, *_: object) -> None:
        self.callback()
