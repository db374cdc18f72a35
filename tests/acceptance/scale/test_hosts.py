"""Workers on other hosts: two ``hookline worker`` processes in network namespaces of
their own (their own interfaces and addresses, on a bridge the test makes) and two on
this one share one PostgreSQL. One remote worker is killed with SIGKILL and the other
loses its network for a few seconds; nothing is lost, order and the cap hold, and both
remote hosts delivered (the sink sees their addresses)."""

from __future__ import annotations

import asyncio
from collections import Counter
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
from tests.acceptance.scale.conftest import privileged
from tests.acceptance.scale.netns import Lan
from tests.support.eventually import eventually
from tests.support.tcp_forwarder import Forwarder

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

USERS, PER_USER, CAP = 100, 100, 32


async def test_workers_on_two_other_hosts_share_the_work(tmp_path: Path, postgres_url: str) -> None:
    sudo = privileged()
    lan = Lan(sudo).up(hosts=2)
    procs: list[Proc] = []
    sink: Sink | None = None
    forwarder: Forwarder | None = None
    accepted: set[str] = set()
    answers: Counter[int] = Counter()
    try:
        # PostgreSQL listens on loopback only: the hosts reach it through the bridge.
        forwarder = await Forwarder(("127.0.0.1", 5432), host=lan.gateway).start()
        remote_db = postgres_url.replace("127.0.0.1:5432", f"{lan.gateway}:{forwarder.port}")
        sink = await Sink(hosts=("127.0.0.1", lan.gateway)).start()
        api, base = await start_api(postgres_url, tmp_path)
        procs.append(api)
        remote = [
            worker(f"host-{i}", remote_db, tmp_path, [*sudo, "ip", "netns", "exec", ns]).start()
            for i, ns in enumerate(lan.namespaces)
        ]
        local = [worker(f"local-{i}", postgres_url, tmp_path).start() for i in range(2)]
        procs += remote + local
        await make_app(base, USERS, sink.url(lan.gateway), cap=CAP)
        publishing = asyncio.create_task(
            publish_all(base, events(USERS, PER_USER), accepted, answers)
        )
        await eventually(lambda: sink.distinct() >= 2000, timeout=60, message=remote[0].log)
        remote[0].kill9()
        procs.append(remote[0].start())
        lan.link(1, "down")
        await asyncio.sleep(3)
        lan.link(1, "up")
        await publishing
        await eventually(
            lambda: sink.distinct() >= len(accepted),
            timeout=120,
            message=lambda: f"{sink.distinct()} of {len(accepted)}\n{remote[1].log()}",
        )
        await eventually(lambda: all_delivered(postgres_url, len(accepted)), message="all recorded")
    finally:
        await stop_all(procs)
        if sink is not None:
            await sink.stop()
        if forwarder is not None:
            await forwarder.cut()
        lan.down()
    verdict = judge(sink, accepted, USERS)
    senders = Counter(arrival.remote for arrival in sink.arrivals)
    print(f"arrivals by address: {dict(senders)}; duplicates: {verdict.duplicates}")
    assert len(accepted) == USERS * PER_USER
    assert verdict.lost == [] and verdict.out_of_order == [] and verdict.changed_tokens == []
    assert sink.max_per_user == 1 and sink.max_in_flight <= CAP
    assert verdict.duplicates <= 2 * CAP  # one kill, one unplugged cable
    assert senders[lan.address(0)] > 0 and senders[lan.address(1)] > 0  # both hosts
    assert senders[lan.gateway] > 0  # and the local workers
