"""Time, given rather than read: the store, the engine, its health monitor and the
receiver's workers take a ``Clock`` instead of calling ``time`` themselves.

``SystemClock`` (the default everywhere) is the real time. ``ManualClock`` stands still
until a test moves it (``advance``), waking whatever sleeps until then, so retries,
leases and health checks that wait minutes or days are tested in milliseconds, and a
test that asserts nothing happened "for a while" need not wait a while.

Three readings, each for its own purpose:

* ``now()``: wall time, seconds since the epoch; what is stored (``created_at``,
  ``next_attempt_at``, lease ends) and compared with stored times.
* ``monotonic()``: for intervals inside one process (backoffs, deadlines).
* ``sleep()`` and ``wait()``: the waits of the loops that run by the clock.

The clock is hand-written, not a library (``time-machine``, ``freezegun``): those patch
``time`` for the whole process, including asyncio's own loop and the HTTP clients, while
this moves only the parts that were handed the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Wall time, in seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait until ``event`` is set or ``seconds`` have passed; whether it was set."""
        ...


class SystemClock:
    """The real time (``time.time``, ``time.monotonic``, ``asyncio.sleep``)."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return event.is_set()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The one real clock: the default of everything that takes a clock.
SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to (``advance``, ``set``); for tests.

    Sleepers may wait in any event loop and thread (the receiver's lease keeper runs in
    a thread of its own): each is woken in its own loop.
    """

    #: Where the wall time starts: a fixed, recent moment, so stored times look real.
    START = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __init__(self, start: float = START) -> None:
        self._now = start
        self._monotonic = 0.0
        self._lock = threading.Lock()
        self._order = itertools.count()
        #: (deadline on the monotonic reading, order, loop, future) of every sleeper.
        self._sleepers: list[
            tuple[float, int, asyncio.AbstractEventLoop, asyncio.Future[None]]
        ] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if seconds <= 0:
                future.set_result(None)
            else:
                entry = (self._monotonic + seconds, next(self._order), loop, future)
                heapq.heappush(self._sleepers, entry)
        try:
            await future
        finally:
            if not future.done():  # cancelled: forget it
                future.cancel()

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)
        return event.is_set()

    def pending(self) -> list[float]:
        """Seconds until each sleep now waiting ends, soonest first (for tests that wait
        until a loop has gone back to sleep)."""
        with self._lock:
            return sorted(
                deadline - self._monotonic
                for deadline, _, _, future in self._sleepers
                if not future.done()
            )

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` and wake every sleep that is due by then."""
        if seconds < 0:
            raise ValueError("a clock never goes back")
        with self._lock:
            self._now += seconds
            self._monotonic += seconds
            due = []
            while self._sleepers and self._sleepers[0][0] <= self._monotonic:
                due.append(heapq.heappop(self._sleepers))
        for _, _, loop, future in due:
            if loop.is_closed():
                continue
            loop.call_soon_threadsafe(_wake, future)

    def set(self, now: float) -> None:
        """Move the wall time to ``now`` (never back), waking what is due by then."""
        self.advance(now - self.now())

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now()!r})"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
