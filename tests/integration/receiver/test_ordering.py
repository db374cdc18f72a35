"""Many users at once, duplicates mixed in: one handler at a time per user, in timestamp
order, every event handled exactly once (no crash here, so at-least-once is exactly once)."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import pytest

from hookline.receiver import Event, Receiver
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receiver import KEY, all_done, post, serving, signed_webhook

USERS = 200
EVENTS = 50


@pytest.mark.slow
async def test_users_in_parallel_each_in_order_each_event_once(database_url: str) -> None:
    receiver = Receiver(keys=[KEY], database=database_url, concurrency=64)
    runs: list[tuple[str, int, str, int]] = []  # (user, seq, phase, monotonic ns)

    @receiver.on("*")
    async def record(event: Event) -> None:
        runs.append((event.user_id, event.data["seq"], "start", time.monotonic_ns()))
        await asyncio.sleep(random.choice((0, 0, 0.001)))
        runs.append((event.user_id, event.data["seq"], "end", time.monotonic_ns()))

    base = int(time.time()) - 60
    requests = {
        (u, i): signed_webhook(
            user_id=f"user-{u}",
            event_id=f"evt-{u}-{i}",
            unix_ts=base + i,
            data={"id": f"{u}-{i}", "seq": i},
        )
        for u in range(USERS)
        for i in range(EVENTS)
    }

    async def send_user(session: aiohttp.ClientSession, url: str, u: int) -> int:
        """Send one user's events in order (as a sender does), with repeats mixed in."""
        rng = random.Random(u)
        duplicates = 0
        for i in range(EVENTS):
            if rng.random() < 0.1:  # the same request twice at the same moment
                answers = await asyncio.gather(
                    post(session, url, *requests[u, i]), post(session, url, *requests[u, i])
                )
                assert sorted(a[1]["status"] for a in answers) == ["accepted", "duplicate"]
                duplicates += 1
            else:
                assert await post(session, url, *requests[u, i]) == (200, {"status": "accepted"})
            if rng.random() < 0.2:  # an earlier one again, later
                again = await post(session, url, *requests[u, rng.randrange(i + 1)])
                assert again == (200, {"status": "duplicate"})
                duplicates += 1
        return duplicates

    async with serving(receiver, free_port()) as url:
        connector = aiohttp.TCPConnector(limit=128)
        async with aiohttp.ClientSession(connector=connector) as session:
            sent = await asyncio.gather(*(send_user(session, url, u) for u in range(USERS)))
        assert sum(sent) > USERS  # duplicates really were mixed in
        await eventually(lambda: len(runs) == 2 * USERS * EVENTS, timeout=240)
        await all_done(receiver, USERS * EVENTS)
    assert len(runs) == 2 * USERS * EVENTS

    by_user: dict[str, list[tuple[int, str, int]]] = {}
    for user, seq, phase, t in runs:
        by_user.setdefault(user, []).append((seq, phase, t))
    assert len(by_user) == USERS
    for user, records in by_user.items():
        records.sort(key=lambda r: r[2])
        # start, end, start, end, ...: never two of one user at once ...
        assert [r[1] for r in records] == ["start", "end"] * EVENTS, user
        # ... in timestamp order, each event once.
        assert [r[0] for r in records[::2]] == list(range(EVENTS)), user
    # Different users did run at the same time.
    assert _max_parallel(runs) > 1


def _max_parallel(runs: list[tuple[str, int, str, int]]) -> int:
    level = peak = 0
    for _, _, phase, _ in sorted(runs, key=lambda r: (r[3], r[2] == "start")):
        level += 1 if phase == "start" else -1
        peak = max(peak, level)
    return peak


async def test_a_user_is_handled_in_timestamp_order_whatever_the_arrival_order(
    database_url: str,
) -> None:
    receiver = Receiver(keys=[KEY], database=database_url)
    seen: list[int] = []
    receiver.on("*")(lambda event: seen.append(event.data["seq"]))
    base = int(time.time()) - 100
    shuffled = list(range(30))
    random.Random(7).shuffle(shuffled)
    async with receiver.running(workers=False):
        for i in shuffled:
            headers, body = signed_webhook(unix_ts=base + i * 2, data={"id": str(i), "seq": i})
            assert (await receiver.receive(headers, body)).status == 200
    async with receiver.running():
        await eventually(lambda: len(seen) == 30)
    assert seen == list(range(30))
