"""The PostgreSQL store when the database goes away and comes back (through a forwarder
the test cuts, so the server other tests share keeps running)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from hookline.exceptions import StorageUnavailable
from hookline.store import NewEvent, Store
from tests.support.eventually import eventually
from tests.support.tcp_forwarder import Forwarder

pytestmark = pytest.mark.postgres


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    forwarder = await Forwarder(("127.0.0.1", 5432)).start()
    try:
        yield forwarder
    finally:
        await forwarder.cut()


def _through(url: str, forwarder: Forwarder) -> str:
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}")


def _event(event_id: str) -> NewEvent:
    return NewEvent(event_id, "order_completed", "u1", orjson.dumps({"id": 1}).decode())


async def _until_it_works(store: Store, event_id: str, timeout: float = 15) -> float:
    started = time.monotonic()

    async def published() -> bool:
        try:
            await store.publish([_event(event_id)])
        except StorageUnavailable:
            return False
        return True

    await eventually(published, timeout=timeout, message="the store to come back")
    return time.monotonic() - started


async def test_the_store_fails_fast_while_the_database_is_gone_and_recovers(
    postgres_url: str, forwarder: Forwarder
) -> None:
    store = await Store.open(_through(postgres_url, forwarder))
    try:
        await store.publish([_event("before")])
        await forwarder.cut()
        for attempt in range(5):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                await store.publish([_event(f"during-{attempt}")])
            assert time.monotonic() - started < 5  # an answer, not a hang
        await forwarder.start()
        await _until_it_works(store, "after")
    finally:
        await store.close()
    direct = await Store.open(postgres_url)
    try:
        for event_id in ("before", "after"):
            assert (await direct.get_event(event_id)).id == event_id
    finally:
        await direct.close()


async def test_a_listener_hears_publishes_again_after_its_connection_dropped(
    postgres_url: str, forwarder: Forwarder, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = await Store.open(postgres_url)
    app, _ = await publisher.create_app("shop")
    await publisher.install(app.id, "u1")
    await publisher.create_endpoint(app.id, url="http://127.0.0.1:9/", event_types=["*"], timeout=5)
    listener = await Store.open(_through(postgres_url, forwarder))
    heard = asyncio.Event()
    subscription = await listener.on_published(heard.set)
    try:
        await asyncio.wait_for(heard.wait(), 5)  # connected
        heard.clear()
        with caplog.at_level(logging.DEBUG, logger="hookline.store"):
            await forwarder.cut()
            # It noticed, and a reconnection failed while the server was gone.
            await eventually(lambda: "reconnecting" in caplog.text, message="a failed reconnection")
        await forwarder.start()
        await asyncio.wait_for(heard.wait(), 10)  # reconnected (it calls once then)
        heard.clear()
        await publisher.publish([_event("e1")])
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        await subscription.close()
        await listener.close()
        await publisher.close()
