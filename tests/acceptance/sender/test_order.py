"""Per-user order, parallel users, and one dead endpoint that holds back nobody else."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from itertools import pairwise

from tests.support.hookline_proc import Api
from tests.support.recorder import Answer, Hit, Recorder, in_flight_peak

USERS = 50
EVENTS_PER_USER = 5


async def _publish_in_order(api: Api, user: str, count: int, first: int = 0) -> None:
    """One user's events, each published once the previous one was accepted."""
    for seq in range(first, first + count):
        await api.publish("product_updated", user, {"id": seq, "seq": seq}, f"{user}-{seq}")


def _by_user(hits: list[Hit]) -> dict[str, list[Hit]]:
    users: dict[str, list[Hit]] = defaultdict(list)
    for hit in sorted(hits, key=lambda h: h.started):
        users[hit.user_id].append(hit)
    return users


async def test_each_user_in_order_one_at_a_time_users_in_parallel(
    api: Api, recorder: Recorder
) -> None:
    # Each answer takes 30 ms, so an overlap would be seen if it happened.
    url = recorder.script("/hook", then=Answer(sleep=0.03))
    app = await api.create_app("shop")
    users = [f"user-{n:02d}" for n in range(USERS)]
    for user in users:
        await api.install(app["id"], user)
    await api.create_endpoint(app["id"], url, ["*"])

    await asyncio.gather(*(_publish_in_order(api, user, EVENTS_PER_USER) for user in users))
    total = USERS * EVENTS_PER_USER
    await recorder.wait_for(lambda: len([h for h in recorder.hits() if not h.open]) >= total)
    rows = await api.settled(app["id"], total)

    assert {r["status"] for r in rows} == {"delivered"}
    per_user = _by_user(recorder.hits())
    assert sorted(per_user) == users
    for user, hits in per_user.items():
        assert [h.json["data"]["seq"] for h in hits] == list(range(EVENTS_PER_USER)), user
        for before, after in pairwise(hits):
            assert before.ended is not None and before.ended <= after.started, user
    # Users do not wait for each other: several were in flight at the same moment.
    assert in_flight_peak(recorder.hits(), key=lambda h: h.user_id) > 1


async def test_a_dead_endpoint_holds_back_no_other(api: Api, recorder: Recorder) -> None:
    """An endpoint that never answers costs a healthy one next to it (almost) nothing.

    Both rounds do the same work: every event fans out to the healthy endpoint and to a
    second app's endpoint, which answers at once in the first round and never answers in
    the second. So the ratio printed compares "beside a working endpoint" with "beside a
    dead one", not one endpoint with two.

    Wall-clock ratios are printed, not asserted: this machine is shared and noisy. What is
    asserted is structural and timing-free: every delivery to the healthy endpoint
    completes while every attempt at the dead one is still hanging (so none of them waited
    for the dead endpoint's timeout), and the dead endpoint never holds more requests than
    its in-flight cap, so it cannot eat the engine's shared concurrency either.
    """
    users = [f"user-{n:02d}" for n in range(20)]
    per_user = 25
    cap = 4
    healthy_app, other_app = await api.create_app("healthy"), await api.create_app("other")
    for user in users:
        await api.install(healthy_app["id"], user)
        await api.install(other_app["id"], user)
    await api.create_endpoint(healthy_app["id"], recorder.url("/healthy"), ["*"])
    other = await api.create_endpoint(
        other_app["id"], recorder.url("/other"), ["*"], timeout=20, max_in_flight=cap
    )

    async def publish_round(first: int) -> float:
        target = len(recorder.hits("/healthy")) + len(users) * per_user
        started = time.monotonic()
        await asyncio.gather(*(_publish_in_order(api, u, per_user, first) for u in users))
        await recorder.wait_for(
            lambda: len([h for h in recorder.hits("/healthy") if h.status == 200]) >= target
        )
        return time.monotonic() - started

    beside_working = await publish_round(0)
    await recorder.wait_for(lambda: len(recorder.hits("/other")) >= len(users) * per_user)
    dead_url = recorder.script("/dead", then=Answer(hang=True))
    await api.expect(
        200,
        "PATCH",
        f"/api/v1/apps/{other_app['id']}/endpoints/{other['id']}",
        json={"url": dead_url},
    )
    beside_dead = await publish_round(per_user)

    dead = recorder.hits("/dead")
    print(
        f"healthy endpoint: {beside_working:.2f} s beside a working endpoint, "
        f"{beside_dead:.2f} s beside a dead one (ratio {beside_dead / beside_working:.2f}); "
        f"dead endpoint holds {len(dead)} request(s)"
    )
    healthy = await api.settled(healthy_app["id"], 2 * len(users) * per_user)
    assert {r["status"] for r in healthy} == {"delivered"}
    assert len(dead) == cap
    assert all(h.open for h in dead)
    assert in_flight_peak(dead) <= cap
