"""The inbox on PostgreSQL, shared by any number of receiver processes on any hosts.

Incoming webhooks are grouped (``hookline.sql.group``): while one transaction commits, the
next requests queue up and go together in the following one, so a burst costs a few
commits, not one each; a webhook that cannot be stored fails alone.
Lanes are leased with ``FOR UPDATE SKIP LOCKED``, which is what keeps one handler at a
time per user across processes; a lease that is not renewed (its process died) runs out
and another process takes the lane over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from hookline.exceptions import LeaseLost, StorageError
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
from hookline.sql.errors import postgres_errors, storage_error
from hookline.sql.group import GroupCommit
from hookline.sql.named import compile_queries

_RESULT_QUERY = {Result.DONE: "complete", Result.RETRY: "retry_later", Result.DEAD: "bury"}


#: The most webhooks stored in one transaction.
MAX_GROUP = 256

#: How often a batch that PostgreSQL chose as a deadlock victim is run again.
_DEADLOCK_RETRIES = 3


_Q = compile_queries(load_queries("postgres"))


async def _lazy(conn: Any) -> None:
    """This transaction's commit does not wait for its WAL record to reach the disk.

    For the workers' bookkeeping (leases, a run's result): every commit waiting for its
    own WAL flush made the flushes the limit of the whole database, intake and workers of
    every process taking turns at them. Visibility is unchanged (others see the commit at
    once) and the WAL keeps its order, so a crash of PostgreSQL can only lose the last
    such commits, all together: leases that run out anyway, or a run's result, whose
    webhook is then handled again (the at-least-once of a crash). Storing webhooks, and
    ``once`` keys, still wait for the flush: nothing acknowledged is ever lost.
    """
    await conn.execute("SET LOCAL synchronous_commit TO OFF")


#: What is caught at this edge and translated (``_error``).
_DRIVER_ERRORS = postgres_errors()


def _error(exc: BaseException, what: str) -> StorageError:
    return storage_error(exc, what, database="PostgreSQL inbox")


class PostgresInbox(Inbox):
    def __init__(self, url: str, *, pool_size: int = 10, create: bool = True) -> None:
        self.url = url
        self._create = create
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # Several groups commit at once, on half the pool: the rest serves the workers.
        self._group: GroupCommit[tuple[Incoming, float], Outcome] = GroupCommit(
            self._accept_batch, max_group=MAX_GROUP, flushers=max(1, pool_size // 2)
        )

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self._pool_size)
            async with self._pool.acquire() as conn:
                # Two processes starting together must not race on CREATE TABLE.
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(7031964102)")
                    if not self._create and not await conn.fetchval(
                        "SELECT to_regclass('inbox_webhooks') IS NOT NULL"
                    ):
                        raise no_inbox(self.url)
                    await conn.execute(_Q["schema"].sql)
                    await conn.execute(_Q["add_traceparent"].sql)
        except _DRIVER_ERRORS as exc:
            self._drop_pool()
            raise _error(exc, "opening") from exc
        except BaseException:
            self._drop_pool()
            raise

    def _drop_pool(self) -> None:
        """After a failed open: nothing of the pool may outlive it."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    async def close(self) -> None:
        await self._group.drain()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("the inbox is not open")
        return self._pool

    async def _fetch(self, conn: Any, name: str, **params: Any) -> list[Any]:
        query = _Q[name]
        return list(await conn.fetch(query.sql, *query.args(params)))

    async def _run(self, name: str, **params: Any) -> list[Any]:
        try:
            async with self.pool.acquire() as conn:
                return await self._fetch(conn, name, **params)
        except _DRIVER_ERRORS as exc:
            raise _error(exc, name) from exc

    async def _run_lazily(self, name: str, **params: Any) -> list[Any]:
        """``_run`` in a transaction that does not wait for its WAL flush (``_lazy``)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await _lazy(conn)
                return await self._fetch(conn, name, **params)
        except _DRIVER_ERRORS as exc:
            raise _error(exc, name) from exc

    # -- accepting, grouped -----------------------------------------------------------

    async def accept(self, incoming: Incoming, now: float) -> Outcome:
        return await self._group.submit((incoming, now))

    async def _accept_batch(self, batch: list[tuple[Incoming, float]]) -> list[Outcome]:
        # Several batches commit at once: each takes its rows (lanes, unique keys) in the
        # same order, by user then token, so two batches never wait on each other in a
        # cycle. Should PostgreSQL still find a deadlock, the batch is simply run again.
        marks = [incoming.marks for incoming, _ in batch]
        note_started(marks)
        order = sorted(range(len(batch)), key=lambda i: (batch[i][0].user_id, batch[i][0].token))
        ordered = [batch[i] for i in order]
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    outcomes = await self._accept_all(conn, ordered)
                note_committed(marks)
                by_index = dict(zip(order, outcomes, strict=True))
                return [by_index[i] for i in range(len(batch))]
            except asyncpg.DeadlockDetectedError as exc:
                if attempt == _DEADLOCK_RETRIES:
                    raise _error(exc, "storing webhooks") from exc
            except _DRIVER_ERRORS as exc:
                raise _error(exc, "storing webhooks") from exc
        raise AssertionError("unreachable")

    async def _accept_all(self, conn: Any, batch: list[tuple[Incoming, float]]) -> list[Outcome]:
        """Store a batch in two statements (rows, then lanes); look up what collided.

        Statements rather than a round trip per webhook: the batch holds its lane locks
        for as long as a few statements take, so the batches of other processes (and of
        this one) that need the same lanes wait that long, not for a whole round of trips.
        """
        columns: dict[str, list[Any]] = {name: [] for name in _Q["insert_webhook"].names}
        for incoming, now in batch:
            for name, value in incoming.params(now).items():
                columns[name].append(value)
        stored = {r["token"] for r in await self._fetch(conn, "insert_webhook", **columns)}
        outcomes: list[Outcome] = []
        due: dict[str, float] = {}
        for incoming, now in batch:
            if incoming.token in stored:
                stored.discard(incoming.token)  # a second copy in this batch is a duplicate
                outcomes.append(Outcome.ACCEPTED)
                due[incoming.user_id] = min(now, due.get(incoming.user_id, now))
                continue
            rows = await self._fetch(
                conn, "find_conflict", token=incoming.token, event_id=incoming.event_id
            )
            outcomes.append(classify(incoming, dict(rows[0]) if rows else None))
        if due:
            users = sorted(due)
            await self._fetch(conn, "wake_lane", user_id=users, due_at=[due[u] for u in users])
        return outcomes

    # -- lanes --------------------------------------------------------------------------

    async def claim_lanes(
        self, owner: str, limit: int, now: float, lease: float, running: Sequence[str] = ()
    ) -> list[str]:
        rows = await self._run_lazily(
            "claim_lanes",
            owner=owner,
            limit=limit,
            now=now,
            lease_until=now + lease,
            running=list(running),
        )
        return [r["user_id"] for r in rows]

    async def lane_head(self, user_id: str) -> Stored | None:
        rows = await self._run("lane_head", user_id=user_id)
        return head_from_row(rows[0] if rows else None)

    async def finish(self, owner: str, user_id: str, finish: Finish) -> Stored | None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await _lazy(conn)
                rows = await self._fetch(conn, "lane_owner", user_id=user_id)
                if not rows or rows[0]["owner"] != owner:
                    raise LeaseLost(user_id)
                await self._fetch(conn, _RESULT_QUERY[finish.result], **finish.params())
                head = await self._fetch(conn, "lane_head", user_id=user_id)
                return head_from_row(head[0] if head else None)
        except _DRIVER_ERRORS as exc:
            raise _error(exc, "finish") from exc

    async def release_lane(self, owner: str, user_id: str) -> None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await _lazy(conn)
                # Lock the lane first: a webhook committed by then is seen by the head
                # query below, and one committed later wakes the lane itself (its insert
                # waits for this lock, and makes the lane again if it was deleted).
                await self._fetch(conn, "lane_owner", user_id=user_id)
                rows = await self._fetch(conn, "lane_head", user_id=user_id)
                head = head_from_row(rows[0] if rows else None)
                if head is None:
                    await self._fetch(conn, "forget_lane", user_id=user_id, owner=owner)
                    return
                await self._fetch(
                    conn, "release_lane", user_id=user_id, owner=owner, due_at=head.next_attempt_at
                )
        except _DRIVER_ERRORS as exc:
            raise _error(exc, "release_lane") from exc

    async def renew_leases(
        self, owner: str, user_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        rows = await self._run_lazily(
            "renew_leases", owner=owner, user_ids=list(user_ids), lease_until=lease_until
        )
        return {r["user_id"] for r in rows}

    async def release_all(self, owner: str) -> None:
        await self._run_lazily("release_all", owner=owner)

    # -- once keys, dead letters, housekeeping ----------------------------------------

    async def claim_once(self, key: str, webhook_id: int, now: float) -> bool:
        return bool(await self._run("claim_once", key=key, webhook_id=webhook_id, now=now))

    async def forget_once(self, key: str) -> None:
        await self._run("forget_once", key=key)

    async def list_webhooks(self, status: str, limit: int) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._run("list_webhooks", status=status, limit=limit)]

    async def get_webhook(self, webhook_id: int) -> dict[str, Any] | None:
        rows = await self._run("get_webhook", id=webhook_id)
        return dict(rows[0]) if rows else None

    async def replay_dead(self, webhook_id: int | None, now: float) -> list[int]:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await self._fetch(conn, "replay_dead", id=webhook_id, now=now)
                # Lanes in user order, as everywhere: no lock cycle with a batch being stored.
                users = sorted({row["user_id"] for row in rows})
                if users:
                    await self._fetch(conn, "wake_lane", user_id=users, due_at=[now] * len(users))
                return sorted(int(r["id"]) for r in rows)
        except _DRIVER_ERRORS as exc:
            raise _error(exc, "replay_dead") from exc

    async def purge_finished(self, before: float) -> int:
        try:
            async with self.pool.acquire() as conn:
                status = await conn.execute(_Q["purge_finished"].sql, before)
        except _DRIVER_ERRORS as exc:
            raise _error(exc, "purge_finished") from exc
        return int(status.split()[-1])

    async def prune_lanes(self) -> int:
        try:
            async with self.pool.acquire() as conn:
                status = await conn.execute(_Q["prune_lanes"].sql)
        except _DRIVER_ERRORS as exc:
            raise _error(exc, "prune_lanes") from exc
        return int(status.split()[-1])
