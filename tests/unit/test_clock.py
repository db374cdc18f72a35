"""The manual clock: it moves only when told, and wakes exactly the sleeps that are due."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hookline.clock import SYSTEM_CLOCK, ManualClock
from tests.support.eventually import eventually, eventually_sync


async def test_a_sleep_ends_when_the_clock_has_moved_far_enough() -> None:
    clock = ManualClock()
    start = clock.now()
    sleeper = asyncio.create_task(clock.sleep(60))
    await eventually(lambda: clock.pending() == [60])
    clock.advance(59.5)
    await eventually(lambda: clock.pending() == [0.5])
    assert not sleeper.done()
    clock.advance(0.5)
    await asyncio.wait_for(sleeper, 30)
    assert (clock.now() - start, clock.monotonic()) == (60, 60)


async def test_advance_wakes_the_due_sleeps_and_only_those() -> None:
    clock = ManualClock()
    woken: list[float] = []

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append(seconds)

    tasks = [asyncio.create_task(sleep(s)) for s in (3, 1, 2, 10)]
    await eventually(lambda: len(clock.pending()) == 4)
    clock.advance(2)
    await eventually(lambda: woken == [1, 2])
    assert clock.pending() == [1, 8]
    clock.advance(8)
    await asyncio.gather(*tasks)
    assert woken == [1, 2, 3, 10]


async def test_wait_returns_at_the_event_or_when_the_time_is_up() -> None:
    clock = ManualClock()
    event = asyncio.Event()
    waiting = asyncio.create_task(clock.wait(event, 5))
    await eventually(lambda: clock.pending() == [5])
    event.set()
    assert await asyncio.wait_for(waiting, 30) is True
    assert clock.pending() == []  # its sleep is forgotten

    event.clear()
    waiting = asyncio.create_task(clock.wait(event, 5))
    await eventually(lambda: clock.pending() == [5])
    clock.advance(5)
    assert await asyncio.wait_for(waiting, 30) is False


def test_a_sleep_in_another_thread_is_woken_in_its_own_loop() -> None:
    clock = ManualClock()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (asyncio.run(clock.sleep(30)), done.set()))
    thread.start()
    eventually_sync(lambda: clock.pending() == [30])
    clock.advance(30)
    thread.join(30)
    assert done.is_set()


def test_the_clock_never_goes_back() -> None:
    clock = ManualClock(start=1000.0)
    clock.set(1500.0)
    assert clock.now() == 1500.0
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)


async def test_the_system_clock_is_the_real_time() -> None:
    import time

    assert abs(SYSTEM_CLOCK.now() - time.time()) < 60
    event = asyncio.Event()
    event.set()
    assert await SYSTEM_CLOCK.wait(event, 30) is True
