"""An endpoint's own headers through the real ``hookline serve``: custom headers, basic
and bearer auth arrive at the endpoint, and their values are never shown back in full
(API answers, the process's log, the dashboard) nor stored in the clear."""

from __future__ import annotations

import base64
import re
import sqlite3
from typing import Any

import aiohttp
import pytest

from hookline.store.sealing import new_master_key
from tests.support.hookline_proc import Api, ServeProcess
from tests.support.recorder import Answer, Recorder

API_KEY = "live-key-7f3b9c2d8e1a4f60"
TOKEN = "bearer-Tq2YhZk3LmN8pR5s"
PASSWORD = "pa55-word-Hx9"
SECRETS = (API_KEY, TOKEN, PASSWORD)


@pytest.fixture
def serve_env() -> dict[str, str]:
    return {"HOOKLINE_MASTER_KEY": new_master_key()}


async def _dashboard_page(base_url: str, key: str, path: str) -> str:
    async with aiohttp.ClientSession(base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get("/login") as response:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
        assert csrf
        form = {"key": key, "csrf": csrf[1]}
        async with http.post("/login", data=form) as response:
            assert response.status == 200
        async with http.get(path) as response:
            assert response.status == 200
            return await response.text()


def _no_secret_in(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret header value in {where}"
    basic = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    assert basic not in text, f"the basic auth credentials in {where}"


async def test_headers_arrive_and_are_never_shown_back(
    serve: ServeProcess, api: Api, recorder: Recorder
) -> None:
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    answers: list[Any] = []
    keyed = await api.create_endpoint(
        app["id"],
        recorder.url("/keyed"),
        headers={"X-Api-Key": API_KEY, "X-Tenant": "north"},
        auth={"type": "bearer", "token": TOKEN},
    )
    answers.append(keyed)
    basic = await api.create_endpoint(
        app["id"],
        recorder.script("/basic", then=Answer(500)),
        auth={"type": "basic", "username": "ops", "password": PASSWORD},
    )
    answers.append(basic)
    assert keyed["headers"] == {
        "X-Api-Key": "••••4f60",
        "X-Tenant": "••••",
        "Authorization": "Bearer ••••pR5s",
    }
    assert basic["headers"] == {"Authorization": "Basic ••••"}

    await api.publish("order_completed", "store-1", {"id": 1})
    await recorder.wait_for(lambda: len(recorder.hits("/keyed")) == 1)
    sent = recorder.hits("/keyed")[0].headers
    assert sent["X-Api-Key"] == API_KEY
    assert sent["X-Tenant"] == "north"
    assert sent["Authorization"] == f"Bearer {TOKEN}"
    assert sent["Content-Type"] == "application/json"
    # The basic endpoint fails for good (three 500s): that gets logged, with its URL.
    await api.settled(app["id"], 2)
    first = recorder.hits("/basic")[0].headers["Authorization"]
    assert base64.b64decode(first.removeprefix("Basic ")) == f"ops:{PASSWORD}".encode()

    # A PATCH changes the headers it names only; null removes one.
    patched = await api.expect(
        200,
        "PATCH",
        f"/api/v1/apps/{app['id']}/endpoints/{keyed['id']}",
        json={"headers": {"x-tenant": "south", "X-Api-Key": None}},
    )
    answers.append(patched)
    assert patched["headers"] == {"Authorization": "Bearer ••••pR5s", "x-tenant": "••••"}
    await api.publish("order_completed", "store-1", {"id": 2})
    await recorder.wait_for(lambda: len(recorder.hits("/keyed")) == 2)
    sent = recorder.hits("/keyed")[1].headers
    assert sent["x-tenant"] == "south"
    assert "X-Api-Key" not in sent

    answers.append(await api.endpoints(app["id"]))
    answers.append(await api.deliveries(app["id"]))
    _no_secret_in(repr(answers), "an API answer")
    page = await _dashboard_page(serve.base_url, app["api_key"], f"/endpoints/{keyed['id']}")
    assert "Bearer ••••pR5s" in page
    _no_secret_in(page, "the dashboard")
    await serve.stop()
    assert "failed after 3 attempt(s)" in serve.log()
    _no_secret_in(serve.log(), "the log")
    with sqlite3.connect(serve.db_path) as db:
        stored = [row[0] for row in db.execute("SELECT headers FROM endpoints")]
    assert all(value.startswith("fernet:") for value in stored)
    _no_secret_in(repr(stored), "the database")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"headers": {"Content-Type": "text/plain"}}, "Content-Type header is set by hookline"),
        ({"headers": {"webhook-signature": "v1,x"}}, "webhook-signature header is set by"),
        ({"headers": {"Host": "example.com"}}, "Host header is set by hookline"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "x-a header is given twice"),
        ({"headers": {"X-Bad Name": "1"}}, "a header name has 1 to 64 characters"),
        ({"headers": {"X-A": f"{API_KEY}\r\nX-B: 1"}}, "the value of the X-A header"),
        ({"headers": {f"X-{i}": "1" for i in range(21)}}, "at most 20"),
        (
            {"headers": {"authorization": "Token x"}, "auth": {"type": "bearer", "token": TOKEN}},
            "give the Authorization header one way only",
        ),
        ({"auth": {"type": "bearer", "token": "not a token"}}, "a bearer token has"),
        ({"auth": {"type": "basic", "username": "a:b", "password": "x"}}, "no ':'"),
    ],
)
async def test_bad_headers_are_refused_and_nothing_is_stored(
    api: Api, body: dict[str, Any], message: str
) -> None:
    app = await api.create_app("shop")
    url = "http://127.0.0.1:9/hook"
    reply = await api.call(
        "POST",
        f"/api/v1/apps/{app['id']}/endpoints",
        json={"url": url, "event_types": ["*"], **body},
    )
    assert reply.status == 422, reply
    assert message in reply.body["error"]["message"]
    assert API_KEY not in repr(reply.body)
    assert await api.endpoints(app["id"]) == []

    endpoint = await api.create_endpoint(app["id"], url, headers={"X-Keep": "kept-value"})
    path = f"/api/v1/apps/{app['id']}/endpoints/{endpoint['id']}"
    reply = await api.call("PATCH", path, json=body)
    assert reply.status == 422, reply
    assert message in reply.body["error"]["message"]
    assert (await api.expect(200, "GET", path))["headers"] == {"X-Keep": "••••"}
