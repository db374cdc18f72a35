"""A write cancelled while SQLite begins its transaction leaves the connection usable.

aiosqlite runs each statement in its own thread: a ``BEGIN`` whose caller is cancelled
still runs there, and an open transaction left behind would make every later write of
the process fail ("cannot start a transaction within a transaction"). A request whose
client goes away, or an engine stopping, cancels writes at any point.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hookline.store import Store


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    opened = await Store.open("sqlite:///:memory:")
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_write_cancelled_at_any_point_leaves_later_writes_working(store: Store) -> None:
    # Cancel after 0, 1, 2, ... turns of the event loop, so that every await of the
    # transaction's start (the lock, the pragma, the BEGIN) is hit at least once.
    for turns in range(40):
        started = asyncio.Event()

        async def write(started: asyncio.Event = started, durable: bool = turns % 2 == 0) -> None:
            started.set()
            async with store.db.transaction(durable=durable):
                await asyncio.Event().wait()  # held until cancelled

        task = asyncio.create_task(write())
        await started.wait()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The next writer gets a transaction of its own, committed.
        app, _ = await store.create_app(f"after {turns} turns")
        assert (await store.get_app(app.id)).name == f"after {turns} turns"
