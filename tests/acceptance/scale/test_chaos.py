"""The four-worker run again, with chaos: a random worker killed with SIGKILL every few
seconds (and started again), and PostgreSQL restarted once, while events are published.
Nothing accepted is lost; a delivery goes out twice only after a crash, and then with
the same token and event_id; each user's deliveries still arrive in order, one at a
time, within the endpoint's cap."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.acceptance.scale.cluster import (
    Proc,
    Sink,
    all_delivered,
    events,
    judge,
    make_app,
    publish_all,
    start_api,
    stop_all,
    worker,
)
from tests.support.eventually import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

USERS, PER_USER, CAP = 200, 250, 64


async def chaos(
    workers: list[Proc],
    database: str,
    log_dir: Path,
    restart_postgres: Callable[[], None],
    done: asyncio.Event,
) -> int:
    """Kill a random worker every 2-4 s and start a fresh one; restart PostgreSQL once."""
    rng = random.Random(7)
    kills = 0
    while not done.is_set():
        await asyncio.sleep(rng.uniform(1.5, 3.5))
        if done.is_set():
            break
        victim = rng.randrange(len(workers))
        workers[victim].kill9()
        kills += 1
        workers[victim] = worker(f"w{victim}-{kills}", database, log_dir).start()
        if kills == 1:
            await asyncio.to_thread(restart_postgres)
    return kills


async def test_kill9_of_workers_and_a_postgres_restart_lose_nothing(
    tmp_path: Path, postgres_url: str, restart_postgres: Callable[[], None]
) -> None:
    sink = await Sink().start()
    api, base = await start_api(postgres_url, tmp_path)
    workers = [worker(f"w{i}", postgres_url, tmp_path).start() for i in range(4)]
    accepted: set[str] = set()
    answers: Counter[int] = Counter()
    done = asyncio.Event()
    try:
        await make_app(base, USERS, sink.url(), cap=CAP)
        chaos_task = asyncio.create_task(
            chaos(workers, postgres_url, tmp_path, restart_postgres, done)
        )
        await publish_all(base, events(USERS, PER_USER), accepted, answers)
        await eventually(
            lambda: sink.distinct() >= len(accepted),
            timeout=150,
            message=lambda: f"{sink.distinct()} of {len(accepted)} arrived\n{workers[0].log()}",
        )
        done.set()
        kills = await chaos_task
        # All recorded as delivered: nothing can arrive again.
        await eventually(lambda: all_delivered(postgres_url, len(accepted)), message="all recorded")
    finally:
        done.set()
        await stop_all([*workers, api])
        await sink.stop()
    verdict = judge(sink, accepted, USERS)
    print(f"kills={kills} duplicates={verdict.duplicates} answers={dict(answers)}")
    assert kills >= 1  # the restart happened
    assert len(accepted) == USERS * PER_USER
    assert verdict.lost == []
    assert verdict.changed_tokens == []
    assert verdict.out_of_order == []
    assert sink.max_per_user == 1
    assert sink.max_in_flight <= CAP
    # Only what a killed worker had in flight can go out twice.
    assert verdict.duplicates <= kills * CAP
