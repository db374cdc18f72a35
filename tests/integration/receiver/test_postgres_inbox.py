"""The PostgreSQL inbox stores a batch in a few statements and leaves no dead row versions
behind for webhooks whose user's lane is due already."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from hookline.events import parse_envelope
from hookline.receiver.inbox import Incoming, Outcome, open_inbox
from tests.support.receiver import signed_webhook

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
        assert await inbox.count_by_status() == {"pending": 2}
    finally:
        await inbox.close()
    assert outcomes.count(Outcome.ACCEPTED) == 2
    assert outcomes[3] is Outcome.ACCEPTED
