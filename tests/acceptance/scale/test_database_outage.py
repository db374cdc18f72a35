"""``hookline serve`` while its database is gone: 503 at once (not 500, not a hang), and
202 again when it is back; every event it accepted is delivered. The database is taken
away by cutting a forwarder, so the PostgreSQL other tests use keeps running."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.acceptance.scale.cluster import (
    ADMIN,
    Sink,
    events,
    judge,
    make_app,
    publish,
    start_api,
    stop_all,
    worker,
)
from tests.support.eventually import eventually
from tests.support.tcp_forwarder import Forwarder

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    forwarder = await Forwarder(("127.0.0.1", 5432)).start()
    try:
        yield forwarder
    finally:
        await forwarder.cut()


async def post_event(base: str, event: dict[str, object]) -> tuple[int, float]:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.post(
            f"{base}/api/v1/events", json=event, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as response,
    ):
        await response.read()
        return response.status, time.monotonic() - started


async def test_the_api_answers_503_while_the_database_is_gone_and_loses_nothing(
    tmp_path: Path, postgres_url: str, forwarder: Forwarder
) -> None:
    through = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}")
    sink = await Sink().start()
    api, base = await start_api(through, tmp_path)
    delivering = worker("w0", through, tmp_path).start()
    batch = events(20, 10)
    accepted: set[str] = set()
    answers: Counter[int] = Counter()
    try:
        await make_app(base, 20, sink.url(), cap=8)
        await publish(base, batch[:100], accepted, answers)
        await forwarder.cut()
        during = [await post_event(base, event) for event in batch[100:105]]
        await forwarder.start()
        await publish(base, batch[100:], accepted, answers)  # retried until taken
        await eventually(lambda: sink.distinct() >= len(batch), timeout=60, message=delivering.log)
    finally:
        await stop_all([delivering, api])
        await sink.stop()
    assert [status for status, _ in during] == [503] * 5
    assert all(seconds < 10 for _, seconds in during), during
    verdict = judge(sink, accepted, 20)
    assert len(accepted) == len(batch)
    assert verdict.lost == [] and verdict.out_of_order == []
