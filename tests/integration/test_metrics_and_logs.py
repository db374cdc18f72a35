"""/metrics exposes the queue and endpoint gauges; final failures log structured JSON."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookline.logs import configure
from hookline.metrics import SenderMetrics
from hookline.sender.engine import log_final
from hookline.store import AttemptResult, Job, NewEvent, Store
from tests.support.api_server import ADMIN, running_api


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _app_with_backlog(store: Store) -> str:
    app, _ = await store.create_app("shop")
    await store.install(app.id, "store-1")
    # A closed port: nothing will be delivered while the test looks at the queue.
    await store.create_endpoint(app.id, url="http://127.0.0.1:9/hook", event_types=["*"], timeout=1)
    events = [
        NewEvent(id=f"evt-{i}", event_type="order_completed", user_id="store-1", data="{}")
        for i in range(3)
    ]
    await store.publish(events)
    return str(app.id)


async def test_snapshot_counts_pending_and_endpoint_states(sqlite_url: str) -> None:
    store = await Store.open(sqlite_url)
    try:
        await _app_with_backlog(store)
        snapshot = await store.metrics_snapshot()
    finally:
        await store.close()
    assert snapshot["queue_depth"] == 3
    assert snapshot["endpoints_enabled"] == 1
    assert snapshot["endpoints_disabled"] == 0
    # The lane came due when the events were published, a moment ago.
    assert snapshot["oldest_due_at"] is not None
    assert snapshot["oldest_due_at"] <= time.time()


def test_render_turns_the_snapshot_into_gauges() -> None:
    metrics = SenderMetrics()
    snapshot = {
        "queue_depth": 7,
        "oldest_due_at": time.time() - 120,
        "endpoints_enabled": 4,
        "endpoints_disabled": 1,
    }
    samples = _samples(metrics.render(snapshot).decode())
    assert samples[("hookline_queue_depth", ())] == 7
    assert samples[("hookline_oldest_due_age_seconds", ())] >= 120
    assert samples[("hookline_endpoints", (("state", "enabled"),))] == 4
    assert samples[("hookline_endpoints", (("state", "disabled"),))] == 1


def test_nothing_due_reads_as_zero_age() -> None:
    snapshot = {
        "queue_depth": 0,
        "oldest_due_at": None,
        "endpoints_enabled": 0,
        "endpoints_disabled": 0,
    }
    samples = _samples(SenderMetrics().render(snapshot).decode())
    assert samples[("hookline_oldest_due_age_seconds", ())] == 0


async def test_metrics_route_serves_every_family(sqlite_url: str) -> None:
    store = await Store.open(sqlite_url)
    try:
        await _app_with_backlog(store)
    finally:
        await store.close()
    async with running_api(sqlite_url, deliver=False) as base, aiohttp.ClientSession() as http:
        event = {"event_type": "order_completed", "user_id": "u-metrics", "data": {"id": "o"}}
        for _ in range(2):  # the second is a duplicate and publishes nothing
            async with http.post(
                f"{base}/api/v1/events",
                json={**event, "event_id": "evt-metrics"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ) as response:
                assert response.status == 202
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    assert _samples(text)[("hookline_events_published_total", ())] == 1
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "hookline_attempts",
        "hookline_attempt_latency_seconds",
        "hookline_queue_depth",
        "hookline_oldest_due_age_seconds",
        "hookline_endpoints",
    } <= names
    assert _samples(text)[("hookline_queue_depth", ())] == 3


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    root = logging.getLogger("hookline")
    root.handlers.clear()
    root.propagate = True


def _job(attempts: int) -> Job:
    return Job(
        delivery_id=42, token="t", attempts=attempts, endpoint_id="ep_1", lane="store-1",
        user_id="store-1", app_id="app_1", event_type="order_completed", event_id="evt-1",
        data="{}", url="https://example.com/hook", timeout=10.0, keys=("k",),
    )  # fmt: skip


def test_a_final_failure_logs_one_json_line(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(json_logs=True)  # after capsys took stderr over, so the handler writes there
    log_final(AttemptResult(job=_job(7), outcome="failed", attempted_at=0.0, status_code=503,
                            error="answered 503"))  # fmt: skip
    (line,) = capsys.readouterr().err.splitlines()
    entry = orjson.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "hookline.engine"
    assert entry["event"] == "delivery_failed"
    assert entry["delivery_id"] == 42
    assert entry["attempts"] == 8
    assert entry["status_code"] == 503
    assert entry["endpoint_id"] == "ep_1"
    assert "failed after 8 attempt(s)" in entry["message"]


def test_a_disabled_endpoint_logs_its_own_event(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(json_logs=True)
    log_final(AttemptResult(job=_job(0), outcome="gone", attempted_at=0.0, status_code=410))
    entry = orjson.loads(capsys.readouterr().err.strip())
    assert entry["event"] == "endpoint_disabled"
    assert "410 Gone" in entry["message"]
