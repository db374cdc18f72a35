"""The small interface every database backend implements.

The store's resource modules (``apps``, ``endpoints``, ``claims``, ...) speak only in
query names and keyword arguments and get plain dict rows back, which they decode into
records (``records``); each backend is one module that runs its dialect's named queries
and turns its driver's errors into hookline's own (``StorageError`` and
``StorageUnavailable``), so nothing above this layer ever sees a driver exception.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = dict[str, Any]


class Connection(Protocol):
    """Runs named queries; inside ``Connector.transaction()`` all of them are one unit."""

    async def fetch(self, query: str, **params: Any) -> list[Row]: ...

    async def fetchrow(self, query: str, **params: Any) -> Row | None: ...

    async def execute(self, query: str, **params: Any) -> None: ...


class Subscription(Protocol):
    async def close(self) -> None: ...


class NoSubscription:
    """What a backend without notifications returns from ``listen``: it never calls."""

    async def close(self) -> None:
        return None


class Connector(Connection, Protocol):
    dialect: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self, *, durable: bool = True) -> AbstractAsyncContextManager[Connection]:
        """A write transaction; commits on exit, rolls back on an exception.

        ``durable=False`` lets the commit skip waiting for the disk (SQLite's
        ``synchronous=NORMAL``, PostgreSQL's ``synchronous_commit=off``). It still survives
        a crash of the process, not of the machine: right for leases and attempt records,
        where a lost commit only means a delivery is sent again with the same token,
        never for accepting events.
        """
        ...

    async def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; return the versions applied."""
        ...

    async def schema_version(self) -> int: ...

    async def listen(self, channel: str, callback: Callable[[], None]) -> Subscription:
        """Call ``callback`` whenever a committed transaction notifies ``channel``, in any
        process; backends without notifications return a ``NoSubscription``."""
        ...


def connector_for(url: str, *, create: bool = True, **options: Any) -> Connector:
    """The backend a database URL names: ``sqlite:///path`` or ``postgresql://...``.

    ``create=False`` refuses to make a missing SQLite file (a PostgreSQL database is never
    created by hookline); no backend creates a missing directory.
    """
    from hookline.config import check_postgres_url, redact_url
    from hookline.exceptions import ConfigError

    if url.startswith("sqlite:"):
        from hookline.store.sqlite import SQLiteConnector

        return SQLiteConnector.from_url(url, create=create, **options)
    if url.startswith(("postgresql:", "postgres:")):
        from hookline.store.postgres import PostgresConnector

        check_postgres_url(url)

        return PostgresConnector.from_url(url, **options)
    raise ConfigError(
        f"unsupported database URL {redact_url(url)!r}: "
        "use sqlite:///path/to/file.db or postgresql://user@host/db"
    )
