"""Two ``hookline receive`` processes sharing one PostgreSQL inbox, one of them killed -9
under load: still one handler at a time per user, in order, and each event handled once
(a second run only for what the killed process was running)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
import pytest

from tests.acceptance.receiver.checks import check_runs
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receive_process import ReceiveProcess, deliver
from tests.support.receiver import inbox_settled, read_runs, signed_webhook

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

USERS = 40
EVENTS = 30


async def test_two_processes_one_database_through_a_kill9(
    tmp_path: Path, postgres_url: str
) -> None:
    log = tmp_path / "runs.jsonl"
    log.touch()
    a = ReceiveProcess(postgres_url, free_port(), log).start()
    b = ReceiveProcess(postgres_url, free_port(), log).start()
    acknowledged: set[str] = set()
    statuses: dict[str, list[str]] = {}
    base = int(time.time()) - 60

    async def send_user(session: aiohttp.ClientSession, u: int) -> None:
        rng = random.Random(u)
        for i in range(EVENTS):
            request = signed_webhook(
                user_id=f"user-{u}",
                event_id=f"evt-{u}-{i}",
                unix_ts=base + i,
                data={"id": f"{u}-{i}", "seq": i},
            )
            answers = statuses.setdefault(f"evt-{u}-{i}", [])
            urls = [a.url, b.url]
            rng.shuffle(urls)
            if rng.random() < 0.2:  # the same webhook to both processes at once
                answers.extend(
                    await asyncio.gather(
                        deliver(session, urls, *request), deliver(session, urls[::-1], *request)
                    )
                )
            else:
                answers.append(await deliver(session, urls, *request))
            acknowledged.add(f"evt-{u}-{i}")

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            senders = asyncio.gather(*(send_user(session, u) for u in range(USERS)))
            await eventually(lambda: len(acknowledged) >= USERS * EVENTS // 3)
            a.kill9()
            await senders
        await eventually(lambda: _completed(log) >= acknowledged, timeout=120)
        # Every webhook done: nothing can be handled again.
        await eventually(lambda: inbox_settled(postgres_url, len(acknowledged)))
    finally:
        a.stop()
        b.stop()
    # Never accepted twice. (Accepted zero times is possible: the killed process stored
    # it but died before answering, and the sender's retry was told "duplicate".)
    assert all(answers.count("accepted") <= 1 for answers in statuses.values())
    assert sum(answers.count("duplicate") for answers in statuses.values()) > 0
    runs = read_runs(log)
    assert {run.pid for run in runs} == {a.pid, b.pid}  # both processes did work
    check_runs(runs, acknowledged, killed={a.pid})


def _completed(log: Path) -> set[str]:
    return {run.event_id for run in read_runs(log) if run.end is not None}
