"""The small interface every database backend implements.

The store (``manager.py``) speaks only in query names and keyword arguments and gets
plain dict rows back; each backend is one module that runs its dialect's named queries
and turns its driver's errors into hookline's own (``StorageError`` and
``StorageUnavailable``), so nothing above this layer ever sees a driver exception.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = dict[str, Any]


class Connection(Protocol):
    """Runs named queries; inside ``Connector.transaction()`` all of them are one unit."""

    async def fetch(self, query: str, **params: Any) -> list[Row]: ...

    async def fetchrow(self, query: str, **params: Any) -> Row | None: ...

    async def execute(self, query: str, **params: Any) -> None: ...


class Connector(Connection, Protocol):
    dialect: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction; commits on exit, rolls back on an exception."""
        ...

    async def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; return the versions applied."""
        ...

    async def schema_version(self) -> int: ...


def connector_for(url: str, **options: Any) -> Connector:
    """The backend a database URL names: ``sqlite:///path`` or ``postgresql://...``."""
    from hookline.exceptions import ConfigError

    if url.startswith("sqlite:"):
        from hookline.store.sqlite import SQLiteConnector

        return SQLiteConnector.from_url(url, **options)
    if url.startswith(("postgresql:", "postgres:")):
        raise ConfigError("the PostgreSQL backend is not available in this version yet")
    raise ConfigError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db or postgresql://..."
    )
