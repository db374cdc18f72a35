"""SQLite backend, on aiosqlite, in WAL mode.

One writer connection serialises every write transaction (SQLite allows one writer at a
time anyway) and a second connection serves reads, so the API's listings never wait
behind a delivery batch. ``BEGIN IMMEDIATE`` takes the write lock up front, which keeps
other processes on the same file (the delivery processes beside the API process of
``hookline serve``) from dead-locking on a lock upgrade.

When another process holds the write lock, the writer does not wait in SQLite's busy
handler: that handler sleeps in steps of up to 100 ms, so a lock held for one commit
would cost a lane up to 100 ms. ``BEGIN IMMEDIATE`` fails at once instead
(``busy_timeout = 0`` on the writer) and is tried again after a short sleep in the event
loop, which goes on serving requests and sends meanwhile (``_begin``).

A transaction that ran ``notify_published`` wakes the other processes' engines once it
is committed, through ``wakeup`` (PostgreSQL's ``NOTIFY`` does this by itself).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from hookline.config import check_sqlite_path
from hookline.exceptions import ConfigError, StorageError
from hookline.sql.errors import SQLITE_ERRORS, storage_error
from hookline.store.connector import Connection, NoSubscription, Row
from hookline.store.queries import load_queries, upgrade_steps
from hookline.store.wakeup import Listener, Notifier

log = logging.getLogger("hookline.store")

#: Queries that notify a channel (as ``pg_notify`` does in PostgreSQL): run by the
#: connector itself, after the commit, instead of as SQL.
_NOTIFY = {"notify_published": "hookline_published"}

#: How long a write waits for another process's write lock before it fails, and its
#: sleeps between tries: short, since a transaction holds the lock for milliseconds.
BUSY_TIMEOUT = 10.0
BUSY_FIRST_SLEEP = 0.0005
BUSY_MAX_SLEEP = 0.005

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    # FULL: a commit is on disk before the API answers 202 or an attempt is recorded.
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    # The readers' wait for a lock (rare in WAL mode); the writer retries by itself.
    "PRAGMA busy_timeout = 10000",
    # A large backlog must not push the hot pages (lanes, the newest deliveries) out of
    # the cache: 64 MiB of page cache and memory-mapped reads instead of the 2 MiB default.
    "PRAGMA cache_size = -65536",
    "PRAGMA mmap_size = 268435456",
)


def _error(exc: BaseException, what: str) -> StorageError:
    return storage_error(exc, what, database="SQLite")


def _path_from_url(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ConfigError(
            f"SQLite URLs look like sqlite:///relative.db or sqlite:////abs.db, not {url!r}"
        )
    path = url[len("sqlite:///") :]
    if not path:
        raise ConfigError("the SQLite URL names no file")
    return path


class _Conn:
    """Named queries on one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection, queries: dict[str, str]) -> None:
        self._db = db
        self._queries = queries
        #: The channels this transaction notifies once it is committed.
        self.notified: set[str] = set()

    async def fetch(self, query: str, **params: Any) -> list[Row]:
        try:
            async with self._db.execute(self._queries[query], params) as cursor:
                rows = await cursor.fetchall()
        except SQLITE_ERRORS as exc:
            raise _error(exc, query) from exc
        return [dict(row) for row in rows]

    async def fetchrow(self, query: str, **params: Any) -> Row | None:
        rows = await self.fetch(query, **params)
        return rows[0] if rows else None

    async def execute(self, query: str, **params: Any) -> None:
        if query in _NOTIFY:
            self.notified.add(_NOTIFY[query])
            return
        try:
            await self._db.execute(self._queries[query], params)
        except SQLITE_ERRORS as exc:
            raise _error(exc, query) from exc


class SQLiteConnector:
    dialect = "sqlite"

    def __init__(self, path: str, *, create: bool = True) -> None:
        self.path = path
        #: Whether opening may create a missing database file (never a directory).
        self.create = create
        self._queries = load_queries("sqlite")
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._durable = True  # the writer's synchronous setting: FULL (see _PRAGMAS)
        self._notifier: Notifier | None = None

    @classmethod
    def from_url(cls, url: str, *, create: bool = True, **_: Any) -> SQLiteConnector:
        return cls(_path_from_url(url), create=create)

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            for pragma in _PRAGMAS:
                await db.execute(pragma)
        except BaseException:
            # Each connection has a thread of its own that would keep the process alive.
            await db.close()
            raise
        return db

    async def open(self) -> None:
        check_sqlite_path(
            self.path, create=self.create, missing_hint="create it with `hookline migrate`"
        )
        try:
            self._writer = await self._connect()
            await self._writer.execute("PRAGMA busy_timeout = 0")  # see _begin
            self._reader = await self._connect() if self.path != ":memory:" else self._writer
        except SQLITE_ERRORS as exc:
            await self.close()
            raise _error(exc, f"opening {self.path!r}") from exc

    async def close(self) -> None:
        for db in {id(d): d for d in (self._reader, self._writer) if d is not None}.values():
            await db.close()
        self._writer = self._reader = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None

    def _db(self, writer: bool) -> aiosqlite.Connection:
        db = self._writer if writer else self._reader
        if db is None:
            raise StorageError("the SQLite connector is not open")
        return db

    async def fetch(self, query: str, **params: Any) -> list[Row]:
        return await _Conn(self._db(False), self._queries).fetch(query, **params)

    async def fetchrow(self, query: str, **params: Any) -> Row | None:
        return await _Conn(self._db(False), self._queries).fetchrow(query, **params)

    async def execute(self, query: str, **params: Any) -> None:
        if query in _NOTIFY:  # nothing to write: tell the listeners now
            self._notify({_NOTIFY[query]})
            return
        async with self.transaction() as tx:
            await tx.execute(query, **params)

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Connection]:
        db = self._db(True)
        async with self._write_lock:
            try:
                if durable != self._durable:
                    await db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                    self._durable = durable
                await self._begin(db)
            except SQLITE_ERRORS as exc:
                raise _error(exc, "starting a transaction") from exc
            except asyncio.CancelledError:
                # aiosqlite runs the BEGIN in its own thread, which a cancelled caller
                # does not stop: end what it may have opened (queued after it, so in
                # order) before the connection serves another writer.
                await db.rollback()
                raise
            conn = _Conn(db, self._queries)
            try:
                yield conn
            except BaseException:
                await db.rollback()
                raise
            else:
                try:
                    await db.commit()
                except SQLITE_ERRORS as exc:
                    raise _error(exc, "committing") from exc
        if conn.notified:
            self._notify(conn.notified)

    async def _begin(self, db: aiosqlite.Connection) -> None:
        """``BEGIN IMMEDIATE``, tried again while another process holds the write lock.

        The sleeps yield to the event loop and stay short (a commit holds the lock for
        about a millisecond), so the lock is taken soon after it is free; past
        ``BUSY_TIMEOUT`` the last ``database is locked`` error is raised.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT
        pause = BUSY_FIRST_SLEEP
        while True:
            try:
                await db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, BUSY_MAX_SLEEP)

    def _notify(self, channels: set[str]) -> None:
        if self.path == ":memory:":
            return  # no other process can share it
        if self._notifier is None:
            self._notifier = Notifier(self.path)
        for channel in channels:
            self._notifier.notify(channel)

    async def schema_version(self) -> int:
        db = self._db(True)
        async with db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ) as cursor:
            if await cursor.fetchone() is None:
                return 0
        async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> list[int]:
        db = self._db(True)
        applied: list[int] = []
        async with self._write_lock, self._waiting_for_locks(db):
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            current = await self.schema_version()
            for sql, versions in upgrade_steps("sqlite", current):
                recorded = "".join(
                    f"INSERT INTO schema_migrations VALUES ({version}, '{name}', {time.time()});\n"
                    for version, name in versions
                )
                # One script, one transaction: a step is applied whole or not at all.
                script = f"BEGIN IMMEDIATE;\n{sql}\n{recorded}COMMIT;"
                try:
                    await db.executescript(script)
                except SQLITE_ERRORS as exc:
                    if db.in_transaction:
                        await db.rollback()
                    raise _error(exc, f"migrating to {versions[-1][1]}") from exc
                applied.extend(version for version, _ in versions)
        return applied

    @asynccontextmanager
    async def _waiting_for_locks(self, db: aiosqlite.Connection) -> AsyncIterator[None]:
        """SQLite's own busy handler, for statements outside ``transaction()`` (the
        migrations, run once at start, where another process may be writing)."""
        await db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        try:
            yield
        finally:
            await db.execute("PRAGMA busy_timeout = 0")

    async def listen(self, channel: str, callback: Callable[[], None]) -> Listener | NoSubscription:
        if self.path == ":memory:":
            return NoSubscription()
        try:
            return Listener(self.path, channel, callback)
        except OSError as exc:
            # No socket beside the file (a directory we may not write, a system without
            # /proc): this engine finds new work by polling instead.
            log.warning("cannot listen for wake-ups beside %s (%s); polling", self.path, exc)
            return NoSubscription()
