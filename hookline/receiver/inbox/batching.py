"""Group commit on an event loop: callers submit one item each, a flusher writes many.

While a flush is running, new items wait in the queue; the next flush takes all of them
(up to ``max_batch``). Under light load a batch is one item and nothing waits; under heavy
load each commit carries many items. Nobody is answered before their batch has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from hookline.receiver.stages import Marks, clock

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        flushers: int = 1,
        max_batch: int = 256,
    ) -> None:
        self._flush = flush
        self._flushers = flushers
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R], Marks | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._flushers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def submit(self, item: T, marks: Marks | None = None) -> R:
        """``item``'s result once its batch has committed (``marks`` note when)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future, marks))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._flush_batch(batch)

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R], Marks | None]]) -> None:
        timed = [marks for _, _, marks in batch if marks is not None]
        for marks in timed:
            marks.started = clock()
        try:
            results = await self._flush([item for item, _, _ in batch])
        except Exception as exc:
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for marks in timed:
            marks.committed = clock()
        for (_, future, _), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
