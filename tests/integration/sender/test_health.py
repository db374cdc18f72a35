"""Endpoint health with tiny periods: an endpoint failing for too long is disabled with a
log line and a metric, probed, enabled again once it answers, and its backlog goes out
in order."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from hookline.config import EngineSettings, RetryPolicy
from hookline.metrics import SenderMetrics
from hookline.sender import Engine
from hookline.sender.health import PROBE_USER, HealthMonitor
from hookline.sender.transport import new_transport
from hookline.store import AttemptResult, Job, NewEvent, Store, records
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.recorder import Answer, Recorder, in_flight_peak

SETTINGS = EngineSettings(
    retry=RetryPolicy(schedule=(0, *([0.05] * 10_000)), jitter=0),
    allow_private_targets=True,
    poll_interval=0.02,
    lease_margin=1,
    disable_after=0.3,
    probe_interval=0.1,
    health_interval=0.05,
)


class Endpoint:
    """Answers ``status`` (changeable) and keeps every body it got."""

    def __init__(self) -> None:
        self.status = 500
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=self.status)

    def real(self) -> list[str]:
        return [b["data"]["n"] for b in self.bodies if b["user_id"] != PROBE_USER]


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    target = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield target, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec


async def test_a_failing_endpoint_is_disabled_probed_and_sends_its_backlog_in_order(
    database_url: str, endpoint: tuple[Endpoint, str], caplog: pytest.LogCaptureFixture
) -> None:
    target, url = endpoint
    store = await Store.open(database_url)
    metrics = SenderMetrics()
    engine = Engine(store, SETTINGS, observers=[metrics])
    try:
        app, _ = await store.create_app("shop")
        await store.install(app.id, "u1")
        ep = await store.create_endpoint(
            app.id, url=url, event_types=["order_completed"], timeout=2
        )
        await store.publish(
            [
                NewEvent(f"e{n}", "order_completed", "u1", json.dumps({"id": n, "n": str(n)}))
                for n in range(5)
            ]
        )
        caplog.set_level(logging.INFO, logger="hookline.health")
        await engine.start()

        async def disabled() -> bool:
            return not (await store.get_endpoint(ep.id)).enabled

        await eventually(disabled)
        row = await store.get_endpoint(ep.id)
        assert row.failing_since is not None and "failing for more than" in (
            row.disabled_reason or ""
        )
        assert metrics.endpoints_auto_disabled._value.get() == 1
        assert any("is disabled" in r.getMessage() for r in caplog.records)
        pending = await store.list_deliveries(app.id, status="pending")
        assert len(pending) == 5, "a disabled endpoint keeps its backlog"

        target.status = 200

        async def all_delivered() -> bool:
            rows = await store.list_deliveries(app.id, status="delivered")
            return len(rows) == 5

        await eventually(all_delivered)
        row = await store.get_endpoint(ep.id)
        assert row.enabled and row.failing_since is None and row.disabled_reason is None
        assert metrics.endpoints_reenabled._value.get() == 1
        assert any(b["user_id"] == PROBE_USER for b in target.bodies)
        # While failing, only the lane's head (0) was tried; then all five, in order.
        assert set(target.real()[:-5]) <= {"0"}
        assert target.real()[-5:] == ["0", "1", "2", "3", "4"]
    finally:
        await engine.stop()
        await store.close()


async def test_a_success_clears_failing_since_and_an_operator_disable_is_not_probed(
    database_url: str, endpoint: tuple[Endpoint, str]
) -> None:
    _, url = endpoint
    store = await Store.open(database_url)
    try:
        app, _ = await store.create_app("shop")
        ep = await store.create_endpoint(app.id, url=url, event_types=["*"], timeout=2)
        job = Job(
            1,
            "t",
            0,
            ep.id,
            "u1",
            "u1",
            app.id,
            "order_completed",
            "e",
            "{}",
            url,
            2.0,
            ("k",),
        )
        async with store.db.transaction() as tx:
            await store._track_endpoints(tx, [AttemptResult(job, "retry", 100.0)], 0.0)
        assert (await store.get_endpoint(ep.id)).failing_since == 100.0
        async with store.db.transaction() as tx:
            await store._track_endpoints(tx, [AttemptResult(job, "retry", 200.0)], 0.0)
        assert (await store.get_endpoint(ep.id)).failing_since == 100.0
        async with store.db.transaction() as tx:
            await store._track_endpoints(tx, [AttemptResult(job, "delivered", 300.0)], 0.0)
        assert (await store.get_endpoint(ep.id)).failing_since is None

        async with store.db.transaction() as tx:
            await store._track_endpoints(tx, [AttemptResult(job, "failed", 1.0)], 0.0)
        await store.update_endpoint(ep.id, enabled=False)
        row = await store.get_endpoint(ep.id)
        assert not row.enabled and row.failing_since is None
        assert await store.endpoints_to_probe() == []
        assert await store.disable_failing_endpoints(0) == []
    finally:
        await store.close()


# -- probes take turns, a few at a time, beside the checks ------------------------------


async def _disabled_for_failing(
    store: Store, endpoints: list[records.Endpoint], since: float
) -> None:
    results = [
        AttemptResult(
            Job(0, "t", 0, e.id, "u", "u", e.app_id, "order_completed", "e", "{}",
                e.url, 1.0, ("k",)),
            "failed",
            since,
        )
        for e in endpoints
    ]  # fmt: skip
    async with store.db.transaction() as tx:
        await store._track_endpoints(tx, results, 0.0)
    await store.disable_failing_endpoints(0)


async def test_every_disabled_endpoint_gets_its_probe_however_many_keep_failing(
    database_url: str, recorder: Recorder
) -> None:
    tarpit = recorder.script("/tarpit", then=Answer(hang=True))
    fixed = recorder.script("/fixed", then=Answer(200))
    # A probe's timeout must outlast a request's way to the recorder on a busy machine,
    # or probes end before they are counted there.
    settings = replace(SETTINGS, probe_timeout=1.0, probe_concurrency=8, probe_batch=30)
    store = await Store.open(database_url)
    transport = new_transport(allow_private=True)
    try:
        noisy, _ = await store.create_app("noisy")
        dead = [
            await store.create_endpoint(noisy.id, url=tarpit, event_types=["*"], timeout=30)
            for _ in range(40)
        ]
        await _disabled_for_failing(store, dead, since=100.0)
        quiet, _ = await store.create_app("quiet")
        mended = await store.create_endpoint(quiet.id, url=fixed, event_types=["*"], timeout=5)
        await _disabled_for_failing(store, [mended], since=200.0)  # disabled last

        monitor = HealthMonitor(store, settings, transport)
        rounds = []
        for _ in range(3):
            rounds.append(await monitor.probe())
            if (await store.get_endpoint(mended.id)).enabled:
                break
        print(f"\nprobe rounds until the mended endpoint was enabled: {len(rounds)}")
        # 41 disabled, 30 a round: the first round takes 30 of the dead ones, the
        # second the other 10, the mended one and the 19 probed longest ago.
        assert rounds == [[], [mended.id]]
        probes = recorder.hits("/tarpit")
        assert len(probes) == 59 and len({h.json["webhook_id"] for h in probes}) == 40
        assert in_flight_peak(probes) == settings.probe_concurrency
    finally:
        await transport.close()
        await store.close()


async def test_checks_do_not_wait_behind_probes_that_never_answer(
    database_url: str, recorder: Recorder, endpoint: tuple[Endpoint, str]
) -> None:
    tarpit = recorder.script("/tarpit", then=Answer(hang=True))
    _, url = endpoint
    settings = replace(SETTINGS, probe_timeout=60, probe_concurrency=2)
    store = await Store.open(database_url)
    engine = Engine(store, settings)
    try:
        app, _ = await store.create_app("shop")
        await store.install(app.id, "u1")
        dead = [
            await store.create_endpoint(app.id, url=tarpit, event_types=["*"], timeout=30)
            for _ in range(4)
        ]
        await _disabled_for_failing(store, dead, since=100.0)
        failing = await store.create_endpoint(app.id, url=url, event_types=["*"], timeout=2)
        await engine.start()
        await recorder.wait_for(lambda: len(recorder.open_hits("/tarpit")) == 2)
        await store.publish([NewEvent("e1", "order_completed", "u1", '{"id": 1, "n": "1"}')])
        engine.wake()

        async def disabled() -> bool:
            return not (await store.get_endpoint(failing.id)).enabled

        await eventually(disabled)
        # Disabled while both probes were still waiting for an answer.
        assert len(recorder.open_hits("/tarpit")) == 2 and len(recorder.hits("/tarpit")) == 2
    finally:
        await engine.stop()
        await store.close()
