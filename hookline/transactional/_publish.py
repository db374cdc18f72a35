"""``publish`` and ``publish_async``: the store's own publish, inside the caller's transaction.

The events, their deliveries and their lanes are written by the very code that serves
``POST /api/v1/events`` (``hookline.store.publishing``: validation, duplicate and
conflict rules, fan-out to every enabled endpoint of every app the user installed, lane
order), run on a link to the caller's connection instead of in a transaction of
hookline's own. The caller's commit makes them deliverable and its rollback leaves no
trace.

Blocking drivers run the same coroutine too: their link answers each query at once, so
the coroutine never waits on the event loop, and ``_drive`` steps it to its end by hand
(no event loop is needed, and one already running in the thread is left alone). Were it
ever to wait, ``_drive`` stops it and says so rather than block.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from hookline import outbox, rules
from hookline.config import SCHEMA_NAME, EngineSettings, Limits
from hookline.exceptions import ConfigError, HooklineError, StorageError
from hookline.store.base import new_id
from hookline.store.connector import Row
from hookline.store.publishing import PUBLISHED_CHANNEL, check_events, write_events
from hookline.store.queries import load_queries
from hookline.store.records import NewEvent, Published
from hookline.store.wakeup import Notifier
from hookline.traceparent import parse as parse_traceparent
from hookline.transactional._links import (
    AsyncLink,
    SyncLink,
    async_link_for,
    is_asyncio,
    is_sqlalchemy_async,
    link_for,
)

T = TypeVar("T")

#: Where ``hookline migrate`` puts hookline's tables in a shared PostgreSQL database
#: (``postgresql://.../db?schema=hookline``), and so where ``publish`` looks by default.
DEFAULT_SCHEMA = "hookline"

#: A SQLite savepoint around the publish: a failed statement there leaves the caller's
#: transaction open with the statements before it, so they are undone here. (PostgreSQL
#: aborts the whole transaction on an error: the caller cannot commit a half.)
_SAVEPOINT = "hookline_publish"


def new_event(
    event_type: str,
    user_id: str,
    data: dict[str, Any],
    event_id: str | None,
    traceparent: str | None,
) -> NewEvent:
    """The event as the API would take it, or the API's ``ValidationError``."""
    if event_id is not None:
        rules.EVENT_ID.check(event_id)
    rules.USER_ID.check(user_id)
    rules.check_event_type(event_type)
    return NewEvent(
        id=event_id or new_id("evt"),
        event_type=event_type,
        user_id=user_id,
        data=rules.event_data(data, max_bytes=EngineSettings.from_env().max_event_bytes),
        # An invalid trace context is dropped, as the API (and W3C Trace Context) does.
        traceparent=parse_traceparent(traceparent),
    )


def check_schema(schema: str | None) -> None:
    if schema is not None and not SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"schema={schema!r}: give the schema name of hookline's tables (lowercase "
            "letters, digits and _), as in the database URL's ?schema=, or None"
        )


class _Blocking(AsyncLink):
    """A sync link with the async face the store's code awaits: each call returns at
    once, so awaiting it never suspends (see ``_drive``)."""

    def __init__(self, link: SyncLink) -> None:
        self.link = link
        self.dialect = link.dialect

    def require_transaction(self) -> None:
        self.link.require_transaction()

    def identity(self) -> Any:
        return self.link.identity()

    async def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        return self.link.run(sql, params)


class _Queries:
    """The store's ``Connection`` (named queries) over a link, with the driver's errors
    turned into hookline's."""

    def __init__(self, link: AsyncLink) -> None:
        self.link = link
        self.dialect = link.dialect
        self._queries = load_queries(link.dialect)
        #: Whether the publish made deliveries (SQLite: wake the engines after the commit).
        self.notified = False
        #: Whether a statement failed (PostgreSQL then takes none until the rollback).
        self.failed = False

    async def fetch(self, query: str, **params: Any) -> list[Row]:
        return await self.run(query, self._queries[query], params)

    async def fetchrow(self, query: str, **params: Any) -> Row | None:
        rows = await self.fetch(query, **params)
        return rows[0] if rows else None

    async def execute(self, query: str, **params: Any) -> None:
        if query == "notify_published" and self.dialect == "sqlite":
            # SQLite has no NOTIFY: the wake-up is a datagram, and only the caller knows
            # when the commit happened (``wake_workers``).
            self.notified = True
            return
        await self.run(query, self._queries[query], params)

    async def run(self, what: str, sql: str, params: dict[str, Any]) -> list[Row]:
        try:
            return await self.link.run(sql, params)
        except HooklineError:
            raise
        except Exception as exc:
            self.failed = True
            # Whatever the driver raises (each has its own tree, and the ORMs wrap
            # them): hookline's callers see hookline's errors only.
            if _missing_table(exc):
                raise ConfigError(
                    f"hookline's tables are not where this connection looks ({exc}); create "
                    "them with `hookline migrate --database <this database's URL>?schema="
                    f"{DEFAULT_SCHEMA}`, or pass the schema they are in as schema=; where "
                    "hookline's database is another one, give this one an outbox: "
                    "`hookline outbox install --database <this database's URL>`"
                ) from exc
            raise StorageError(f"{what}: {exc}") from exc


def _missing_table(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == "42P01" or "no such table" in str(seen):
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


@asynccontextmanager
async def _scoped(queries: _Queries, schema: str | None) -> AsyncIterator[None]:
    """On PostgreSQL, hookline's schema as the ``search_path`` for the publish only
    (``set_config(..., true)``: local to the transaction, and put back afterwards, so the
    caller's next statement finds its own tables); on SQLite, a savepoint.

    The search_path rather than schema-qualified names: the named queries are the ones
    hookline's own connections run with the schema as their search_path (``?schema=``),
    so one text of each serves both, and a query added to the publish later needs no
    second, qualified spelling. It costs two statements per publish (about a tenth of
    its time on the benchmark's machine).
    """
    link = queries.link
    if queries.dialect == "sqlite":
        await link.run(f"SAVEPOINT {_SAVEPOINT}", {})
        try:
            yield
        except BaseException:
            await link.run(f"ROLLBACK TO {_SAVEPOINT}", {})
            await link.run(f"RELEASE {_SAVEPOINT}", {})
            raise
        await link.run(f"RELEASE {_SAVEPOINT}", {})
        return
    if schema is None:
        yield
        return
    (row,) = await queries.run(
        "setting the search_path",
        "SELECT current_setting('search_path') AS was, "
        "set_config('search_path', :schema, true) AS now",
        {"schema": schema},
    )

    async def restore() -> None:
        await queries.run(
            "restoring the search_path",
            "SELECT set_config('search_path', :was, true)",
            {"was": row["was"]},
        )

    try:
        yield
    except Exception:
        # A refused event (EventConflict, TooLarge) leaves the transaction usable: put
        # the search_path back. After a failed statement PostgreSQL takes none until the
        # caller's rollback, which puts it back by itself; and the failure is what the
        # caller must see, not the restore's.
        if not queries.failed:
            with contextlib.suppress(HooklineError):
                await restore()
        raise
    # Cancelled or interrupted (not an Exception) mid-statement: nothing is run, the
    # statement was cut short and the transaction is the caller's to roll back; another
    # statement now would fail and turn the cancellation into a StorageError.
    await restore()


async def publish_on(
    link: AsyncLink, events: list[NewEvent], schema: str | None
) -> tuple[list[Published], bool]:
    """Publish ``events`` through ``link`` with the store's own code; also whether the
    engines need a wake-up after the caller's commit (SQLite).

    A PostgreSQL database with an outbox (``hookline outbox install``) gets the events
    in its outbox instead, for ``hookline relay`` to publish: hookline's database is
    another one."""
    check_events(events)
    queries = _Queries(link)
    if link.dialect == "postgres" and await outbox.holds_outbox(queries, link.identity()):
        return await outbox.write(queries, events), False
    async with _scoped(queries, schema):
        published = await write_events(
            queries,
            events,
            time.time(),
            # The API's bound (the same variable): a larger publish writes nothing.
            max_deliveries=Limits.from_env().max_deliveries_per_publish,
        )
    return published, queries.notified


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends, without an event loop (see the module doc)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError(
        "hookline's publish waited on the event loop through a blocking connection; "
        "this is a bug in hookline, please report it"
    )


def publish(
    conn: Any,
    *,
    event_type: str,
    user_id: str,
    data: dict[str, Any],
    event_id: str | None = None,
    traceparent: str | None = None,
    schema: str | None = DEFAULT_SCHEMA,
) -> Published:
    """Publish one event inside the transaction ``conn`` is in, with its deliveries.

    ``conn`` is the platform's open connection to the database hookline's tables are in:
    a psycopg ``Connection``, a SQLAlchemy ``Session`` or ``Connection``, Django's
    ``connection`` (inside ``transaction.atomic``), or a ``sqlite3.Connection`` to
    hookline's database file (for asyncio connections, ``publish_async``). The event is
    written through it, and nothing is begun, committed or rolled back: the caller's
    commit makes it deliverable (and wakes the workers, on PostgreSQL), the caller's
    rollback leaves no trace of it.

    The rest is as ``POST /api/v1/events`` takes it: ``event_type`` one of the 19,
    ``data`` a JSON object of at most 256 KiB serialised, ``event_id`` your own
    stable id (made when None; the same id published again is a ``duplicate``, with
    other contents an ``EventConflict``), ``traceparent`` a W3C trace context for its
    deliveries (an invalid one is dropped). ``schema`` is the PostgreSQL schema of
    hookline's tables (``?schema=`` of hookline's URL; None: wherever the connection's
    own ``search_path`` finds them); SQLite has none.

    Returns the ``Published`` record (``deliveries`` made, ``duplicate``). Raises
    ``ValidationError`` (``TooLarge`` for a fan-out past
    ``HOOKLINE_MAX_DELIVERIES_PER_PUBLISH``) or ``EventConflict`` before anything is
    written, leaving the caller's transaction usable; ``NotInTransaction`` for a
    connection outside one; ``ConfigError`` where hookline's tables are not found;
    ``StorageError`` when the database fails (on PostgreSQL the transaction must then
    be rolled back); ``TypeError`` for a connection of another kind.
    """
    event = new_event(event_type, user_id, data, event_id, traceparent)
    check_schema(schema)
    return _publish_blocking(conn, event, schema)


def _publish_blocking(conn: Any, event: NewEvent, schema: str | None) -> Published:
    """One checked event through a blocking connection (an AsyncSession's sync one too)."""
    link = link_for(conn)
    link.require_transaction()
    (published,), _ = _drive(publish_on(_Blocking(link), [event], schema))
    return published


async def publish_async(
    conn: Any,
    *,
    event_type: str,
    user_id: str,
    data: dict[str, Any],
    event_id: str | None = None,
    traceparent: str | None = None,
    schema: str | None = DEFAULT_SCHEMA,
) -> Published:
    """``publish`` for asyncio connections: an asyncpg connection (a pool's too), a
    psycopg ``AsyncConnection``, a SQLAlchemy ``AsyncSession`` or ``AsyncConnection``.
    The same arguments, answer and errors as ``publish``."""
    event = new_event(event_type, user_id, data, event_id, traceparent)
    check_schema(schema)
    if is_sqlalchemy_async(conn):
        # An AsyncSession runs blocking code in its greenlet: the sync path, as is.
        result: Published = await conn.run_sync(_publish_blocking, event, schema)
        return result
    link = async_link_for(conn)
    link.require_transaction()
    (published,), _ = await publish_on(link, [event], schema)
    return published


def wake_workers(conn: Any) -> None:
    """Tell the workers of a SQLite database to look for deliveries now.

    On SQLite, hookline's workers hear of a publish through a datagram, and only the
    caller knows when its transaction committed: call this after the commit, or the
    workers find the deliveries at their next poll (``HOOKLINE_POLL_INTERVAL``, 0.5 s by
    default). On PostgreSQL the commit itself wakes them (``NOTIFY``): this does nothing.
    It takes the connections ``publish`` and ``publish_async`` take, and begins nothing.
    """
    if is_sqlalchemy_async(conn):
        # Its sync face, which link_for takes (nothing is run through it).
        conn = conn.sync_session if hasattr(conn, "sync_session") else conn.sync_connection
    elif is_asyncio(conn):
        return  # asyncpg and psycopg's AsyncConnection: PostgreSQL only
    link = link_for(conn)
    path = link.database_file()
    if link.dialect != "sqlite" or path is None:
        return
    notifier = Notifier(path)
    try:
        notifier.notify(PUBLISHED_CHANNEL)
    finally:
        notifier.close()
