"""The operator and app surface of the REST API over real HTTP, on SQLite and
PostgreSQL: app and endpoint changes, one delivery, retry, recover, test notification,
statistics, API-key rotation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hookline.config import EngineSettings, RetryPolicy
from tests.conftest import free_port
from tests.support.api_server import ADMIN, running_api
from tests.support.eventually import eventually

SETTINGS = EngineSettings(
    retry=RetryPolicy(schedule=(0,), jitter=0),  # one attempt, then failed
    allow_private_targets=True,
    poll_interval=0.02,
    lease_margin=1,
)


class Target:
    def __init__(self) -> None:
        self.status = 500
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=self.status)


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, str]]:
    found = Target()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield found, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str, token: str = ADMIN) -> None:
        self.http, self.base, self.token = http, base + "/api/v1", token

    async def __call__(
        self, method: str, path: str, status: int, body: Any = None, token: str | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.http.request(
            method, self.base + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            assert response.status == status, (method, path, response.status, text)
            return json.loads(text) if text else None


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Client]:
    async with (
        running_api(database_url, settings=SETTINGS) as base,
        aiohttp.ClientSession() as http,
    ):
        yield Client(http, base)


async def test_apps_are_renamed_rotated_and_deleted(api: Client) -> None:
    app = await api("POST", "/apps", 201, {"name": "one"})
    path = f"/apps/{app['id']}"
    assert (await api("PATCH", path, 200, {"name": "two"}))["name"] == "two"
    rotated = await api("POST", f"{path}/rotate-api-key", 200, token=app["api_key"])
    assert rotated["api_key"] != app["api_key"]
    await api("GET", path, 401, token=app["api_key"])
    await api("GET", path, 200, token=rotated["api_key"])
    await api("DELETE", path, 403, token=rotated["api_key"])
    await api("DELETE", path, 204)
    await api("GET", path, 404)
    await api("DELETE", path, 404)


async def test_endpoints_are_changed_and_deleted(api: Client) -> None:
    app = await api("POST", "/apps", 201, {"name": "one"})
    base = f"/apps/{app['id']}/endpoints"
    ep = await api("POST", base, 201, {"url": "http://127.0.0.1:9/a", "event_types": ["*"]})
    path = f"{base}/{ep['id']}"
    changed = await api(
        "PATCH",
        path,
        200,
        {"url": "http://127.0.0.1:9/b", "event_types": ["order_completed"], "timeout": 3,
         "ordered": False, "max_in_flight": 5},
    )  # fmt: skip
    assert (changed["url"], changed["event_types"], changed["timeout"]) == (
        "http://127.0.0.1:9/b", ["order_completed"], 3.0)  # fmt: skip
    assert (changed["ordered"], changed["max_in_flight"]) == (False, 5)
    off = await api("PATCH", path, 200, {"enabled": False})
    assert not off["enabled"] and off["disabled_reason"]
    on = await api("PATCH", path, 200, {"enabled": True, "max_in_flight": None})
    assert on["enabled"] and on["disabled_reason"] is None and on["max_in_flight"] is None
    await api("PATCH", path, 422, {"event_types": ["no_such_type"]})
    await api("DELETE", path, 204)
    await api("GET", path, 404)


async def test_failed_deliveries_are_retried_and_recovered_in_order(
    api: Client, target: tuple[Target, str]
) -> None:
    receiver, url = target
    app = await api("POST", "/apps", 201, {"name": "one"})
    await api("POST", f"/apps/{app['id']}/installations", 201, {"user_id": "u1"})
    ep = await api("POST", f"/apps/{app['id']}/endpoints", 201, {"url": url, "event_types": ["*"]})
    for n in range(4):
        await api(
            "POST", "/events", 202, {"event_type": "order_completed", "user_id": "u1",
                                     "data": {"id": str(n)}, "event_id": f"e{n}"},
        )  # fmt: skip
    listing = f"/apps/{app['id']}/deliveries"

    async def failed() -> Any:
        page = await api("GET", f"{listing}?status=failed", 200)
        return page["data"] if len(page["data"]) == 4 else None

    rows = sorted(await eventually(failed), key=lambda row: row["id"])  # oldest first
    one = await api("GET", f"{listing}/{rows[0]['id']}", 200)
    assert one["attempt_log"][0]["status_code"] == 500 and one["status"] == "failed"

    receiver.status = 200
    retried = await api("POST", f"{listing}/{rows[-1]['id']}/retry", 202)
    assert retried["id"] == rows[-1]["id"]

    async def delivered(n: int) -> bool:
        page = await api("GET", f"{listing}?status=delivered", 200)
        return len(page["data"]) == n

    await eventually(lambda: delivered(1))
    await api("POST", f"{listing}/{rows[-1]['id']}/retry", 202)  # a replay of a delivered one
    await eventually(lambda: delivered(1))
    before = len(receiver.bodies)
    since = "2000-01-01T00:00:00Z"
    recovered = await api("POST", f"/apps/{app['id']}/endpoints/{ep['id']}/recover", 202,
                          {"since": since})  # fmt: skip
    assert recovered == {"recovered": 3}
    await eventually(lambda: delivered(4))
    sent = [b["event_id"] for b in receiver.bodies[before:] if b["event_id"] != "e3"]
    assert sent == ["e0", "e1", "e2"], "recovered in order, with their own event_ids"
    tokens = {b["event_id"]: b["token"] for b in receiver.bodies[:4]}
    assert all(tokens[b["event_id"]] == b["token"] for b in receiver.bodies)
    again = await api("POST", f"/apps/{app['id']}/endpoints/{ep['id']}/recover", 202,
                      {"since": since})  # fmt: skip
    assert again == {"recovered": 0}
    pending = await api("POST", "/events", 202, {"event_type": "order_completed",
                                                 "user_id": "u1", "data": {}})  # fmt: skip
    assert pending["deliveries"] == 1

    stats = await api("GET", f"/apps/{app['id']}/endpoints/{ep['id']}/stats?window=3600", 200)
    assert stats["attempts"] >= 8 and 0 < stats["success_rate"] < 1
    assert stats["outcomes"]["failed"] == 4
    assert stats["latency_ms"]["p50"] <= stats["latency_ms"]["p90"] <= stats["latency_ms"]["p99"]

    window = await api("GET", f"{listing}?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z",
                       200)  # fmt: skip
    assert window["data"] == []


async def test_a_test_notification_goes_through_the_pipeline(
    api: Client, target: tuple[Target, str]
) -> None:
    receiver, url = target
    receiver.status = 200
    app = await api("POST", "/apps", 201, {"name": "one"})
    ep = await api(
        "POST",
        f"/apps/{app['id']}/endpoints",
        201,
        {"url": url, "event_types": ["product_created"]},
    )
    delivery = await api(
        "POST",
        f"/apps/{app['id']}/endpoints/{ep['id']}/test",
        202,
        {"event_type": "order_completed"},
        token=app["api_key"],
    )
    assert delivery["endpoint_id"] == ep["id"] and delivery["event_type"] == "order_completed"

    async def done() -> Any:
        row = await api("GET", f"/apps/{app['id']}/deliveries/{delivery['id']}", 200)
        return row if row["status"] == "delivered" else None

    await eventually(done)
    (body,) = receiver.bodies
    assert body["event_type"] == "order_completed" and body["data"]["reference_id"]
    assert body["token"] == delivery["token"]


async def test_endpoint_limits_are_clear_4xx_answers(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKLINE_MAX_ENDPOINTS_PER_APP", "2")
    monkeypatch.setenv("HOOKLINE_MAX_TIMEOUT", "20")
    async with (
        running_api(database_url, settings=SETTINGS) as base,
        aiohttp.ClientSession() as http,
    ):
        api = Client(http, base)
        app = await api("POST", "/apps", 201, {"name": "one"})
        path = f"/apps/{app['id']}/endpoints"
        endpoint = {"url": "http://127.0.0.1:9/a", "event_types": ["*"]}
        too_slow = await api("POST", path, 422, endpoint | {"timeout": 25})
        assert "HOOKLINE_MAX_TIMEOUT" in too_slow["error"]["message"]
        first = await api("POST", path, 201, endpoint, token=app["api_key"])
        await api("POST", path, 201, endpoint, token=app["api_key"])
        full = await api("POST", path, 409, endpoint, token=app["api_key"])
        assert full["error"]["code"] == "limit_reached"
        assert "delete one" in full["error"]["message"]
        await api("PATCH", f"{path}/{first['id']}", 422, {"timeout": 21})
        assert len((await api("GET", path, 200))["data"]) == 2


async def test_a_publish_making_too_many_deliveries_is_a_413_and_stores_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKLINE_MAX_DELIVERIES_PER_PUBLISH", "3")
    async with (
        running_api(database_url, settings=SETTINGS, deliver=False) as base,
        aiohttp.ClientSession() as http,
    ):
        api = Client(http, base)
        app = await api("POST", "/apps", 201, {"name": "one"})
        await api("POST", f"/apps/{app['id']}/installations", 201, {"user_id": "u1"})
        for path in ("a", "b"):
            endpoint = {"url": f"http://127.0.0.1:9/{path}", "event_types": ["*"]}
            await api("POST", f"/apps/{app['id']}/endpoints", 201, endpoint)
        event = {"event_type": "order_completed", "user_id": "u1", "data": {"id": 1}}
        batch = {"events": [event | {"event_id": "e1"}, event | {"event_id": "e2"}]}
        refused = await api("POST", "/events/batch", 413, batch)
        assert refused["error"]["code"] == "too_large"
        assert "4 deliveries" in refused["error"]["message"]
        assert "HOOKLINE_MAX_DELIVERIES_PER_PUBLISH" in refused["error"]["message"]
        await api("GET", "/events/e1", 404)
        published = await api("POST", "/events", 202, event | {"event_id": "e1"})
        assert published["deliveries"] == 2


async def test_an_operator_url_is_set_changed_and_removed_and_hears_of_failures(
    api: Client, target: tuple[Target, str]
) -> None:
    sink, url = target
    sink.status = 200
    app = await api("POST", "/apps", 201, {"name": "one", "operator_url": url})
    assert app["operator_url"] == url
    path = f"/apps/{app['id']}"
    await api("POST", f"{path}/installations", 201, {"user_id": "u1"})
    dead = await api(
        "POST", f"{path}/endpoints", 201, {"url": "http://127.0.0.1:9/dead", "event_types": ["*"]}
    )
    listed = (await api("GET", f"{path}/endpoints", 200))["data"]
    (ops,) = [e for e in listed if e["operational"]]
    assert ops["url"] == url and "delivery.failed" in ops["event_types"]
    assert [e["id"] for e in listed if not e["operational"]] == [dead["id"]]

    await api("POST", "/events", 202, {"event_type": "order_completed", "user_id": "u1",
                                       "data": {"id": "o1"}})  # fmt: skip
    await eventually(lambda: sink.bodies)
    (body,) = sink.bodies
    assert (body["event_type"], body["user_id"]) == ("delivery.failed", dead["id"])
    assert body["webhook_id"] == ops["id"] and body["data"]["endpoint_id"] == dead["id"]

    async def sent() -> Any:
        found = await api("GET", f"{path}/deliveries?event_type=delivery.failed", 200)
        return [d for d in found["data"] if d["status"] == "delivered"]

    (delivery,) = await eventually(sent)
    assert delivery["endpoint_id"] == ops["id"] and delivery["event_id"] == body["event_id"]
    event = await api("GET", f"/events/{body['event_id']}", 200)
    assert event["event_type"] == "delivery.failed"

    # Publishers cannot send hookline's own types; its endpoint changes only through the app.
    await api("POST", "/events", 422, {"event_type": "endpoint.disabled", "user_id": "u1",
                                       "data": {"id": "x"}})  # fmt: skip
    await api("PATCH", f"{path}/endpoints/{ops['id']}", 422, {"url": "http://127.0.0.1:9/x"})
    await api("DELETE", f"{path}/endpoints/{ops['id']}", 409)
    timed = await api("PATCH", f"{path}/endpoints/{ops['id']}", 200, {"timeout": 3})
    assert timed["operational"] and timed["timeout"] == 3

    await api("PATCH", path, 422, {"operator_url": "ftp://127.0.0.1/x"})
    moved = await api("PATCH", path, 200, {"operator_url": url + "/2"}, token=app["api_key"])
    assert moved["operator_url"] == url + "/2" and moved["name"] == "one"
    (same,) = [e for e in (await api("GET", f"{path}/endpoints", 200))["data"] if e["operational"]]
    assert same["id"] == ops["id"] and same["url"] == url + "/2"
    renamed = await api("PATCH", path, 200, {"name": "two"})
    assert renamed["operator_url"] == url + "/2"
    cleared = await api("PATCH", path, 200, {"operator_url": None})
    assert cleared["operator_url"] is None and cleared["name"] == "two"
    assert [e["id"] for e in (await api("GET", f"{path}/endpoints", 200))["data"]] == [dead["id"]]
