"""Workers on each backend: retries, dead letters, replays, the once() guard, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from hookline.clock import ManualClock
from hookline.config import RetryPolicy
from hookline.events import parse_envelope
from hookline.receiver import Event, Receiver
from tests.support.eventually import eventually
from tests.support.receiver import KEY, all_done, signed_webhook, statuses

FAST_RETRY = RetryPolicy(schedule=(0, 0.05, 0.05), jitter=0)


async def _send(receiver: Receiver, **kwargs: object) -> None:
    headers, body = signed_webhook(**kwargs)  # type: ignore[arg-type]
    receipt = await receiver.receive(headers, body)
    assert receipt.status == 200, receipt.body


async def _one(rows: Awaitable[list[Any]]) -> list[Any] | None:
    """The rows, once there is exactly one."""
    found = await rows
    return found if len(found) == 1 else None


async def _equal(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


def _receiver(database_url: str, **settings: object) -> Receiver:
    return Receiver(keys=[KEY], database=database_url, poll_interval=0.02, **settings)  # type: ignore[arg-type]


async def test_a_failing_handler_is_retried_then_dead_lettered_then_replayed(
    database_url: str,
) -> None:
    receiver = _receiver(database_url, retry=FAST_RETRY)
    attempts: list[int] = []
    healthy = threading.Event()

    @receiver.on("order_completed")
    def flaky(event: Event) -> None:  # a sync handler: it runs in a worker thread
        attempts.append(event.attempt)
        if not healthy.is_set():
            raise RuntimeError("payment service down")

    async with receiver.running():
        inbox = await receiver.open_inbox()
        await _send(receiver, event_id="evt_dead")
        await eventually(lambda: len(attempts) == 3)
        dead = await eventually(lambda: _one(inbox.list_webhooks("dead", 10)))
        assert dead[0]["attempts"] == 3
        assert "payment service down" in dead[0]["last_error"]
        assert attempts == [1, 2, 3]

        healthy.set()
        assert await inbox.replay_dead(dead[0]["id"], time.time()) == [dead[0]["id"]]
        await eventually(lambda: len(attempts) == 4)
        assert await eventually(lambda: _equal(statuses(inbox), {"done": 1}))


async def test_a_retrying_webhook_holds_its_user_back_but_not_others(database_url: str) -> None:
    receiver = _receiver(database_url, retry=RetryPolicy(schedule=(0, 0.5), jitter=0))
    order: list[str] = []
    failed_once = False

    @receiver.on("*")
    async def handle(event: Event) -> None:
        nonlocal failed_once
        if event.event_id == "a1" and not failed_once:
            failed_once = True
            raise RuntimeError("first run fails")
        order.append(event.event_id)

    base = int(time.time()) - 10
    async with receiver.running():
        await _send(receiver, user_id="a", event_id="a1", unix_ts=base)
        await _send(receiver, user_id="a", event_id="a2", unix_ts=base + 1)
        await _send(receiver, user_id="b", event_id="b1", unix_ts=base + 2)
        await eventually(lambda: len(order) == 3)
    assert order.index("b1") < order.index("a1") < order.index("a2")


async def test_a_handler_that_crashes_half_way_runs_again_and_once_keeps_the_effect_single(
    database_url: str,
) -> None:
    """The seed's case: send one email, not two, though the handler runs twice."""
    receiver = _receiver(database_url, retry=FAST_RETRY)
    emails: list[str] = []
    runs: list[int] = []

    @receiver.on("order_completed")
    async def confirm(event: Event) -> None:
        runs.append(event.attempt)
        await event.once(f"confirmation-email:{event.data['id']}", emails.append, "to customer")
        if event.attempt == 1:
            raise RuntimeError("crash after the email went out, before the work was done")

    async with receiver.running():
        await _send(receiver, data={"id": "ord_9"})
        await eventually(lambda: len(runs) == 2)
        await all_done(receiver, 1)
    assert runs == [1, 2]  # at least once: the handler ran again ...
    assert emails == ["to customer"]  # ... and the guarded effect happened once


async def test_once_gives_the_key_back_when_the_effect_itself_fails(database_url: str) -> None:
    receiver = _receiver(database_url, retry=FAST_RETRY)
    tries: list[int] = []

    def send_email(attempt: int) -> None:
        tries.append(attempt)
        if attempt == 1:
            raise ConnectionError("mail server refused")

    @receiver.on("*")
    def handler(event: Event) -> None:
        event.once_sync("welcome-email", send_email, event.attempt)

    async with receiver.running():
        await _send(receiver)
        await eventually(lambda: tries == [1, 2])
        await all_done(receiver, 1)
    assert tries == [1, 2]


async def test_once_outside_a_worker_is_an_error() -> None:
    _headers, body = signed_webhook()
    event = Event.from_envelope(parse_envelope(body), attempt=1, inbox_id=1, guard=None)
    with pytest.raises(RuntimeError):
        await event.once("k", print)


async def test_shutdown_lets_a_running_handler_finish(database_url: str) -> None:
    receiver = _receiver(database_url)
    started = asyncio.Event()
    finished: list[str] = []

    @receiver.on("*")
    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(event.event_id)

    async with receiver.running():
        await _send(receiver, event_id="evt_slow")
        await started.wait()
    assert finished == ["evt_slow"]
    async with receiver.running(workers=False):
        inbox = await receiver.open_inbox()
        assert await statuses(inbox) == {"done": 1}


async def test_a_lane_whose_owner_died_is_taken_over_after_its_lease(database_url: str) -> None:
    """A process that stops renewing its leases (killed) loses its users to another, once
    the lease has run out (on a clock the test moves) and not before."""
    clock = ManualClock()
    poll, lease = 1.0, 30.0  # seconds a float holds exactly, for clock.pending()

    def receiver() -> Receiver:
        return Receiver(
            keys=[KEY], database=database_url, poll_interval=poll, lease_seconds=lease, clock=clock
        )

    crashed = receiver()
    async with crashed.running(workers=False):
        inbox = await crashed.open_inbox()
        await _send(crashed, user_id="u", event_id="evt_orphan")
        assert await inbox.claim_lanes("dead-process", 10, clock.now(), lease) == ["u"]
    survivor = receiver()
    handled: list[str] = []
    survivor.on("*")(lambda event: handled.append(event.event_id))
    async with survivor.running():
        await eventually(lambda: poll in clock.pending(), message="the dispatcher asleep")
        clock.advance(lease - 1)
        await eventually(lambda: poll in clock.pending(), message="the dispatcher asleep")
        assert handled == []
        clock.advance(2)
        await eventually(lambda: handled == ["evt_orphan"])


async def test_events_without_a_handler_are_marked_done(database_url: str) -> None:
    receiver = _receiver(database_url)
    receiver.on("product_created")(lambda event: None)
    async with receiver.running():
        inbox = await receiver.open_inbox()
        await _send(receiver, event_type="customer_deleted")
        assert await eventually(lambda: _equal(statuses(inbox), {"done": 1}))
