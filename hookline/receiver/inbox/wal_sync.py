"""Making SQLite commits durable off the writer's path: the WAL is fsync'd by us.

With ``synchronous=FULL`` SQLite fsyncs inside ``COMMIT`` and holds the write lock
meanwhile, so the next batch cannot even start: a request that arrives during a commit
waits for the rest of that fsync, then for the fsync of its own batch. Instead the
connection commits with ``synchronous=NORMAL`` (frames written to the WAL, no fsync) and
this syncer fsyncs the WAL file; a batch is answered only after an fsync that *started*
after its ``COMMIT`` returned, which makes it exactly as durable as ``FULL`` (the commit
frame and everything before it are on disk). The writer goes straight on to the next
batch, and fsyncs overlap: a request waits for its batch's statements and one fsync.

A committed batch joins the fsync that starts next. Up to ``MAX_IN_FLIGHT`` fsyncs run at
once; a batch committed while all of them run waits for the first to end, then starts a
new one (covering every batch committed meanwhile).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from hookline.exceptions import StorageError

MAX_IN_FLIGHT = 2

#: Called once the batch is durable, with None, or with the error that says it may not be.
Settle = Callable[[StorageError | None], None]


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WalSync:
    def __init__(self, wal_path: str) -> None:
        self._wal_path = wal_path
        self._waiting: list[Settle] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def committed(self, settle: Settle) -> None:
        """A batch has committed: ``settle`` it after the next fsync that starts."""
        self._waiting.append(settle)
        self._start()

    async def drain(self) -> None:
        """Wait until every batch committed so far is settled."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self) -> None:
        if not self._waiting or self._in_flight >= MAX_IN_FLIGHT:
            return
        covered, self._waiting = self._waiting, []
        self._in_flight += 1
        task = asyncio.create_task(self._fsync(covered), name="hookline-inbox-fsync")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fsync(self, covered: list[Settle]) -> None:
        error: StorageError | None = None
        try:
            await asyncio.to_thread(fsync_path, self._wal_path)
        except OSError as exc:
            error = StorageError(f"SQLite inbox: fsync of {self._wal_path!r} failed: {exc}")
        finally:
            self._in_flight -= 1
        for settle in covered:
            settle(error)
        self._start()
