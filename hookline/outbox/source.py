"""The outbox in the platform's PostgreSQL database, as the relay and the CLI use it.

One asyncpg connection, which holds the relay's session lock for as long as it lives:
two relays started on one outbox take turns (the second stands by until the first is
gone) instead of sending the same rows side by side. A relay killed with SIGKILL loses
its connection, and with it the lock, at once. Driver errors are translated here, as
the store's backends do (``hookline.sql.errors``): a lost or refused connection is
``StorageUnavailable``, anything else ``StorageError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from hookline.config import check_postgres_url, redact_url
from hookline.exceptions import ConfigError, StorageError
from hookline.outbox import OutboxRow, queries
from hookline.sql.errors import postgres_errors, storage_error
from hookline.sql.named import Query

#: Said when the database has no outbox.
INSTALL_HINT = "create it with `hookline outbox install --database URL`"


def check_url(url: str) -> None:
    if not url.startswith(("postgresql:", "postgres:")):
        raise ConfigError(
            f"the outbox lives in a PostgreSQL database; {redact_url(url)!r} is not one "
            "(write postgresql://user@host/database)"
        )
    check_postgres_url(url)
    if "schema" in parse_qs(urlsplit(url).query):
        # asyncpg would pass it on as a server setting, which PostgreSQL refuses with
        # "unrecognized configuration parameter".
        raise ConfigError(
            f"{redact_url(url)!r}: ?schema= says where hookline's own tables are, on "
            "hookline's URL; the outbox is always the table hookline.outbox of the "
            "platform's database: drop ?schema= from the outbox's URL"
        )


@contextlib.asynccontextmanager
async def _errors(what: str, url: str) -> AsyncIterator[None]:
    try:
        yield
    except postgres_errors() as exc:
        raise storage_error(exc, what, database=f"the outbox database {redact_url(url)}") from exc


def _query(name: str) -> Query:
    return Query.compile(queries()[name])


class Source:
    """The outbox's committed rows, read in order and deleted once relayed."""

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, command_timeout: float = 30.0
    ) -> None:
        check_url(url)
        self.url = url
        self.connect_timeout = connect_timeout
        #: A statement that takes longer fails as if the database were gone, and the
        #: relay connects again: a connection whose peer vanished without a word (a
        #: host lost, a dropped route) would otherwise wait forever.
        self.command_timeout = command_timeout
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        async with _errors("connecting", self.url):
            self._conn = await asyncpg.connect(
                self.url, timeout=self.connect_timeout, command_timeout=self.command_timeout
            )
        try:
            where = await self._fetch("where")
            if not where[0]["outbox"]:
                raise ConfigError(
                    f"{redact_url(self.url)} has no outbox (table hookline.outbox); " + INSTALL_HINT
                )
        except BaseException:
            await self.close()
            raise

    async def lock(self) -> bool:
        """Take the relay's lock if no other relay holds it; held until ``close``."""
        return bool((await self._fetch("lock_relay"))[0]["locked"])

    async def pending(self, limit: int) -> list[OutboxRow]:
        """The oldest committed rows not yet relayed (nor refused), in id order."""
        return [OutboxRow.from_row(row) for row in await self._fetch("pending", limit=limit)]

    async def done(self, sent: Sequence[int], failed: Sequence[tuple[int, str]]) -> None:
        """Delete the rows hookline stored; keep the refused ones, with hookline's reason."""
        conn = self._open()
        async with _errors("deleting relayed rows", self.url), conn.transaction():
            if sent:
                q = _query("delete")
                await conn.execute(q.sql, *q.args({"ids": list(sent)}))
            for row_id, error in failed:
                q = _query("fail")
                await conn.execute(q.sql, *q.args({"id": row_id, "error": error}))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*postgres_errors()):
                await conn.close(timeout=5)
            if not conn.is_closed():
                conn.terminate()

    def _open(self) -> asyncpg.Connection:
        if self._conn is None:
            raise StorageError("the outbox source is not open")
        return self._conn

    async def _fetch(self, name: str, **params: Any) -> list[dict[str, Any]]:
        conn = self._open()
        q = _query(name)
        async with _errors(name, self.url):
            return [dict(row) for row in await conn.fetch(q.sql, *q.args(params))]


async def install(url: str) -> bool:
    """Create the outbox (schema ``hookline``, table ``outbox``); False if it was there."""
    check_url(url)
    async with _errors("connecting", url):
        conn = await asyncpg.connect(url, timeout=5)
    try:
        async with _errors("installing the outbox", url), conn.transaction():
            existed = await conn.fetchval("SELECT to_regclass('hookline.outbox') IS NOT NULL")
            await conn.execute(queries()["install"])
    finally:
        await conn.close()
    return not existed


async def status(url: str) -> dict[str, Any]:
    """How many rows wait for the relay, how many hookline refused, the oldest's age."""
    source = Source(url)
    await source.open()
    try:
        (row,) = await source._fetch("status")
    finally:
        await source.close()
    return row


async def uninstall(url: str, *, force: bool = False) -> int:
    """Drop the outbox; refused while rows still wait for the relay, unless ``force``.
    Waits first for the platform's transactions that wrote into it and are still open.

    Returns how many rows were dropped with it."""
    source = Source(url)
    await source.open()
    try:
        conn = source._open()
        # One transaction, the table locked first: no platform transaction can commit
        # a row between the count and the drop.
        async with _errors("dropping the outbox", url), conn.transaction():
            await source._fetch("lock")
            (row,) = await source._fetch("status")
            waiting = int(row["pending"]) + int(row["failed"])
            if waiting and not force:
                raise ConfigError(
                    f"the outbox still holds {row['pending']} row(s) for the relay and "
                    f"{row['failed']} refused one(s); let `hookline relay` empty it first, "
                    "or pass --force to drop them"
                )
            await conn.execute(queries()["uninstall"])
    finally:
        await source.close()
    return waiting
