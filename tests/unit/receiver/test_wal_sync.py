"""WalSync answers a batch only after an fsync that started after the batch committed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hookline.exceptions import StorageError
from hookline.receiver.inbox import wal_sync
from hookline.receiver.inbox.wal_sync import WalSync


class Fsyncs:
    """fsync_path stand-in: each call blocks until the test lets it end."""

    def __init__(self) -> None:
        self.started = 0
        self.release = [threading.Event() for _ in range(10)]
        self.fail = False

    def __call__(self, path: str) -> None:
        n = self.started
        self.started += 1
        self.release[n].wait(10)
        if self.fail:
            raise OSError("EIO")


async def until(predicate: object) -> None:
    for _ in range(1000):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_a_batch_committed_during_an_fsync_waits_for_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fsyncs = Fsyncs()
    monkeypatch.setattr(wal_sync, "fsync_path", fsyncs)
    monkeypatch.setattr(wal_sync, "MAX_IN_FLIGHT", 1)
    sync = WalSync("inbox.db-wal")
    settled: list[str] = []
    sync.committed(lambda error: settled.append("first"))
    await until(lambda: fsyncs.started == 1)
    sync.committed(lambda error: settled.append("second"))
    sync.committed(lambda error: settled.append("third"))
    fsyncs.release[0].set()
    await until(lambda: settled == ["first"] and fsyncs.started == 2)
    # The fsync that was running when they committed does not count for them.
    assert settled == ["first"]
    fsyncs.release[1].set()
    await sync.drain()
    assert settled == ["first", "second", "third"]
    assert fsyncs.started == 2  # one fsync for both


async def test_fsyncs_overlap_so_nobody_waits_for_more_than_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fsyncs = Fsyncs()
    monkeypatch.setattr(wal_sync, "fsync_path", fsyncs)
    sync = WalSync("inbox.db-wal")
    settled: list[str] = []
    sync.committed(lambda error: settled.append("first"))
    await until(lambda: fsyncs.started == 1)
    sync.committed(lambda error: settled.append("second"))
    await until(lambda: fsyncs.started == 2)  # started without waiting for the first
    fsyncs.release[1].set()
    await until(lambda: settled == ["second"])
    fsyncs.release[0].set()
    await sync.drain()
    assert settled == ["second", "first"]


async def test_a_failed_fsync_is_an_error_for_its_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fsyncs = Fsyncs()
    fsyncs.fail = True
    fsyncs.release[0].set()
    monkeypatch.setattr(wal_sync, "fsync_path", fsyncs)
    sync = WalSync("inbox.db-wal")
    errors: list[StorageError | None] = []
    sync.committed(errors.append)
    await sync.drain()
    assert len(errors) == 1 and isinstance(errors[0], StorageError)
