"""A lane (one row per user) lives only while its user has something pending: the rows of
users with nothing left are deleted, also when a webhook for that user arrives at the
moment its lane is given back, and on both backends."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import time
from typing import Any

import asyncpg

from hookline.receiver import Event, Receiver
from hookline.receiver.inbox import Inbox
from tests.support.eventually import eventually
from tests.support.receiver import KEY, all_done, signed_webhook


async def _sql(url: str, sql: str, *args: Any) -> list[Any]:
    """Run ``sql`` (with ``?`` parameters) on the inbox's database, outside the inbox."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(sql, args).fetchall()
    numbered = iter(range(1, len(args) + 1))
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(re.sub(r"\?", lambda _: f"${next(numbered)}", sql), *args))
    finally:
        await conn.close()


async def _lanes(url: str) -> int:
    return int((await _sql(url, "SELECT count(*) FROM inbox_lanes"))[0][0])


async def _eventually_no_lanes(url: str) -> None:
    async def none_left() -> bool:
        return await _lanes(url) == 0

    await eventually(none_left, message="no lanes left")


async def test_lanes_with_nothing_pending_are_deleted_and_made_again(database_url: str) -> None:
    receiver = Receiver(keys=[KEY], database=database_url, poll_interval=0.02)
    handled: list[str] = []
    receiver.on("*")(lambda event: handled.append(event.event_id))
    async with receiver.running():
        for u in range(20):
            assert (await receiver.receive(*signed_webhook(user_id=f"u{u}"))).status == 200
        await eventually(lambda: len(handled) == 20)
        await _eventually_no_lanes(database_url)
        assert (await receiver.receive(*signed_webhook(user_id="u3"))).status == 200
        await eventually(lambda: len(handled) == 21)
        await _eventually_no_lanes(database_url)


async def test_webhooks_arriving_while_their_lane_is_given_back_are_all_handled(
    database_url: str,
) -> None:
    """Each user's webhooks come one by one, just far enough apart that the lane is often
    empty, given back and deleted at the moment the next one is stored."""
    receiver = Receiver(keys=[KEY], database=database_url, poll_interval=0.02, concurrency=8)
    runs: dict[str, list[int]] = {}

    @receiver.on("*")
    async def record(event: Event) -> None:
        runs.setdefault(event.user_id, []).append(int(event.data["seq"]))

    users, events = 12, 25
    base = int(time.time()) - 60

    async def send(u: int) -> None:
        rng = random.Random(u)
        for i in range(events):
            request = signed_webhook(
                user_id=f"u{u}", event_id=f"e-{u}-{i}", unix_ts=base + i, data={"seq": i}
            )
            assert (await receiver.receive(*request)).status == 200
            await asyncio.sleep(rng.choice((0, 0.001, 0.003, 0.01)))

    async with receiver.running():
        await asyncio.gather(*(send(u) for u in range(users)))
        await eventually(lambda: sum(len(r) for r in runs.values()) == users * events, timeout=120)
        await _eventually_no_lanes(database_url)
        await all_done(receiver, users * events)
    assert runs == {f"u{u}": list(range(events)) for u in range(users)}


async def test_pruning_deletes_only_idle_lanes_with_nothing_pending(database_url: str) -> None:
    receiver = Receiver(keys=[KEY], database=database_url)
    async with receiver.running(workers=False):
        inbox: Inbox = await receiver.open_inbox()
        assert (await receiver.receive(*signed_webhook(user_id="pending"))).status == 200
        rows = [("idle", None, None), ("pending", None, None), ("held", "proc", None)]
        rows.append(("due", None, time.time()))
        for user_id, owner, due_at in rows:
            await _sql(database_url, "DELETE FROM inbox_lanes WHERE user_id = ?", user_id)
            await _sql(
                database_url,
                "INSERT INTO inbox_lanes (user_id, owner, due_at) VALUES (?, ?, ?)",
                user_id,
                owner,
                due_at,
            )
        assert await inbox.prune_lanes() == 1
        left = await _sql(database_url, "SELECT user_id FROM inbox_lanes ORDER BY user_id")
        assert [row[0] for row in left] == ["due", "held", "pending"]
