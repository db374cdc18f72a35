"""``hookline serve`` killed or stopped mid-delivery loses nothing.

``hookline serve`` is an API process and a delivery process (its child): either may be
killed. The sender runs with ``HOOKLINE_LEASE_MARGIN=1`` and endpoints with a 2 s
timeout, so a lane claimed by a killed process is free again about three seconds after
the kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from typing import Any

import aiohttp
import pytest

from hookline.sender.processes import CRASH_LIMIT
from tests.support.eventually import eventually
from tests.support.hookline_proc import Api, ServeProcess, alive
from tests.support.recorder import Answer, Hit, Recorder

USERS = 20
EVENTS_PER_USER = 100


def _event(user: str, seq: int) -> dict[str, Any]:
    return {
        "event_type": "order_completed",
        "user_id": user,
        "event_id": f"{user}-{seq}",
        "data": {"id": seq, "seq": seq},
    }


async def _post(api: Api, path: str, body: dict[str, Any]) -> bool:
    try:
        reply = await api.call("POST", path, json=body)
    except (aiohttp.ClientError, TimeoutError):
        return False
    return reply.status == 202


async def _publish_until_it_fails(
    api: Api, user: str, accepted: dict[str, list[int]], first: int = 0, batch: int = 0
) -> None:
    """Publish one user's events in order (the first ``batch`` of them in one request);
    stop at the first request the sender did not take."""
    if batch:
        seqs = list(range(first, first + batch))
        if not await _post(
            api, "/api/v1/events/batch", {"events": [_event(user, n) for n in seqs]}
        ):
            return
        accepted[user].extend(seqs)
        first += batch
    for seq in range(first, EVENTS_PER_USER):
        if not await _post(api, "/api/v1/events", _event(user, seq)):
            return
        accepted[user].append(seq)


def _check_arrivals(hits: list[Hit]) -> int:
    """Every repeat is the same delivery again; each user's first arrivals are in order.

    Returns how many arrivals were repeats.
    """
    first: dict[str, Hit] = {}
    order: dict[str, list[int]] = defaultdict(list)
    repeats = 0
    for hit in sorted(hits, key=lambda h: h.started):
        seen = first.get(hit.event_id)
        if seen is not None:
            repeats += 1
            assert hit.json["token"] == seen.json["token"], hit.event_id
            assert hit.json["data"] == seen.json["data"]
            continue
        first[hit.event_id] = hit
        order[hit.user_id].append(hit.json["data"]["seq"])
    for user, seqs in order.items():
        assert seqs == sorted(seqs), f"{user} out of order: {seqs}"
    return repeats


@pytest.mark.slow
async def test_kill_9_during_heavy_delivery_loses_nothing(
    serve: ServeProcess, api: Api, recorder: Recorder
) -> None:
    url = recorder.script("/hook", then=Answer(sleep=0.002))
    app = await api.create_app("shop")
    users = [f"user-{n:02d}" for n in range(USERS)]
    for user in users:
        await api.install(app["id"], user)
    await api.create_endpoint(app["id"], url, ["*"], timeout=2)

    accepted: dict[str, list[int]] = defaultdict(list)
    # Half of each user's events in one batch, so a backlog builds up before the kill.
    publishing = asyncio.gather(
        *(_publish_until_it_fails(api, u, accepted, batch=EVENTS_PER_USER // 2) for u in users)
    )
    await recorder.wait_for(lambda: len(recorder.hits()) >= 300)
    delivering = serve.children()
    assert delivering
    serve.kill9()  # the API process
    await publishing
    # Its delivery process stops with it (it finishes and records what it was sending).
    await eventually(
        lambda: not any(alive(pid) for pid in delivering), timeout=60, message="no orphan"
    )
    at_kill = len(recorder.hits())
    taken = sum(len(seqs) for seqs in accepted.values())
    print(f"killed after {at_kill} arrivals, {taken} events accepted")
    assert at_kill < taken  # the kill came with accepted deliveries still to send

    await serve.start()
    async with serve.api() as api2:
        # A publisher that did not get its 202 publishes the same event again; the rest
        # of each user's events follow, so all 2,000 end up published.
        await asyncio.gather(
            *(_publish_until_it_fails(api2, u, accepted, first=len(accepted[u])) for u in users)
        )
        assert sum(len(s) for s in accepted.values()) == USERS * EVENTS_PER_USER
        rows = await api2.settled(app["id"], USERS * EVENTS_PER_USER, timeout=60)

    assert {r["status"] for r in rows} == {"delivered"}
    hits = recorder.hits()
    arrived = {h.event_id for h in hits if h.status == 200}
    assert arrived == {f"{u}-{seq}" for u in users for seq in accepted[u]}
    repeats = _check_arrivals(hits)
    print(f"{len(hits)} arrivals for {len(arrived)} events: {repeats} repeated after the kill")


def _live_children(serve: ServeProcess) -> list[int]:
    return [pid for pid in serve.children() if alive(pid)]


@pytest.mark.slow
async def test_kill_9_of_the_delivery_process_loses_nothing(
    serve: ServeProcess, api: Api, recorder: Recorder
) -> None:
    url = recorder.script("/hook", then=Answer(sleep=0.002))
    app = await api.create_app("shop")
    users = [f"user-{n:02d}" for n in range(USERS)]
    for user in users:
        await api.install(app["id"], user)
    await api.create_endpoint(app["id"], url, ["*"], timeout=2)
    await eventually(lambda: len(_live_children(serve)) == 1, message="a delivery process")
    (child,) = _live_children(serve)

    accepted: dict[str, list[int]] = defaultdict(list)
    publishing = asyncio.gather(
        *(_publish_until_it_fails(api, u, accepted, batch=EVENTS_PER_USER // 2) for u in users)
    )
    await recorder.wait_for(lambda: len(recorder.hits()) >= 300)
    os.kill(child, signal.SIGKILL)
    # The API process goes on taking events while no process delivers.
    await publishing
    assert sum(len(s) for s in accepted.values()) == USERS * EVENTS_PER_USER
    await eventually(
        lambda: bool(_live_children(serve)) and _live_children(serve) != [child],
        message=lambda: f"a new delivery process\n{serve.log()}",
    )
    rows = await api.settled(app["id"], USERS * EVENTS_PER_USER, timeout=90)

    assert {r["status"] for r in rows} == {"delivered"}
    hits = recorder.hits()
    assert {h.event_id for h in hits if h.status == 200} == {
        f"{u}-{seq}" for u in users for seq in range(EVENTS_PER_USER)
    }
    repeats = _check_arrivals(hits)
    print(f"{len(hits)} arrivals: {repeats} repeated after the kill")


async def test_a_delivery_process_that_keeps_dying_stops_serve_loudly(
    serve: ServeProcess,
) -> None:
    assert serve.proc is not None
    killed: set[int] = set()
    for _ in range(CRASH_LIMIT):
        await eventually(
            lambda: bool(set(_live_children(serve)) - killed),
            timeout=60,
            message=lambda: f"a new delivery process\n{serve.log()}",
        )
        (child,) = set(_live_children(serve)) - killed
        os.kill(child, signal.SIGKILL)
        killed.add(child)
    await eventually(lambda: serve.proc is not None and serve.proc.poll() is not None, timeout=60)
    assert serve.proc.returncode == 1, serve.log()
    assert "a delivery process kept failing" in serve.log()


async def _slow_endpoint(api: Api, recorder: Recorder, answer: Answer) -> dict[str, Any]:
    url = recorder.script("/slow", [answer], then=Answer(200))
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    await api.create_endpoint(app["id"], url, ["*"], timeout=30)
    await api.publish("order_completed", "store-1", {"id": 1}, event_id="evt-1")
    await recorder.wait_for(lambda: len(recorder.open_hits("/slow")) == 1)
    return app


async def test_sigint_waits_for_the_delivery_in_flight(
    serve: ServeProcess, api: Api, recorder: Recorder
) -> None:
    app = await _slow_endpoint(api, recorder, Answer(sleep=2))

    assert await serve.interrupt(signal.SIGINT) == 0, serve.log()
    assert recorder.hits("/slow")[0].status == 200

    await serve.start()
    async with serve.api() as api2:
        (delivery,) = await api2.settled(app["id"], 1)
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    assert len(recorder.hits("/slow")) == 1  # recorded before the exit: not sent again


@pytest.mark.slow
async def test_sigint_hands_back_a_delivery_that_does_not_finish(
    serve: ServeProcess, api: Api, recorder: Recorder
) -> None:
    # Longer than the engine's grace at shutdown: the send is abandoned, its lane handed
    # back, and the next process sends the same delivery again.
    app = await _slow_endpoint(api, recorder, Answer(hang=True))

    assert await serve.interrupt(signal.SIGINT) == 0, serve.log()
    await serve.start()
    async with serve.api() as api2:
        (delivery,) = await api2.settled(app["id"], 1)
    assert delivery["status"] == "delivered"
    first, again = recorder.hits("/slow")
    assert first.cancelled
    assert again.status == 200
    assert again.json["token"] == first.json["token"] == delivery["token"]
    assert again.event_id == first.event_id == "evt-1"
