"""Four ``hookline worker`` processes on one PostgreSQL: 50,000 deliveries over 200 users,
each delivered exactly once, every user's in event order and one at a time, and the
endpoint's in-flight cap held across all four."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.acceptance.scale.cluster import (
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


async def test_four_workers_deliver_each_event_once_in_order_within_the_cap(
    tmp_path: Path, postgres_url: str
) -> None:
    sink = await Sink().start()
    api, base = await start_api(postgres_url, tmp_path)
    workers = [worker(f"w{i}", postgres_url, tmp_path).start() for i in range(4)]
    accepted: set[str] = set()
    answers: Counter[int] = Counter()
    busy: list[float] = []
    try:
        await make_app(base, USERS, sink.url(), cap=CAP)
        await publish_all(base, events(USERS, PER_USER), accepted, answers)
        await eventually(
            lambda: sink.distinct() >= len(accepted),
            timeout=150,
            message=lambda: f"{sink.distinct()} of {len(accepted)} arrived\n{workers[0].log()}",
        )
        # All recorded as delivered: nothing can arrive again.
        await eventually(lambda: all_delivered(postgres_url, len(accepted)), message="all recorded")
        busy = [cpu_seconds(w.proc.pid) for w in workers if w.proc is not None]
    finally:
        await stop_all([*workers, api])
        await sink.stop()
    verdict = judge(sink, accepted, USERS)
    assert len(accepted) == USERS * PER_USER
    assert verdict.lost == []
    assert verdict.duplicates == 0
    assert verdict.out_of_order == []
    assert sink.max_per_user == 1
    assert 1 < sink.max_in_flight <= CAP
    assert all(seconds > 0.5 for seconds in busy), busy  # all four took part
