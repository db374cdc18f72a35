"""The PostgreSQL inbox translates driver errors by the store's table: a server shutting
down or full is unavailable for now (the sender is told to come back later), and no
asyncpg error reaches the receiver untranslated. No server needed: the pool fails."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from hookline.exceptions import StorageError, StorageUnavailable
from hookline.receiver.inbox.base import Finish, Incoming, Result
from hookline.receiver.inbox.postgres import PostgresInbox


class FailingPool:
    """A pool whose every connection fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def acquire(self) -> FailingPool:
        return self

    async def __aenter__(self) -> Any:
        raise self.error

    async def __aexit__(self, *_: object) -> None:
        return None


def _inbox(error: Exception) -> PostgresInbox:
    inbox = PostgresInbox("postgresql://nobody@127.0.0.1:1/none")
    inbox._pool = FailingPool(error)  # type: ignore[assignment]
    return inbox


CALLS = {
    "lane_head": lambda inbox: inbox.lane_head("u1"),
    "finish": lambda inbox: inbox.finish("w1", "u1", Finish(1, Result.DONE, 1.0, 0)),
    "release_lane": lambda inbox: inbox.release_lane("w1", "u1"),
    "purge_finished": lambda inbox: inbox.purge_finished(1.0),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize(
    "error",
    [
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.InterfaceError("connection is closed"),
    ],
    ids=type,
)
async def test_a_server_gone_for_now_is_unavailable(call: str, error: Exception) -> None:
    with pytest.raises(StorageUnavailable) as raised:
        await CALLS[call](_inbox(error))
    assert raised.value.__cause__ is error


@pytest.mark.parametrize("call", list(CALLS))
async def test_an_interface_error_is_a_storage_error(call: str) -> None:
    error = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    with pytest.raises(StorageError) as raised:
        await CALLS[call](_inbox(error))
    assert not isinstance(raised.value, StorageUnavailable)
    assert raised.value.__cause__ is error


async def test_webhooks_stored_together_all_hear_that_the_server_is_going() -> None:
    inbox = _inbox(asyncpg.AdminShutdownError("terminating connection"))
    incoming = [
        Incoming(f"t{n}", None, "hash", "u1", "order_completed", "2026-01-01", b"{}")
        for n in range(3)
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*(inbox.accept(i, 1.0) for i in incoming), return_exceptions=True), 30
    )
    assert all(isinstance(r, StorageUnavailable) for r in results), results
