"""Publishing without FastAPI's routing (``hookline.api.publish_path``): the same
answer as the routes give, and every other publish request still answered by them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from tests.support.api_server import ADMIN, running_api

JSON = "application/json"
#: JSON to FastAPI's routes too, but not the type the publish path answers by itself.
OTHER_JSON = "application/vnd.example+json"


def _event(event_id: str) -> dict[str, Any]:
    return {
        "event_type": "order_completed",
        "user_id": "store-1",
        "event_id": event_id,
        "data": {"id": event_id, "total": 1.5},
    }


async def _setup(http: aiohttp.ClientSession, base: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with http.post(f"{base}/api/v1/apps", json={"name": "shop"}, headers=headers) as r:
        app = await r.json()
    await http.post(
        f"{base}/api/v1/apps/{app['id']}/installations",
        json={"user_id": "store-1"},
        headers=headers,
    )
    await http.post(
        f"{base}/api/v1/apps/{app['id']}/endpoints",
        json={"url": "https://example.com/hook", "event_types": ["*"]},
        headers=headers,
    )


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, content_type: str, token: str = ADMIN
) -> tuple[int, dict[str, str], Any]:
    import orjson

    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    async with http.post(url, data=orjson.dumps(body), headers=headers) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


def _without_moments(answer: Any) -> Any:
    if isinstance(answer, dict):
        return {k: _without_moments(v) for k, v in answer.items() if k not in ("id", "created_at")}
    if isinstance(answer, list):
        return [_without_moments(v) for v in answer]
    return answer


@pytest.fixture
async def served(sqlite_url: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with running_api(sqlite_url, deliver=False) as base, aiohttp.ClientSession() as http:
        await _setup(http, base)
        yield http, base


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/events", lambda n: _event(n)),
        ("/api/v1/events/batch", lambda n: {"events": [_event(n), _event(n + "-2")]}),
    ],
)
async def test_the_publish_path_answers_as_the_route_does(
    served: tuple[aiohttp.ClientSession, str], path: str, body: Any
) -> None:
    http, base = served
    fast = await _post(http, base + path, body("fast"), JSON)
    routed = await _post(http, base + path, body("routed"), OTHER_JSON)
    assert fast[0] == routed[0] == 202
    assert fast[1]["Content-Type"] == routed[1]["Content-Type"] == JSON
    assert _without_moments(fast[2]) == _without_moments(routed[2])
    # And again: a duplicate, answered the same way.
    again = await _post(http, base + path, body("fast"), JSON)
    assert _without_moments(again[2]) == _without_moments(
        (await _post(http, base + path, body("routed"), OTHER_JSON))[2]
    )


@pytest.mark.parametrize(
    ("body", "token", "status"),
    [
        (b"{not json", ADMIN, 400),
        ({"event_type": "nope", "user_id": "store-1", "data": {}}, ADMIN, 422),
        ({**_event("e"), "extra": 1}, ADMIN, 422),
        (_event("e"), "hk_not-a-key", 401),
    ],
)
async def test_what_the_publish_path_does_not_take_the_route_answers(
    served: tuple[aiohttp.ClientSession, str], body: Any, token: str, status: int
) -> None:
    http, base = served
    headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON}
    import orjson

    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(f"{base}/api/v1/events", data=data, headers=headers) as r:
        assert r.status == status
        assert "error" in await r.json()


def _without_publish_routes(app: FastAPI) -> None:
    app.router.routes[:] = [
        r
        for r in app.router.routes
        if not (
            isinstance(r, APIRoute) and r.path.startswith("/api/v1/events") and "POST" in r.methods
        )
    ]


async def test_a_well_formed_publish_never_reaches_the_routes(sqlite_url: str) -> None:
    async with (
        running_api(sqlite_url, deliver=False, change=_without_publish_routes) as base,
        aiohttp.ClientSession() as http,
    ):
        await _setup(http, base)
        status, _, answer = await _post(http, f"{base}/api/v1/events", _event("e1"), JSON)
        assert status == 202
        assert answer["deliveries"] == 1
        status, _, _ = await _post(http, f"{base}/api/v1/events", _event("e2"), OTHER_JSON)
        assert status in (404, 405)  # the route is gone: this one needed it
