"""Links: a platform's open connection, as hookline's store code runs queries on it.

A link runs one SQL statement of hookline's (written with ``:name`` parameters, the way
the named blocks of ``hookline/store/queries`` are) on the caller's connection, inside
the caller's transaction, and returns dict rows. It never begins, commits or rolls back
the caller's transaction; ``require_transaction`` refuses a connection that is not in
one, where the driver can tell.

Sync links serve the blocking drivers (psycopg, SQLAlchemy's ``Session``, Django,
``sqlite3``), async links the asyncio ones (asyncpg, psycopg's ``AsyncConnection``).
``link_for`` and ``async_link_for`` pick one by the connection's type; the drivers are
imported only when a connection of theirs is given, so none of them is a dependency of
hookline.
"""

from __future__ import annotations

import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from hookline.exceptions import NotInTransaction, StorageError
from hookline.sql.named import PARAM
from hookline.store.connector import Row

#: A ``:name`` parameter (``::jsonb`` casts are left alone), as hookline's SQL spells it.
_PARAM = PARAM


@dataclass(frozen=True, slots=True)
class Statement:
    """A ``:name`` statement as one driver's parameter style wants it."""

    sql: str
    #: Positional styles: the parameters' names in order. Named styles: None.
    names: tuple[str, ...] | None

    def args(self, params: dict[str, Any]) -> Any:
        if self.names is None:
            return params
        return [params[name] for name in self.names]


@cache
def render(sql: str, paramstyle: str) -> Statement:
    """``sql`` with its ``:name`` parameters in a DB-API ``paramstyle``."""
    if paramstyle == "named":
        return Statement(sql, None)
    if paramstyle in ("pyformat", "format"):
        sql = sql.replace("%", "%%")  # both take a literal % as %%
    if paramstyle == "pyformat":
        return Statement(_PARAM.sub(r"%(\1)s", sql), None)
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        if paramstyle in ("format", "qmark"):  # each use is a parameter of its own
            names.append(name)
            return "%s" if paramstyle == "format" else "?"
        if name not in names:
            names.append(name)
        number = names.index(name) + 1
        return f"${number}" if paramstyle == "numeric_dollar" else f":{number}"

    if paramstyle not in ("format", "qmark", "numeric_dollar", "numeric"):
        raise StorageError(f"parameter style {paramstyle!r} is not supported")
    return Statement(_PARAM.sub(placeholder, sql), tuple(names))


def _rows(description: Any, fetched: Any) -> list[Row]:
    if description is None:
        return []
    names = [column[0] for column in description]
    return [dict(zip(names, row, strict=True)) for row in fetched]


class SyncLink(ABC):
    """A blocking connection, as the store's code runs on it."""

    #: Which dialect of hookline's queries the database speaks: "postgres" or "sqlite".
    dialect: str

    @abstractmethod
    def require_transaction(self) -> None:
        """Raise ``NotInTransaction`` unless the connection is inside a transaction."""

    @abstractmethod
    def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        """Run one ``:name`` statement; its rows (none for a statement without)."""

    def database_file(self) -> str | None:
        """The SQLite file of hookline's database (None on PostgreSQL, or in memory)."""
        return None

    def identity(self) -> Any:
        """The driver's own connection under this link: one database all its life, so
        what is learnt of that database is remembered under it (``hookline.outbox``)."""
        return getattr(self, "_conn", None)


class AsyncLink(ABC):
    """An asyncio connection, as the store's code runs on it."""

    dialect: str

    def identity(self) -> Any:
        """See ``SyncLink.identity``."""
        return getattr(self, "_conn", None)

    @abstractmethod
    def require_transaction(self) -> None: ...

    @abstractmethod
    async def run(self, sql: str, params: dict[str, Any]) -> list[Row]: ...


def _refuse(what: str, how: str) -> NotInTransaction:
    return NotInTransaction(
        f"{what} is not inside a transaction, so the event would be stored on its own, "
        f"whatever becomes of the rest: {how}"
    )


# -- asyncpg -------------------------------------------------------------------------------


#: A ``$n::jsonb`` parameter: asyncpg encodes it with the connection's jsonb codec, and
#: a platform's (asyncpg's own recipe: ``encoder=json.dumps``) would make hookline's
#: JSON text a JSON string. Sent as text instead, and cast by the server.
_JSONB_PARAM = re.compile(r"(\$\d+)::jsonb\b")


@cache
def _asyncpg_statement(sql: str) -> Statement:
    statement = render(sql, "numeric_dollar")
    return Statement(_JSONB_PARAM.sub(r"\1::text::jsonb", statement.sql), statement.names)


class AsyncpgLink(AsyncLink):
    dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def identity(self) -> Any:
        # A pool hands out a new proxy on every acquire; the connection under it stays.
        return getattr(self._conn, "_con", self._conn)

    def require_transaction(self) -> None:
        if not self._conn.is_in_transaction():
            raise _refuse(
                "the asyncpg connection",
                "publish inside `async with conn.transaction():`",
            )

    async def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        statement = _asyncpg_statement(sql)
        return [dict(row) for row in await self._conn.fetch(statement.sql, *statement.args(params))]


# -- psycopg 3 -----------------------------------------------------------------------------


def _psycopg_transaction(conn: Any, what: str) -> None:
    from psycopg.pq import TransactionStatus

    status = conn.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise NotInTransaction(
            f"the {what}'s transaction has failed already; roll it back and try again"
        )
    # Outside autocommit, psycopg itself begins a transaction on the first statement
    # (the caller's commit() ends it): that is the caller's transaction too.
    if status == TransactionStatus.IDLE and conn.autocommit:
        raise _refuse(
            f"the {what} (in autocommit mode)",
            "publish inside `with conn.transaction():`, or turn autocommit off",
        )


class PsycopgLink(SyncLink):
    dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def require_transaction(self) -> None:
        _psycopg_transaction(self._conn, "psycopg connection")

    def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        from psycopg.rows import dict_row

        statement = render(sql, "pyformat")
        # dict rows whatever row_factory the platform gave its connection.
        with self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(statement.sql, statement.args(params))
            return cur.fetchall() if cur.description else []


class AsyncPsycopgLink(AsyncLink):
    dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def require_transaction(self) -> None:
        _psycopg_transaction(self._conn, "psycopg async connection")

    async def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        from psycopg.rows import dict_row

        statement = render(sql, "pyformat")
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(statement.sql, statement.args(params))
            return await cur.fetchall() if cur.description else []


# -- SQLAlchemy ----------------------------------------------------------------------------


class SQLAlchemyLink(SyncLink):
    """A ``Session`` or a ``Connection``: statements go through the session's connection
    with the dialect's own parameter style, so SQLAlchemy begins its transaction (its
    autobegin) and sees every statement, as with its own."""

    def __init__(self, conn: Any) -> None:
        from sqlalchemy.orm import Session

        self._session = conn if isinstance(conn, Session) else None
        # A session's connection is taken only when a statement needs it: taking it
        # begins the session's transaction, which ``wake_workers`` after the commit must
        # not do.
        self._taken = None if self._session is not None else conn
        self._bind = conn.get_bind() if self._session is not None else conn
        name = self._bind.dialect.name
        if name not in ("postgresql", "sqlite"):
            raise TypeError(f"hookline publishes on PostgreSQL or SQLite, not on {name}")
        self.dialect = "postgres" if name == "postgresql" else "sqlite"
        self._style = self._bind.dialect.paramstyle

    @property
    def _conn(self) -> Any:
        """The ``Connection`` the statements go through (a session's: in its transaction)."""
        if self._taken is None:
            assert self._session is not None
            self._taken = self._session.connection()
        return self._taken

    def require_transaction(self) -> None:
        if self._autocommits():
            raise _refuse(
                "the SQLAlchemy connection (isolation_level='AUTOCOMMIT')",
                "publish on a session or connection of an engine without AUTOCOMMIT",
            )
        if self._session is None and not self._conn.in_transaction():
            raise _refuse("the SQLAlchemy connection", "publish inside `with conn.begin():`")
        if self.dialect == "sqlite" and not self._driver().in_transaction:
            # pysqlite and aiosqlite begin SQLite's transaction only before the first
            # write, and SQLAlchemy's begin() sends nothing: a publish that comes first
            # would run outside any transaction, and its savepoint's release would commit
            # it on its own. Begin the transaction SQLAlchemy already counts as begun (its
            # commit and rollback end it); IMMEDIATE, as the publish writes.
            try:
                self._conn.exec_driver_sql("BEGIN IMMEDIATE")
            except Exception as exc:
                raise StorageError(f"beginning SQLite's transaction: {exc}") from exc

    def _driver(self) -> Any:
        """The driver's own connection (sqlite3's, aiosqlite's, psycopg's, asyncpg's)."""
        return self._conn.connection.driver_connection

    def _autocommits(self) -> bool:
        """Whether each statement commits on its own: AUTOCOMMIT set on the connection
        (execution options) or on the engine (``create_engine(isolation_level=...)``,
        seen only by the DB-API connection)."""
        if self._conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return True
        if self.dialect == "sqlite":
            # AUTOCOMMIT is sqlite3's isolation_level None; with it, only a BEGIN of the
            # caller's own (SQLAlchemy's recipe for SQLite) makes a transaction.
            driver = self._driver()
            return driver.isolation_level is None and not driver.in_transaction
        return getattr(self._conn.connection.dbapi_connection, "autocommit", False) is True

    def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        statement = render(sql, self._style)
        args = statement.args(params)
        result = self._conn.exec_driver_sql(
            statement.sql, tuple(args) if statement.names is not None else args
        )
        if not result.returns_rows:
            return []
        return [dict(row) for row in result.mappings()]

    def database_file(self) -> str | None:
        return self._bind.engine.url.database if self.dialect == "sqlite" else None

    def identity(self) -> Any:
        # A session's Connection lasts one transaction; the pooled DB-API one under it
        # stays.
        return self._conn.connection.dbapi_connection


# -- Django --------------------------------------------------------------------------------


class DjangoLink(SyncLink):
    """``django.db.connection`` (or ``connections[alias]``), inside ``transaction.atomic``."""

    def __init__(self, conn: Any) -> None:
        if conn.vendor not in ("postgresql", "sqlite"):
            raise TypeError(f"hookline publishes on PostgreSQL or SQLite, not on {conn.vendor}")
        self._conn = conn
        self.dialect = "postgres" if conn.vendor == "postgresql" else "sqlite"

    def require_transaction(self) -> None:
        if not self._conn.in_atomic_block:
            raise _refuse(
                "the Django connection",
                "publish inside `with transaction.atomic():` (or an ATOMIC_REQUESTS view)",
            )

    def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        statement = render(sql, "pyformat")
        with self._conn.cursor() as cur:
            cur.execute(statement.sql, statement.args(params))
            return _rows(cur.description, cur.fetchall() if cur.description else ())

    def database_file(self) -> str | None:
        return str(self._conn.settings_dict["NAME"]) if self.dialect == "sqlite" else None

    def identity(self) -> Any:
        return self._conn.connection  # the driver's, behind Django's wrapper


# -- sqlite3 -------------------------------------------------------------------------------


class SQLiteLink(SyncLink):
    """A ``sqlite3.Connection`` to hookline's own database file."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def require_transaction(self) -> None:
        if not self._conn.in_transaction:
            raise _refuse(
                "the sqlite3 connection",
                "run `BEGIN IMMEDIATE` first (or publish after your transaction's first "
                "write), and commit after the publish",
            )

    def run(self, sql: str, params: dict[str, Any]) -> list[Row]:
        cur = self._conn.cursor()
        # Tuples, whatever row_factory the platform gave its connection.
        cur.row_factory = None
        try:
            cur.execute(sql, params)
            return _rows(cur.description, cur.fetchall() if cur.description else ())
        finally:
            cur.close()

    def database_file(self) -> str | None:
        for row in self.run("PRAGMA database_list", {}):
            if row["name"] == "main":
                return str(row["file"]) or None
        return None


# -- choosing one --------------------------------------------------------------------------


def _module(conn: Any) -> str:
    return type(conn).__module__.split(".", 1)[0]


def _sync_kind(conn: Any) -> Callable[[Any], SyncLink] | None:
    if isinstance(conn, sqlite3.Connection):
        return SQLiteLink
    module = _module(conn)
    if module == "psycopg":
        import psycopg

        if isinstance(conn, psycopg.Connection):
            return PsycopgLink
    if module == "sqlalchemy":
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session

        if isinstance(conn, Session | Connection):
            return SQLAlchemyLink
    if module == "django" and hasattr(conn, "in_atomic_block"):
        return DjangoLink
    return None


def _async_kind(conn: Any) -> Callable[[Any], AsyncLink] | None:
    module = _module(conn)
    if module == "asyncpg":
        return AsyncpgLink
    if module == "psycopg":
        import psycopg

        if isinstance(conn, psycopg.AsyncConnection):
            return AsyncPsycopgLink
    return None


def is_asyncio(conn: Any) -> bool:
    """An asyncpg connection or a psycopg ``AsyncConnection``."""
    return _async_kind(conn) is not None


def is_sqlalchemy_async(conn: Any) -> bool:
    """A SQLAlchemy ``AsyncSession`` or ``AsyncConnection`` (run through ``run_sync``)."""
    if _module(conn) != "sqlalchemy":
        return False
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    return isinstance(conn, AsyncSession | AsyncConnection)


def link_for(conn: Any) -> SyncLink:
    """The sync link for a blocking connection; a ``TypeError`` saying what to do for
    anything else (an asyncio connection belongs to ``hookline.publish_async``)."""
    kind = _sync_kind(conn)
    if kind is not None:
        return kind(conn)
    if _async_kind(conn) is not None or is_sqlalchemy_async(conn):
        raise TypeError(
            f"{type(conn).__name__} is an asyncio connection: "
            "use `await hookline.publish_async(conn, ...)`"
        )
    raise TypeError(f"hookline cannot publish on {_named(conn)}; it publishes on {_SUPPORTED}")


def async_link_for(conn: Any) -> AsyncLink:
    """The async link for an asyncio connection; a ``TypeError`` for anything else."""
    kind = _async_kind(conn)
    if kind is not None:
        return kind(conn)
    hint = "; use `hookline.publish(conn, ...)` for it" if _sync_kind(conn) else ""
    raise TypeError(
        f"hookline.publish_async publishes on {_ASYNC_SUPPORTED}, not on {_named(conn)}{hint}"
    )


def _named(conn: Any) -> str:
    return f"a {type(conn).__module__}.{type(conn).__qualname__}"


_ASYNC_SUPPORTED = (
    "an asyncpg connection, a psycopg AsyncConnection or a SQLAlchemy AsyncSession or "
    "AsyncConnection"
)
_SUPPORTED = (
    "a psycopg Connection, a SQLAlchemy Session or Connection, Django's connection or a "
    "sqlite3.Connection (and, with `await hookline.publish_async`, " + _ASYNC_SUPPORTED + ")"
)
