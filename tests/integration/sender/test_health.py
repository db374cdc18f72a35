"""Endpoint health with tiny periods: an endpoint failing for too long is disabled with a
log line and a metric, probed, enabled again once it answers, and its backlog goes out
in order."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from hookline.config import EngineSettings, RetryPolicy
from hookline.metrics import SenderMetrics
from hookline.sender import Engine
from hookline.sender.health import PROBE_USER
from hookline.store import AttemptResult, Job, NewEvent, Store
from tests.conftest import free_port

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


async def eventually(condition: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_failing_endpoint_is_disabled_probed_and_sends_its_backlog_in_order(
    database_url: str, endpoint: tuple[Endpoint, str], caplog: pytest.LogCaptureFixture
) -> None:
    target, url = endpoint
    store = await Store.open(database_url)
    metrics = SenderMetrics()
    engine = Engine(store, SETTINGS, observers=[metrics])
    try:
        app, _ = await store.create_app("shop")
        await store.install(app["id"], "u1")
        ep = await store.create_endpoint(
            app["id"], url=url, event_types=["order_completed"], timeout=2
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
            return not (await store.get_endpoint(ep["id"]))["enabled"]

        await eventually(disabled)
        row = await store.get_endpoint(ep["id"])
        assert row["failing_since"] is not None and "failing for more than" in (
            row["disabled_reason"] or ""
        )
        assert metrics.endpoints_auto_disabled._value.get() == 1
        assert any("is disabled" in r.getMessage() for r in caplog.records)
        pending = await store.list_deliveries(app["id"], status="pending")
        assert len(pending) == 5, "a disabled endpoint keeps its backlog"

        target.status = 200

        async def all_delivered() -> bool:
            rows = await store.list_deliveries(app["id"], status="delivered")
            return len(rows) == 5

        await eventually(all_delivered)
        row = await store.get_endpoint(ep["id"])
        assert row["enabled"] and row["failing_since"] is None and row["disabled_reason"] is None
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
        ep = await store.create_endpoint(app["id"], url=url, event_types=["*"], timeout=2)
        job = Job(
            1,
            "t",
            0,
            ep["id"],
            "u1",
            "u1",
            app["id"],
            "order_completed",
            "e",
            "{}",
            url,
            2.0,
            ("k",),
        )
        async with store.db.transaction() as tx:
            await store._track_health(tx, [AttemptResult(job, "retry", 100.0)])
        assert (await store.get_endpoint(ep["id"]))["failing_since"] == 100.0
        async with store.db.transaction() as tx:
            await store._track_health(tx, [AttemptResult(job, "retry", 200.0)])
        assert (await store.get_endpoint(ep["id"]))["failing_since"] == 100.0
        async with store.db.transaction() as tx:
            await store._track_health(tx, [AttemptResult(job, "delivered", 300.0)])
        assert (await store.get_endpoint(ep["id"]))["failing_since"] is None

        async with store.db.transaction() as tx:
            await store._track_health(tx, [AttemptResult(job, "failed", 1.0)])
        await store.update_endpoint(ep["id"], enabled=False)
        row = await store.get_endpoint(ep["id"])
        assert not row["enabled"] and row["failing_since"] is None
        assert await store.endpoints_to_probe() == []
        assert await store.disable_failing_endpoints(0) == []
    finally:
        await store.close()
