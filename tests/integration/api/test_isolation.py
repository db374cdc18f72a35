"""An app's API key sees and changes only its own app.

Every /api/v1 route of the FastAPI app is called with another app's key, so a route
added later is covered without touching this test: with the victim's ids in the path
(403: not your app) and with the caller's own app id but the victim's resources (404:
as good as missing). Afterwards the victim's data is exactly what it was.
"""

from __future__ import annotations

import re
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from fastapi.routing import APIRoute

from hookline.server import create_server
from tests.support.api_server import ADMIN, running_api

#: A valid body for each request model, so a refusal is never a 422 in disguise.
BODIES: dict[str, Any] = {
    "AppIn": {"name": "intruder"},
    "AppPatch": {"name": "taken over"},
    "KeyRotationIn": {"grace_seconds": 1},
    "InstallationIn": {"user_id": "intruder-user"},
    "EndpointIn": {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
    "EndpointPatch": {"url": "http://127.0.0.1:9/stolen", "enabled": False},
    "RecoverIn": {"since": "2000-01-01T00:00:00Z"},
    "TestNotificationIn": {"event_type": "order_completed"},
    "EventIn": {"event_type": "order_completed", "user_id": "u1", "data": {"id": "x"}},
    "EventBatchIn": {
        "events": [{"event_type": "order_completed", "user_id": "u1", "data": {"id": "y"}}]
    },
}


def _flat(routes: list[Any]) -> Iterator[tuple[str, Any]]:
    """(full path, route) of every route, through included routers."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):  # FastAPI's lazily included routers
            for context in route.effective_route_contexts():
                yield context.path, context.original_route
        else:
            yield getattr(route, "path", ""), route


def _model(route: APIRoute) -> str | None:
    if route.body_field is None:
        return None
    annotation = route.body_field.field_info.annotation
    found = [a for a in (*typing.get_args(annotation), annotation) if isinstance(a, type)]
    return found[0].__name__


def api_routes() -> list[tuple[str, str, str | None]]:
    """(method, path template, body model name) of every /api/v1 route."""
    app = create_server(database_url="sqlite:///unused.db", admin_token=ADMIN, deliver=False)
    return [
        (method, path, _model(route))
        for path, route in _flat(app.routes)
        if isinstance(route, APIRoute) and path.startswith("/api/v1")
        for method in sorted(route.methods)
    ]


ROUTES = api_routes()


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method,
            self.base + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            text = await response.text()
            return response.status, text


@pytest.fixture
async def world(sqlite_url: str) -> AsyncIterator[dict[str, Any]]:
    async with running_api(sqlite_url, deliver=False) as base, aiohttp.ClientSession() as http:
        api = Api(http, base)

        async def admin(method: str, path: str, body: Any = None) -> Any:
            status, text = await api.call(method, path, ADMIN, body)
            assert status < 300, (method, path, status, text)
            return orjson.loads(text) if text else None

        victim = await admin("POST", "/api/v1/apps", {"name": "victim"})
        intruder = await admin("POST", "/api/v1/apps", {"name": "intruder"})
        await admin("POST", f"/api/v1/apps/{victim['id']}/installations", {"user_id": "u1"})
        endpoint = await admin(
            "POST",
            f"/api/v1/apps/{victim['id']}/endpoints",
            {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
        )
        event = await admin(
            "POST",
            "/api/v1/events",
            {"event_type": "order_completed", "user_id": "u1", "data": {"id": "o1"}},
        )
        deliveries = await admin("GET", f"/api/v1/apps/{victim['id']}/deliveries")
        yield {
            "api": api,
            "admin": admin,
            "victim": victim,
            "intruder": intruder,
            "ids": {
                "endpoint_id": endpoint["id"],
                "delivery_id": str(deliveries["data"][0]["id"]),
                "event_id": event["id"],
                "user_id": "u1",
            },
        }


async def snapshot(admin: Any, app_id: str) -> dict[str, Any]:
    return {
        part: await admin("GET", f"/api/v1/apps/{app_id}{part}")
        for part in ("", "/installations", "/endpoints", "/deliveries")
    }


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def test_every_route_refuses_another_apps_key(world: dict[str, Any]) -> None:
    api, victim, intruder = world["api"], world["victim"], world["intruder"]
    before = await snapshot(world["admin"], victim["id"])
    key = intruder["api_key"]
    checked = 0
    for method, path, model in ROUTES:
        assert model is None or model in BODIES, f"add a valid {model} body to BODIES"
        body = BODIES.get(model) if model else None
        params = set(re.findall(r"\{(\w+)\}", path))
        if not params:
            status, text = await api.call(method, path, key, body)
            if method == "GET":  # a listing: only the caller's own app in it
                assert status == 200 and victim["id"] not in text, (path, status, text)
            else:  # the admin's routes
                assert status == 403, (method, path, status, text)
            checked += 1
            continue
        victims = {**world["ids"], "app_id": victim["id"]}
        status, text = await api.call(method, fill(path, victims), key, body)
        assert status in (403, 404), (method, path, status, text)
        if "app_id" in params and len(params) > 1:
            own = {**victims, "app_id": intruder["id"]}
            status, text = await api.call(method, fill(path, own), key, body)
            assert status in (403, 404), (method, path, "own app id", status, text)
        checked += 1
    assert checked == len(ROUTES) > 15
    assert await snapshot(world["admin"], victim["id"]) == before
    status, _ = await api.call("GET", f"/api/v1/apps/{victim['id']}", victim["api_key"])
    assert status == 200, "the victim's own key still works"


async def test_an_apps_key_works_on_its_own_app(world: dict[str, Any]) -> None:
    api, victim = world["api"], world["victim"]
    key, app = victim["api_key"], f"/api/v1/apps/{victim['id']}"
    endpoint = f"{app}/endpoints/{world['ids']['endpoint_id']}"
    for method, path in (
        ("GET", app),
        ("GET", f"{app}/installations"),
        ("GET", f"{app}/deliveries"),
        ("GET", f"{app}/deliveries/{world['ids']['delivery_id']}"),
        ("GET", endpoint),
        ("GET", f"{endpoint}/stats"),
    ):
        status, text = await api.call(method, path, key)
        assert status == 200, (path, status, text)
    for method, path in (("DELETE", app), ("POST", "/api/v1/events")):
        status, _ = await api.call(method, path, key, BODIES["EventIn"])
        assert status == 403, (method, path)
