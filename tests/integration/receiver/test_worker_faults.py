"""Faults the workers must live through without running a handler twice or losing a
webhook: storage errors at every write of the worker path, and an event loop starved by
the very handler whose lease must be kept.

On real SQLite. The storage errors come from an inbox that fails on purpose: every third
call of each write fails, alternately before the write (nothing written) and after it
(written, but the answer lost, as when a connection drops during the commit).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from hookline.config import RetryPolicy
from hookline.exceptions import StorageError
from hookline.receiver import Event, Receiver
from hookline.receiver._config import ReceiverSettings
from hookline.receiver.inbox import Finish, Inbox, Result, Stored
from hookline.receiver.inbox.sqlite import SqliteInbox
from hookline.receiver.workers import Workers
from tests.support.eventually import eventually
from tests.support.receiver import KEY, all_done, signed_webhook, statuses

T = TypeVar("T")
USERS = 6
EVENTS = 15


class FaultyInbox(SqliteInbox):
    """A SQLite inbox whose worker-path writes fail on every ``every``-th call."""

    def __init__(self, url: str, faults: Counter[str], every: int = 3) -> None:
        super().__init__(url)
        self.faults = faults
        self.calls: Counter[str] = Counter()
        self.every = every

    async def _faulty(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls[name] += 1
        n = self.calls[name]
        if n % self.every:
            return await call()
        if (n // self.every) % 2:
            self.faults[name + " (before)"] += 1
            raise StorageError(f"injected: {name} call {n} failed before writing")
        await call()
        self.faults[name + " (after)"] += 1
        raise StorageError(f"injected: {name} call {n} wrote, then the answer was lost")

    async def claim_lanes(
        self, owner: str, limit: int, now: float, lease: float, running: Sequence[str] = ()
    ) -> list[str]:
        return await self._faulty(
            "claim_lanes", lambda: SqliteInbox.claim_lanes(self, owner, limit, now, lease, running)
        )

    async def lane_head(self, user_id: str) -> Stored | None:
        return await self._faulty("lane_head", lambda: SqliteInbox.lane_head(self, user_id))

    async def finish(self, owner: str, user_id: str, finish: Finish) -> Stored | None:
        name = {Result.DONE: "finish", Result.RETRY: "retry", Result.DEAD: "dead-letter"}
        return await self._faulty(
            name[finish.result], lambda: SqliteInbox.finish(self, owner, user_id, finish)
        )

    async def release_lane(self, owner: str, user_id: str) -> None:
        await self._faulty("release_lane", lambda: SqliteInbox.release_lane(self, owner, user_id))

    async def renew_leases(
        self, owner: str, user_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        return await self._faulty(
            "renew_leases", lambda: SqliteInbox.renew_leases(self, owner, user_ids, lease_until)
        )


async def _final(inbox: Inbox) -> bool:
    """Whether every webhook is done or dead (none pending: none can run again)."""
    return "pending" not in await statuses(inbox)


async def test_storage_errors_at_every_write_run_no_handler_twice_and_lose_nothing(
    sqlite_url: str,
) -> None:
    # Some webhooks fail once (a retry is written), some always (a dead letter is written).
    retry = RetryPolicy(schedule=(0, 0.05, 0.05), jitter=0)
    runs: list[tuple[str, int, str]] = []  # (user, seq, "start"/"end")

    async def handle(event: Event) -> None:
        seq = int(event.data["seq"])
        runs.append((event.user_id, seq, "start"))
        await asyncio.sleep(0.001)
        runs.append((event.user_id, seq, "end"))
        if seq % 7 == 3 or (seq % 5 == 1 and event.attempt == 1):
            raise RuntimeError("failing on purpose")

    def expected_runs(seq: int) -> int:
        return 3 if seq % 7 == 3 else 2 if seq % 5 == 1 else 1

    intake = Receiver(keys=[KEY], database=sqlite_url)
    base = int(time.time()) - 60
    async with intake.running(workers=False):
        for u in range(USERS):
            for i in range(EVENTS):
                headers, body = signed_webhook(
                    user_id=f"u{u}", event_id=f"e-{u}-{i}", unix_ts=base + i, data={"seq": i}
                )
                assert (await intake.receive(headers, body)).status == 200

    faults: Counter[str] = Counter()
    settings = ReceiverSettings(
        database=sqlite_url, retry=retry, lease_seconds=2.0, poll_interval=0.02, concurrency=4
    )
    inbox = FaultyInbox(sqlite_url, faults)
    await inbox.open()
    workers = Workers(
        inbox, lambda _type: [handle], settings, lease_inbox=lambda: FaultyInbox(sqlite_url, faults)
    )
    total = sum(expected_runs(i) for i in range(EVENTS)) * USERS
    await workers.start()
    try:
        await eventually(lambda: len(runs) >= 2 * total, timeout=120)
        # Once every webhook is done or dead, nothing can run again: the runs are final.
        await eventually(lambda: _final(inbox), timeout=120, message="every webhook final")
        counts = await statuses(inbox)
    finally:
        await workers.stop()
        await inbox.close()

    print(f"\n  injected: {dict(sorted(faults.items()))}")
    for write in ("claim_lanes", "lane_head", "finish", "retry", "dead-letter", "release_lane"):
        assert faults[write + " (before)"] and faults[write + " (after)"], write
    assert faults["renew_leases (before)"] or faults["renew_leases (after)"]
    # Every webhook handled, each run exactly as often as its handler asked for, in order,
    # one at a time per user; nothing lost, nothing run again for a failed write.
    dead = sum(1 for i in range(EVENTS) if i % 7 == 3) * USERS
    assert counts == {"done": USERS * EVENTS - dead, "dead": dead}
    for u in range(USERS):
        mine = [(seq, phase) for user, seq, phase in runs if user == f"u{u}"]
        assert [phase for _, phase in mine] == ["start", "end"] * (len(mine) // 2)
        seqs = [seq for seq, phase in mine if phase == "start"]
        assert seqs == [i for i in range(EVENTS) for _ in range(expected_runs(i))], seqs


async def test_a_handler_that_blocks_the_event_loop_past_the_lease_keeps_its_lane(
    sqlite_url: str,
) -> None:
    """The lease is renewed from a thread of its own, so a handler that hogs the event loop
    for longer than the lease (CPU-bound work in an async handler) does not lose its lane to
    the other process, which would run the same webhook again at the same time."""
    lease = 2.0
    runs: list[tuple[str, str, str, float]] = []  # (process, event_id, phase, time)
    lock = threading.Lock()

    def receiver(name: str) -> Receiver:
        r = Receiver(keys=[KEY], database=sqlite_url, lease_seconds=lease, poll_interval=0.02)

        @r.on("*")
        async def handle(event: Event) -> None:
            with lock:
                runs.append((name, event.event_id, "start", time.monotonic()))
            if event.data.get("hog"):
                time.sleep(2.5 * lease)  # blocks this process's event loop
            with lock:
                runs.append((name, event.event_id, "end", time.monotonic()))

        return r

    other_stop = threading.Event()
    other_ready = threading.Event()

    async def other_process() -> None:
        async with receiver("other").running():
            other_ready.set()
            await asyncio.to_thread(other_stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(other_process(),))
    thread.start()
    try:
        other_ready.wait(30)
        base = int(time.time()) - 60
        async with receiver("this").running() as this:
            for i, hog in enumerate([True, False, False]):
                headers, body = signed_webhook(
                    user_id="u", event_id=f"e{i}", unix_ts=base + i, data={"hog": hog}
                )
                assert (await this.receive(headers, body)).status == 200
            await eventually(lambda: sum(1 for r in runs if r[2] == "end") >= 3, timeout=60)
            # All three done: no run of them, in either process, can start any more.
            await all_done(this, 3)
    finally:
        other_stop.set()
        thread.join(60)
    started = [(event_id, phase) for _, event_id, phase, _ in runs]
    assert started == [(e, p) for e in ("e0", "e1", "e2") for p in ("start", "end")], runs
