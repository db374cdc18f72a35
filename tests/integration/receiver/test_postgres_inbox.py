"""The PostgreSQL inbox stores a batch in a few statements and leaves no dead row versions
behind for webhooks whose user's lane is due already."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from hookline.events import parse_envelope
from hookline.receiver.inbox import Finish, Incoming, Outcome, Result, open_inbox
from tests.support.receiver import signed_webhook, statuses

pytestmark = pytest.mark.postgres


def incoming(user_id: str, *, token: str | None = None, data_id: str = "x") -> Incoming:
    _, body = signed_webhook(user_id=user_id, token=token, data={"id": data_id})
    return Incoming.from_envelope(parse_envelope(body), body)


async def test_a_due_lane_is_not_written_again(postgres_url: str) -> None:
    inbox = open_inbox(postgres_url)
    await inbox.open()
    try:
        assert await inbox.accept(incoming("u1"), time.time()) is Outcome.ACCEPTED
        conn = await asyncpg.connect(postgres_url)
        try:
            before = await conn.fetchval("SELECT xmin::text FROM inbox_lanes WHERE user_id = 'u1'")
            outcomes = await asyncio.gather(
                *(inbox.accept(incoming("u1"), time.time()) for _ in range(20))
            )
            assert set(outcomes) == {Outcome.ACCEPTED}
            after = await conn.fetchval("SELECT xmin::text FROM inbox_lanes WHERE user_id = 'u1'")
            options = await conn.fetchval(
                "SELECT reloptions FROM pg_class WHERE relname = 'inbox_lanes'"
            )
        finally:
            await conn.close()
    finally:
        await inbox.close()
    assert before == after  # the same row version: nothing for vacuum to clean
    assert "fillfactor=50" in options


async def test_one_batch_with_a_token_twice_stores_it_once(postgres_url: str) -> None:
    inbox = open_inbox(postgres_url)
    await inbox.open()
    try:
        first = incoming("u1", token="tok-1")
        same = incoming("u1", token="tok-1")
        altered = incoming("u1", token="tok-1", data_id="y")
        outcomes = await asyncio.gather(
            *(inbox.accept(one, time.time()) for one in (first, same, altered, incoming("u2")))
        )
        assert await statuses(inbox) == {"pending": 2}
    finally:
        await inbox.close()
    assert outcomes.count(Outcome.ACCEPTED) == 2
    assert outcomes[3] is Outcome.ACCEPTED


async def test_only_the_workers_bookkeeping_skips_the_wal_flush(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing a webhook waits for its WAL flush (acknowledged means on disk); leases and
    a run's result do not, so that they stop queueing for the flushes of everyone."""
    inbox = open_inbox(postgres_url)
    await inbox.open()
    seen: list[tuple[str, str]] = []
    try:
        async with inbox.pool.acquire() as conn:  # type: ignore[attr-defined]
            conn_class = type(conn)
        original = conn_class.execute
        current = {"op": ""}

        async def spy(self: object, query: str, *args: object, **kwargs: object) -> object:
            if "synchronous_commit" in query:
                seen.append((current["op"], query))
            return await original(self, query, *args, **kwargs)

        monkeypatch.setattr(conn_class, "execute", spy)
        current["op"] = "accept"
        assert await inbox.accept(incoming("u1"), time.time()) is Outcome.ACCEPTED
        current["op"] = "claim"
        assert await inbox.claim_lanes("me", 10, time.time(), 30) == ["u1"]
        head = await inbox.lane_head("u1")
        assert head is not None
        current["op"] = "finish"
        done = Finish(head.id, Result.DONE, time.time(), head.attempts)
        assert await inbox.finish("me", "u1", done) is None
        current["op"] = "release"
        await inbox.release_lane("me", "u1")
    finally:
        await inbox.close()
    assert {op for op, _ in seen} == {"claim", "finish", "release"}
