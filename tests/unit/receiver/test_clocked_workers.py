"""Retries and leases of the receiver's workers, on a clock the test moves.

A retry an hour away, or a lease renewed ten times over, takes milliseconds here: the
workers wait on a ``ManualClock``, and "nothing happened before it was due" is checked
once the dispatcher has looked and gone back to sleep, not after a sleep of the test.
The inbox is a SQLite file in the test's directory (no server).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hookline.clock import ManualClock
from hookline.config import RetryPolicy
from hookline.receiver import Event, Receiver
from hookline.receiver.inbox import Inbox, open_inbox
from tests.support.eventually import eventually
from tests.support.receiver import KEY, signed_webhook, statuses

POLL = 1.0
LEASE = 30.0
KEEPER = LEASE / 10  # the lease keeper's renewal interval


def _receiver(tmp_path: Path, clock: ManualClock, **settings: object) -> Receiver:
    return Receiver(
        keys=[KEY],
        database=f"sqlite:///{tmp_path}/inbox.db",
        clock=clock,
        poll_interval=POLL,
        lease_seconds=LEASE,
        **settings,  # type: ignore[arg-type]
    )


async def _send(receiver: Receiver, **kwargs: object) -> None:
    headers, body = signed_webhook(**kwargs)  # type: ignore[arg-type]
    receipt = await receiver.receive(headers, body)
    assert receipt.status == 200, receipt.body


async def _looked(clock: ManualClock) -> None:
    """Until the dispatcher has claimed what was due and gone back to sleep."""
    await eventually(lambda: POLL in clock.pending(), message="the dispatcher asleep")


async def test_a_failing_webhook_is_retried_on_its_schedule_then_dead(tmp_path: Path) -> None:
    clock = ManualClock()
    receiver = _receiver(tmp_path, clock, retry=RetryPolicy(schedule=(0, 60, 3600), jitter=0))
    attempts: list[int] = []

    @receiver.on("order_completed")
    async def failing(event: Event) -> None:
        attempts.append(event.attempt)
        raise RuntimeError("payment service down")

    async with receiver.running():
        inbox = await receiver.open_inbox()
        await _send(receiver, event_id="evt_retried")
        await eventually(lambda: attempts == [1])
        await _recorded(inbox, 1)

        clock.advance(59)
        await _looked(clock)
        assert attempts == [1]  # a second early would be too soon
        clock.advance(1)
        await eventually(lambda: attempts == [1, 2])
        await _recorded(inbox, 2)

        clock.advance(3599)
        await _looked(clock)
        assert attempts == [1, 2]
        clock.advance(1)
        await eventually(lambda: attempts == [1, 2, 3])
        assert await eventually(lambda: _is(statuses(inbox), {"dead": 1}), message="a dead letter")
        clock.advance(86400)
        await _looked(clock)
    assert attempts == [1, 2, 3]


async def _recorded(inbox: Inbox, attempts: int) -> None:
    """Until the webhook's run number ``attempts`` is recorded and it waits for a retry."""

    async def recorded() -> bool:
        pending = await inbox.list_webhooks("pending", 10)
        return len(pending) == 1 and pending[0]["attempts"] == attempts

    await eventually(recorded, message=f"run {attempts} recorded")


async def _is(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_a_retry_holds_its_user_back_but_not_the_others(tmp_path: Path) -> None:
    clock = ManualClock()
    receiver = _receiver(tmp_path, clock, retry=RetryPolicy(schedule=(0, 600), jitter=0))
    order: list[str] = []

    @receiver.on("*")
    async def handle(event: Event) -> None:
        if event.event_id == "a1" and event.attempt == 1:
            raise RuntimeError("first run fails")
        order.append(event.event_id)

    base = int(time.time()) - 10  # signatures are checked against the real time
    async with receiver.running():
        await _send(receiver, user_id="a", event_id="a1", unix_ts=base)
        await _send(receiver, user_id="a", event_id="a2", unix_ts=base + 1)
        await _send(receiver, user_id="b", event_id="b1", unix_ts=base + 2)
        await eventually(lambda: order == ["b1"])
        clock.advance(599)
        await _looked(clock)
        assert order == ["b1"]  # a2 waits behind a1's retry
        clock.advance(1)
        await eventually(lambda: order == ["b1", "a1", "a2"])


async def test_a_handler_running_for_many_leases_keeps_its_lane(tmp_path: Path) -> None:
    """The keeper renews the lease every tenth of it, so another process never takes the
    user over while the handler runs, however long; its result is then recorded."""
    clock = ManualClock()
    receiver = _receiver(tmp_path, clock)
    release = asyncio.Event()
    runs: list[int] = []

    @receiver.on("*")
    async def long_running(event: Event) -> None:
        runs.append(event.attempt)
        await release.wait()

    other = open_inbox(f"sqlite:///{tmp_path}/inbox.db")
    await other.open()
    try:
        async with receiver.running():
            inbox = await receiver.open_inbox()
            await _send(receiver, user_id="u")
            await eventually(lambda: runs == [1])
            for _ in range(40):  # four leases
                clock.advance(KEEPER)
                # The keeper renewed (its write is in) and waits for its next turn.
                await eventually(lambda: KEEPER in clock.pending(), message="a renewal")
                assert await other.claim_lanes("other", 10, clock.now(), LEASE, []) == []
            release.set()
            assert await eventually(
                lambda: _is(statuses(inbox), {"done": 1}), message="the run recorded"
            )
    finally:
        await other.close()
    assert runs == [1]


async def test_a_lane_whose_lease_ran_out_is_taken_over(tmp_path: Path) -> None:
    """A lane left leased by a process that died is claimed by another once its lease has
    run out, not before: the interrupted webhook runs again."""
    clock = ManualClock()
    dead = open_inbox(f"sqlite:///{tmp_path}/inbox.db")
    await dead.open()
    receiver = _receiver(tmp_path, clock)
    runs: list[str] = []

    @receiver.on("*")
    async def handle(event: Event) -> None:
        runs.append(event.event_id)

    try:
        async with receiver.running(workers=False):
            await _send(receiver, user_id="u", event_id="evt_orphan")
        # A process claims the lane, then dies: its lease is never renewed.
        assert await dead.claim_lanes("dead-process", 10, clock.now(), LEASE, []) == ["u"]
        async with receiver.running():
            await _looked(clock)
            clock.advance(LEASE - 1)
            await _looked(clock)
            assert runs == []
            clock.advance(2)
            await eventually(lambda: runs == ["evt_orphan"])
    finally:
        await dead.close()
