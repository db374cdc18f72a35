"""The one table of driver errors and the hookline errors they become.

Every backend (the store's and the inbox's, on SQLite and on PostgreSQL) catches its
driver's errors at its edge and raises what ``storage_error`` makes of them, so nothing
above a backend sees a driver exception, and both answer the same failure the same way:

- ``StorageUnavailable``, the database is gone for now: ``OSError`` and ``TimeoutError``
  (the network, a connect timeout); from asyncpg, ``PostgresConnectionError`` (a lost
  connection), ``CannotConnectNowError`` (the server is starting), ``AdminShutdownError``
  and ``CrashShutdownError`` (it is stopping), ``TooManyConnectionsError`` (it is full),
  ``InternalClientError`` (a connection left mid-operation by a failure) and an
  ``InterfaceError`` that says the connection is closed;
- ``StorageError``: every other asyncpg error (``PostgresError``, ``InterfaceError``) and
  every ``sqlite3.Error``.

``StorageUnavailable`` means "try again later": the API answers 503, the engine and the
receiver's workers wait and retry, a group commit fails the whole group at once
(``hookline.sql.group``). SQLite has no server to lose: a file locked past the wait is a
``StorageError``, as before.

asyncpg is imported only when a PostgreSQL backend asks for its errors, so a process on
SQLite never loads it.
"""

from __future__ import annotations

import sqlite3
from functools import cache

from hookline.exceptions import StorageError, StorageUnavailable

#: What a SQLite backend catches at its edge.
SQLITE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)

_NETWORK: tuple[type[Exception], ...] = (OSError, TimeoutError)


@cache
def _asyncpg_table() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(every error asyncpg raises, those that mean the server is gone for now)."""
    import asyncpg

    every = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
    unavailable = (
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        asyncpg.CrashShutdownError,
        asyncpg.TooManyConnectionsError,
        asyncpg.InternalClientError,
    )
    return every, unavailable


def postgres_errors() -> tuple[type[Exception], ...]:
    """What a PostgreSQL backend catches at its edge: asyncpg's errors and the network's."""
    return (*_NETWORK, *_asyncpg_table()[0])


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is gone for now (the table above)."""
    if isinstance(exc, _NETWORK):
        return True
    if isinstance(exc, sqlite3.Error) or not type(exc).__module__.startswith("asyncpg"):
        return False
    every, unavailable = _asyncpg_table()
    if isinstance(exc, unavailable):
        return True
    # asyncpg says "connection is closed" when a pooled connection died under us.
    return isinstance(exc, every[1]) and "closed" in str(exc)


def storage_error(exc: BaseException, what: str, *, database: str) -> StorageError:
    """The hookline error for the driver error ``exc``, raised while doing ``what``
    (a query's name, "connecting", ...) on ``database`` ("PostgreSQL", "SQLite inbox")."""
    if is_unavailable(exc):
        return StorageUnavailable(f"{database} unreachable ({what}): {exc!r}")
    return StorageError(f"{database} ({what}): {exc}")
