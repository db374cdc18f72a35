"""Publishing: events into the store in group commits, then a wake-up for the engine.

Many API requests arrive at once, each with one event. Each would cost a transaction
(and an fsync); the publisher instead gathers whatever arrived while the previous
transaction was committing and stores it all in the next one. Every caller still gets
its answer only after its events are durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from hookline.exceptions import HooklineError, StorageUnavailable, TooLarge
from hookline.store import NewEvent, Published, Store

log = logging.getLogger("hookline.publisher")

MAX_GROUP = 2000

#: The events of one ``publish`` call and the future its caller awaits.
_Entry = tuple[Sequence[NewEvent], "asyncio.Future[list[Published]]"]


class Publisher:
    def __init__(self, store: Store, on_published: Callable[[], None] | None = None) -> None:
        self.store = store
        self._on_published = on_published or (lambda: None)
        self._waiting: deque[_Entry] = deque()
        self._flushing: asyncio.Task[None] | None = None

    async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
        future: asyncio.Future[list[Published]] = asyncio.get_running_loop().create_future()
        self._waiting.append((events, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                group: list[_Entry] = []
                size = 0
                while self._waiting and (not group or size + len(self._waiting[0][0]) <= MAX_GROUP):
                    entry = self._waiting.popleft()
                    group.append(entry)
                    size += len(entry[0])
                await self._commit(group)
        except BaseException:
            # Cancelled (the server is stopping): nobody may wait for an answer forever.
            waiting, self._waiting = self._waiting, deque()
            for _, future in waiting:
                _settle(future, StorageUnavailable("the server is stopping; publish again"))
            raise
        finally:
            self._flushing = None

    async def _commit(self, group: list[_Entry]) -> None:
        try:
            published = await self.store.publish([e for events, _ in group for e in events])
        except TooLarge as exc:
            # Too many deliveries for one transaction: halves, until each fits (a request
            # too large by itself fails alone). The refusal writes nothing and is quick.
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            half = len(group) // 2
            await self._commit(group[:half])
            await self._commit(group[half:])
            return
        except HooklineError as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            # One request's bad event must not fail the others that shared its commit.
            for entry in group:
                await self._commit([entry])
            return
        except Exception as exc:
            # Not one of ours: a bug, or a driver error nobody translated. These callers
            # get a 500; the commits queued behind them go on.
            log.exception("publishing %d request(s) failed", len(group))
            for _, future in group:
                _settle(future, exc)
            return
        except BaseException as exc:
            for _, future in group:
                _settle(future, exc)
            raise
        self._on_published()
        offset = 0
        for events, future in group:
            _settle(future, published[offset : offset + len(events)])
            offset += len(events)


def _settle(future: asyncio.Future[list[Published]], outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)  # type: ignore[arg-type]
