"""Waiting for a condition: the one way tests wait for something to happen.

``await eventually(condition)`` polls ``condition`` (a plain or async function) until it
returns something truthy, and returns that; after ``timeout`` seconds it fails the test
with ``message`` and the last value seen. ``eventually_sync`` is the same for code that runs
outside an event loop (a thread, a synchronous test).

The bounds are generous on purpose: they only decide how long a broken test takes to
fail, never whether a working one passes, so a loaded machine does not make tests flaky.
Nothing here lets time pass for its own sake: a test that needs time to pass moves a
``ManualClock`` (``hookline.clock``) instead.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["eventually", "eventually_sync"]

T = TypeVar("T")

#: Seconds a condition is waited for, unless a test says otherwise.
TIMEOUT = 60.0
#: Seconds between two polls at most. The first polls come sooner (from a millisecond,
#: doubling), so a condition met at once costs no wait, and one that takes seconds (a
#: process starting, an HTTP API asked each time) is not asked hundreds of times.
INTERVAL = 0.05
FIRST_INTERVAL = 0.001


def _describe(message: str | Callable[[], str], last: object) -> str:
    text = message() if callable(message) else message
    return f"{text} (last value: {last!r})"


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: str | Callable[[], str] = "the condition",
) -> T:
    """Poll ``condition`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    pause = min(FIRST_INTERVAL, interval)
    while True:
        value: Any = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {_describe(message, value)}"
            )
        await asyncio.sleep(pause)  # a poll: the condition is looked at again
        pause = min(pause * 2, interval)


def eventually_sync(
    condition: Callable[[], T],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: str | Callable[[], str] = "the condition",
) -> T:
    """``eventually`` for synchronous code (a thread, a test without an event loop)."""
    deadline = time.monotonic() + timeout
    pause = min(FIRST_INTERVAL, interval)
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {_describe(message, value)}"
            )
        time.sleep(pause)  # a poll: the condition is looked at again
        pause = min(pause * 2, interval)
