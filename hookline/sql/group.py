"""Group commit: many callers' work in one transaction, each caller with its own answer.

Each caller submits one entry and awaits its result. A flusher takes every entry waiting
(up to ``max_group``, counted by ``weight``), hands them to ``commit`` (one transaction
for the group, returning one result per entry, in order) and answers each caller; what is
submitted meanwhile waits for the next group. Under light load a group is one entry and
nothing waits; under heavy load one commit (and its fsync) carries many. Nobody is
answered before their group has committed.

The sender's publisher groups API requests into the store this way, and both inboxes of
the receiver group incoming webhooks (PostgreSQL, with several flushers committing at
once) or every operation (SQLite, one flusher: the one writer).

When a group fails, one rule:

- a group of one entry: its caller gets the error;
- ``StorageUnavailable`` (the database is gone for now): every caller of the group gets
  it at once, since any part of the group would fail the same way; they try again later;
- any other error (one entry's bad data, a transaction too large, a lost lease): the group
  is split in halves and each half committed again, in order, down to single entries. An
  entry whose own commit fails gets that error; every other entry is committed and gets
  its result. One bad entry among n costs about 2·log2(n) more commits, not n.

Flushers are tasks started when work arrives and ended when none is left, so an idle
group commit holds no task. If a flusher is cancelled (the event loop is stopping), the
callers it would have answered get ``StorageUnavailable``: nobody waits forever.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from hookline.exceptions import StorageUnavailable

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_group: int,
        weight: Callable[[T], int] | None = None,
        flushers: int = 1,
    ) -> None:
        """``commit`` stores a group in one transaction and returns a result per entry.

        A group holds entries whose ``weight`` (1 each by default) adds up to at most
        ``max_group``; an entry heavier than that by itself goes alone. Up to ``flushers``
        groups commit at once (1: groups commit one after another, in order).
        """
        self._commit = commit
        self._max_group = max_group
        self._weight = weight
        self._flushers = flushers
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        #: A flusher was started and has not yet run: it takes whatever is waiting.
        self._starting = False

    async def submit(self, entry: T) -> R:
        """``entry``'s result, once its group has committed (or its error)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, future))
        self._start_flusher()
        return await future

    async def drain(self) -> None:
        """Return once everything submitted has been answered."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_flusher(self) -> None:
        if self._starting or len(self._tasks) >= self._flushers:
            return  # a flusher will take it
        self._starting = True
        self._tasks.add(asyncio.create_task(self._flush(), name="hookline-group-commit"))

    async def _flush(self) -> None:
        self._starting = False
        group: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                group = self._take()
                if self._waiting:
                    self._start_flusher()  # another group waits: it may commit meanwhile
                await self._commit_group(group)
        except BaseException:
            stopping = StorageUnavailable("shutting down; try again")
            for _, future in group:
                _fail(future, stopping)
            if len(self._tasks) == 1:  # no other flusher is left to answer those waiting
                while self._waiting:
                    _fail(self._waiting.popleft()[1], stopping)
            raise
        finally:
            # At once, not in a done callback: an entry submitted from now on must see
            # that this flusher no longer runs and start another.
            task = asyncio.current_task()
            assert task is not None
            self._tasks.discard(task)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        waiting = self._waiting
        group = [waiting.popleft()]
        if self._weight is None:
            while waiting and len(group) < self._max_group:
                group.append(waiting.popleft())
            return group
        size = self._weight(group[0][0])
        while waiting and size + self._weight(waiting[0][0]) <= self._max_group:
            entry = waiting.popleft()
            size += self._weight(entry[0])
            group.append(entry)
        return group

    async def _commit_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._commit([entry for entry, _ in group])
        except StorageUnavailable as exc:
            for _, future in group:
                _fail(future, exc)
            return
        except Exception as exc:
            if len(group) == 1:
                _fail(group[0][1], exc)
                return
            half = len(group) // 2
            await self._commit_group(group[:half])
            await self._commit_group(group[half:])
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
