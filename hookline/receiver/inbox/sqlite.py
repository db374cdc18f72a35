"""The inbox on SQLite: one connection, and group commit on the event loop.

Every operation (writes, and reads too, for one consistent view) is a small function
submitted to one group commit (``hookline.sql.group``) with a single flusher: the writer.
It takes everything waiting, runs it inside one ``BEGIN IMMEDIATE`` on the event loop's
thread (statements are microseconds; a thread hop each would cost more than the
statements), then commits in a worker thread, because the commit is where the fsync
waits. Operations submitted meanwhile go into the next group: one fsync covers a whole
group, so acknowledging stays durable without an fsync each. Nobody is answered before
their group has committed; an operation that fails (a lost lease, a failing write) fails
alone, the group being split until it is.

Durability: WAL with ``synchronous=FULL`` by default, so an acknowledged webhook survives a
power cut as well as a killed process. ``?synchronous=normal`` in the URL keeps it safe
against process crashes (kill -9) only, for a little more speed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import orjson

from hookline.config import check_sqlite_path
from hookline.exceptions import ConfigError, LeaseLost, StorageError
from hookline.receiver.inbox.base import (
    Finish,
    Inbox,
    Incoming,
    Outcome,
    Result,
    Stored,
    classify,
    head_from_row,
    load_queries,
    no_inbox,
    note_committed,
    note_started,
)
from hookline.receiver.stages import Marks
from hookline.sql.errors import SQLITE_ERRORS, storage_error
from hookline.sql.group import GroupCommit

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

_Q = load_queries("sqlite")
MAX_BATCH = 1024
_SYNC_MODES = ("full", "normal", "extra")
_HAS_INBOX = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox_webhooks'"


def _error(exc: BaseException, what: str) -> StorageError:
    return storage_error(exc, what, database="SQLite inbox")


def parse_sqlite_url(url: str) -> tuple[str, str]:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` → (path, synchronous)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not parts.path.startswith("/"):
        raise ConfigError(f"{url!r} is not a sqlite:///path URL")
    path = parts.path[1:]
    options = parse_qs(parts.query)
    unknown = set(options) - {"synchronous"}
    if unknown:
        raise ConfigError(f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}")
    synchronous = options.get("synchronous", ["full"])[-1].lower()
    if synchronous not in _SYNC_MODES:
        raise ConfigError(f"synchronous={synchronous!r}; use one of {', '.join(_SYNC_MODES)}")
    return path, synchronous


class SqliteInbox(Inbox):
    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self._create = create
        self._path, self._synchronous = parse_sqlite_url(url)
        self._conn: sqlite3.Connection | None = None
        self._writer: GroupCommit[tuple[Op, Marks | None], Any] = GroupCommit(
            self._run_group, max_group=MAX_BATCH
        )

    async def open(self) -> None:
        check_sqlite_path(
            self._path, create=self._create, missing_hint="start `hookline receive` to create it"
        )
        try:
            self._conn = await asyncio.to_thread(self._connect)
        except SQLITE_ERRORS as exc:
            raise _error(exc, f"opening {self._path!r}") from exc

    async def close(self) -> None:
        # Let the writer finish what is queued (and its commit) before closing.
        await self._writer.drain()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
            # Other processes (a second receiver, the dead-letters CLI) may hold the lock.
            conn.execute("PRAGMA busy_timeout=30000")
            if not self._create and not conn.execute(_HAS_INBOX).fetchone():
                raise no_inbox(self.url)
            conn.executescript(_Q["schema"])
            _add_traceparent(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _call(self, op: Callable[[sqlite3.Connection], T], marks: Marks | None = None) -> T:
        if self._conn is None:
            raise StorageError("the inbox is not open")
        result: T = await self._writer.submit((op, marks))
        return result

    async def _run_group(self, group: list[tuple[Op, Marks | None]]) -> list[Any]:
        """Run a group's operations in one transaction; commit in a worker thread.

        Operations raise only before they write or with the database failing; either
        way the whole transaction is rolled back and the error raised, and the group
        commit tries the group again in parts (``hookline.sql.group``).
        """
        conn = self._conn
        if conn is None:
            raise StorageError("the inbox is not open")
        marks = [m for _, m in group]
        note_started(marks)
        try:
            conn.execute("BEGIN IMMEDIATE")
            values = [op(conn) for op, _ in group]
            await asyncio.to_thread(conn.execute, "COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, SQLITE_ERRORS):
                raise _error(exc, "a write") from exc
            raise
        note_committed(marks)
        return values

    # -- the interface ----------------------------------------------------------------

    async def accept(self, incoming: Incoming, now: float) -> Outcome:
        def op(conn: sqlite3.Connection) -> Outcome:
            rows = conn.execute(_Q["insert_webhook"], incoming.params(now)).fetchall()
            if rows:
                conn.execute(_Q["wake_lane"], {"user_id": incoming.user_id, "due_at": now})
                return Outcome.ACCEPTED
            existing = conn.execute(
                _Q["find_conflict"], {"token": incoming.token, "event_id": incoming.event_id}
            ).fetchone()
            return classify(incoming, dict(existing) if existing else None)

        return await self._call(op, incoming.marks)

    async def claim_lanes(
        self, owner: str, limit: int, now: float, lease: float, running: Sequence[str] = ()
    ) -> list[str]:
        params = {
            "owner": owner,
            "limit": limit,
            "now": now,
            "lease_until": now + lease,
            "running": orjson.dumps(list(running)).decode(),
        }
        rows = await self._call(lambda c: c.execute(_Q["claim_lanes"], params).fetchall())
        return [r["user_id"] for r in rows]

    async def lane_head(self, user_id: str) -> Stored | None:
        return await self._call(lambda c: _head(c, user_id))

    async def finish(self, owner: str, user_id: str, finish: Finish) -> Stored | None:
        def op(conn: sqlite3.Connection) -> Stored | None:
            row = conn.execute(_Q["lane_owner"], {"user_id": user_id}).fetchone()
            if row is None or row["owner"] != owner:
                raise LeaseLost(user_id)
            _record(conn, finish)
            return _head(conn, user_id)

        return await self._call(op)

    async def release_lane(self, owner: str, user_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            head = _head(conn, user_id)
            if head is None:
                conn.execute(_Q["forget_lane"], {"user_id": user_id, "owner": owner})
                return
            params = {"user_id": user_id, "owner": owner, "due_at": head.next_attempt_at}
            conn.execute(_Q["release_lane"], params)

        await self._call(op)

    async def renew_leases(
        self, owner: str, user_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        params = {
            "owner": owner,
            "user_ids": orjson.dumps(list(user_ids)).decode(),
            "lease_until": lease_until,
        }
        rows = await self._call(lambda c: c.execute(_Q["renew_leases"], params).fetchall())
        return {r["user_id"] for r in rows}

    async def release_all(self, owner: str) -> None:
        await self._call(lambda c: c.execute(_Q["release_all"], {"owner": owner}).fetchall())

    async def claim_once(self, key: str, webhook_id: int, now: float) -> bool:
        params = {"key": key, "webhook_id": webhook_id, "now": now}
        rows = await self._call(lambda c: c.execute(_Q["claim_once"], params).fetchall())
        return bool(rows)

    async def forget_once(self, key: str) -> None:
        await self._call(lambda c: c.execute(_Q["forget_once"], {"key": key}).fetchall())

    async def list_webhooks(self, status: str, limit: int) -> list[dict[str, Any]]:
        params = {"status": status, "limit": limit}
        rows = await self._call(lambda c: c.execute(_Q["list_webhooks"], params).fetchall())
        return [dict(r) for r in rows]

    async def get_webhook(self, webhook_id: int) -> dict[str, Any] | None:
        row = await self._call(
            lambda c: c.execute(_Q["get_webhook"], {"id": webhook_id}).fetchone()
        )
        return dict(row) if row else None

    async def replay_dead(self, webhook_id: int | None, now: float) -> list[int]:
        def op(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(_Q["replay_dead"], {"id": webhook_id, "now": now}).fetchall()
            for row in rows:
                conn.execute(_Q["wake_lane"], {"user_id": row["user_id"], "due_at": now})
            return sorted(int(r["id"]) for r in rows)

        return await self._call(op)

    async def purge_finished(self, before: float) -> int:
        return await self._call(
            lambda c: c.execute(_Q["purge_finished"], {"before": before}).rowcount
        )

    async def prune_lanes(self) -> int:
        return await self._call(lambda c: c.execute(_Q["prune_lanes"]).rowcount)


def _head(conn: sqlite3.Connection, user_id: str) -> Stored | None:
    return head_from_row(conn.execute(_Q["lane_head"], {"user_id": user_id}).fetchone())


def _record(conn: sqlite3.Connection, finish: Finish) -> None:
    query = {Result.DONE: "complete", Result.RETRY: "retry_later", Result.DEAD: "bury"}
    conn.execute(_Q[query[finish.result]], finish.params())


def _add_traceparent(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(inbox_webhooks)")}
    if "traceparent" in columns:
        return
    try:
        conn.execute(_Q["add_traceparent"])
    except sqlite3.OperationalError as exc:
        # Another process starting at the same moment added it first.
        if "duplicate column" not in str(exc):
            raise
