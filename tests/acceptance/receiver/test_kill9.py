"""kill -9 of the real ``hookline receive`` under load, then a restart: every acknowledged
webhook is handled, one user at a time, in order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.acceptance.receiver.checks import check_runs
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receive_process import ReceiveProcess, deliver
from tests.support.receiver import read_runs, signed_webhook

pytestmark = pytest.mark.slow

USERS = 50
EVENTS = 40


async def test_kill9_under_load_loses_no_acknowledged_webhook(
    tmp_path: Path, sqlite_url: str
) -> None:
    log = tmp_path / "runs.jsonl"
    log.touch()
    port = free_port()
    first = ReceiveProcess(sqlite_url, port, log).start()
    second: ReceiveProcess | None = None
    acknowledged: set[str] = set()
    base = int(time.time()) - 60

    async def send_user(session: aiohttp.ClientSession, u: int) -> None:
        for i in range(EVENTS):
            headers, body = signed_webhook(
                user_id=f"user-{u}",
                event_id=f"evt-{u}-{i}",
                unix_ts=base + i,
                data={"id": f"{u}-{i}", "seq": i},
            )
            await deliver(session, [first.url], headers, body)
            acknowledged.add(f"evt-{u}-{i}")

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            senders = asyncio.gather(*(send_user(session, u) for u in range(USERS)))
            await eventually(lambda: len(acknowledged) >= USERS * EVENTS // 3)
            first.kill9()
            at_kill = len(acknowledged)
            second = ReceiveProcess(sqlite_url, port, log).start()
            await senders
        assert at_kill < USERS * EVENTS  # the kill really happened under load
        await eventually(lambda: _completed(log) >= acknowledged, timeout=120)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    runs = read_runs(log)
    assert second is not None
    assert {run.pid for run in runs} == {first.pid, second.pid}
    check_runs(runs, acknowledged, killed={first.pid})


def _completed(log: Path) -> set[str]:
    return {run.event_id for run in read_runs(log) if run.end is not None}
