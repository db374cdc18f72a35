"""Several processes on one SQLite file: wake-ups without polling, writes that take turns.

The API process and the delivery processes of ``hookline serve`` each open the file
with a connector of their own; here two connectors in one test stand for two processes
(each has connections, and a wake-up socket, of its own).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookline.exceptions import StorageError
from hookline.store import Store
from hookline.store import sqlite as sqlite_backend
from hookline.store.records import NewEvent
from tests.support.eventually import eventually


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = await Store.open(url)
    second = await Store.open(url, create=False)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def _app_for(store: Store, user: str) -> None:
    app, _ = await store.create_app("shop")
    await store.install(app.id, user)
    await store.create_endpoint(
        app.id, url="https://example.com/hook", event_types=["*"], timeout=10.0
    )


async def test_a_publish_wakes_a_listener_of_another_connector(two: tuple[Store, Store]) -> None:
    publisher, deliverer = two
    await _app_for(publisher, "store-1")
    woken = asyncio.Event()
    subscription = await deliverer.on_published(woken.set)
    try:
        await publisher.publish([NewEvent("evt-1", "order_completed", "store-1", "{}")])
        await asyncio.wait_for(woken.wait(), 30)
    finally:
        await subscription.close()


async def test_a_delivery_made_due_by_the_api_wakes_other_processes(
    two: tuple[Store, Store],
) -> None:
    api, deliverer = two
    woken = asyncio.Event()
    subscription = await deliverer.on_published(woken.set)
    try:
        await api.wake_engines()  # what a retry or a recovery from the API sends
        await asyncio.wait_for(woken.wait(), 30)
    finally:
        await subscription.close()


async def test_a_closed_listener_leaves_no_socket_and_a_dead_one_is_skipped(
    two: tuple[Store, Store], tmp_path: Path
) -> None:
    publisher, deliverer = two
    await _app_for(publisher, "store-1")
    wake_dir = tmp_path / "shared.db-wake"
    subscription = await deliverer.on_published(lambda: None)
    assert len(list(wake_dir.iterdir())) == 1
    await subscription.close()
    assert list(wake_dir.iterdir()) == []

    # A process killed with -9 leaves its socket file behind: the next publish removes it.
    stale = _socket_left_behind(wake_dir / "hookline_published.1.dead")
    await publisher.publish([NewEvent("evt-1", "order_completed", "store-1", "{}")])
    assert not stale.exists()


def _socket_left_behind(path: Path) -> Path:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()  # bound, then closed without unlinking: nobody receives on it
    return path


def _hold_write_lock(path: Path, held: threading.Event, release: threading.Event) -> None:
    """Another process's writer: holds SQLite's write lock until ``release`` is set."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(60)
        db.execute("COMMIT")
    finally:
        db.close()


async def test_a_write_waits_for_another_writer_without_holding_up_the_loop(
    two: tuple[Store, Store], tmp_path: Path
) -> None:
    store, _ = two
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(tmp_path / "shared.db", held, release))
    holder.start()
    try:
        assert await asyncio.to_thread(held.wait, 30)
        creating = asyncio.create_task(store.create_app("waits"))
        ticks = 0

        async def tick() -> bool:
            nonlocal ticks
            ticks += 1
            return ticks >= 20

        # The loop runs on while the write waits for the lock.
        await eventually(tick, timeout=30, interval=0.01)
        assert not creating.done()
        release.set()
        app, _ = await asyncio.wait_for(creating, 30)
        assert app.name == "waits"
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


async def test_a_write_gives_up_after_the_busy_timeout(
    two: tuple[Store, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = two
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT", 0.2)
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(tmp_path / "shared.db", held, release))
    holder.start()
    try:
        assert await asyncio.to_thread(held.wait, 30)
        with pytest.raises(StorageError, match="locked"):
            await store.create_app("never")
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


async def test_without_a_place_for_wake_up_sockets_engines_poll_and_publishing_works(
    two: tuple[Store, Store], tmp_path: Path
) -> None:
    publisher, deliverer = two
    await _app_for(publisher, "store-1")
    (tmp_path / "shared.db-wake").write_text("not a directory")
    subscription = await deliverer.on_published(lambda: None)  # no error: it polls
    await publisher.publish([NewEvent("evt-1", "order_completed", "store-1", "{}")])
    await subscription.close()
