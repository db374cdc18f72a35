"""Bad input to the REST API: a clear 4xx ``{"error": {"code", "message"}}``, nothing stored.

The sender here runs with private targets *not* allowed, as in production. Each case is
checked against the row counts of every table, read straight from the SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tests.support.eventually import eventually
from tests.support.hookline_proc import Api, ServeProcess
from tests.support.recorder import Recorder

MIB = 1024 * 1024


@pytest.fixture
def serve_env() -> dict[str, str]:
    return {"HOOKLINE_ALLOW_PRIVATE_TARGETS": "0"}


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    code: str
    json: Any = None
    data: bytes | None = None
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    app: dict[str, Any]
    other: dict[str, Any]


@pytest.fixture
async def world(api: Api) -> AsyncIterator[World]:
    app = await api.create_app("shop")
    other = await api.create_app("other")
    await api.install(app["id"], "store-1")
    await api.create_endpoint(app["id"], "https://hooks.example.com/shop", ["order_completed"])
    yield World(app, other)


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_type": "order_completed", "user_id": "store-1", "data": {"id": 1}, **fields}


def _without(name: str) -> dict[str, Any]:
    event = _event()
    del event[name]
    return event


def _endpoint(url: str, **fields: Any) -> dict[str, Any]:
    return {"url": url, "event_types": ["*"], **fields}


def event_cases() -> list[Case]:
    big_data = {"blob": "x" * (256 * 1024)}
    huge = b'{"event_type": "order_completed", "user_id": "u", "data": {"x": "%s"}}' % (
        b"a" * (16 * MIB)
    )
    post = "/api/v1/events"
    return [
        Case("malformed json", "POST", post, 400, "malformed_json", data=b'{"event_type": '),
        Case("not json", "POST", post, 415, "unsupported_media_type", data=b"hello",
             headers={"Content-Type": "text/plain"}),
        Case("unknown type", "POST", post, 422, "invalid_request",
             json=_event(event_type="order_refunded")),
        Case("no event_type", "POST", post, 422, "invalid_request", json=_without("event_type")),
        Case("no user_id", "POST", post, 422, "invalid_request", json=_without("user_id")),
        Case("no data", "POST", post, 422, "invalid_request", json=_without("data")),
        Case("data not an object", "POST", post, 422, "invalid_request", json=_event(data=[1])),
        Case("unknown field", "POST", post, 422, "invalid_request", json=_event(colour="red")),
        Case("bad user_id", "POST", post, 422, "invalid_request", json=_event(user_id="a b")),
        Case("data over 256 KiB", "POST", post, 422, "invalid_request",
             json=_event(data=big_data)),
        Case("body over 16 MiB", "POST", post, 413, "body_too_large", data=huge),
        Case("empty batch", "POST", "/api/v1/events/batch", 422, "invalid_request",
             json={"events": []}),
        Case("one bad event spoils its batch", "POST", "/api/v1/events/batch", 422,
             "invalid_request",
             json={"events": [_event(event_id="good-1"), _event(event_type="nope")]}),
    ]  # fmt: skip


def endpoint_cases(app_id: str) -> list[Case]:
    path = f"/api/v1/apps/{app_id}/endpoints"
    bad_urls = [
        "ftp://hooks.example.com/x",
        "hooks.example.com/hook",
        "http://",
        "https:///path-only",
        "https://user:secret@hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://hooks.example.com:0/",
        "javascript:alert(1)",
    ]
    forbidden = [
        "http://127.0.0.1:9000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://localhost:8080/hook",
    ]
    return [
        *(Case(f"bad url {u}", "POST", path, 422, "invalid_request", json=_endpoint(u))
          for u in bad_urls),
        *(Case(f"forbidden {u}", "POST", path, 422, "forbidden_address", json=_endpoint(u))
          for u in forbidden),
        Case("unknown event type", "POST", path, 422, "invalid_request",
             json=_endpoint("https://hooks.example.com/", event_types=["order_refunded"])),
        Case("no event types", "POST", path, 422, "invalid_request",
             json=_endpoint("https://hooks.example.com/", event_types=[])),
        Case("wildcard and more", "POST", path, 422, "invalid_request",
             json=_endpoint("https://hooks.example.com/", event_types=["*", "order_completed"])),
        Case("zero timeout", "POST", path, 422, "invalid_request",
             json=_endpoint("https://hooks.example.com/", timeout=0)),
        Case("no url", "POST", path, 422, "invalid_request", json={"event_types": ["*"]}),
        Case("unknown app", "POST", "/api/v1/apps/app_nope/endpoints", 404, "not_found",
             json=_endpoint("https://hooks.example.com/")),
    ]  # fmt: skip


def auth_cases(world: World) -> list[Case]:
    own, other = world.app, world.other
    key = own["api_key"]
    endpoint = _endpoint("https://hooks.example.com/x")
    return [
        Case("no authorization", "POST", "/api/v1/apps", 401, "unauthorized",
             json={"name": "x"}, token=""),
        Case("not bearer", "POST", "/api/v1/apps", 401, "unauthorized", json={"name": "x"},
             token="", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}),
        Case("wrong token", "POST", "/api/v1/apps", 401, "unauthorized", json={"name": "x"},
             token="test-admin-token-not"),
        Case("wrong token on events", "POST", "/api/v1/events", 401, "unauthorized",
             json=_event(), token="hk_guessed"),
        Case("app key creates an app", "POST", "/api/v1/apps", 403, "forbidden",
             json={"name": "x"}, token=key),
        Case("app key publishes", "POST", "/api/v1/events", 403, "forbidden", json=_event(),
             token=key),
        Case("app key installs", "POST", f"/api/v1/apps/{own['id']}/installations", 403,
             "forbidden", json={"user_id": "store-9"}, token=key),
        Case("app key, other app's endpoints", "GET", f"/api/v1/apps/{other['id']}/endpoints",
             403, "forbidden", token=key),
        Case("app key adds to other app", "POST", f"/api/v1/apps/{other['id']}/endpoints",
             403, "forbidden", json=endpoint, token=key),
        Case("app key, other app's deliveries", "GET",
             f"/api/v1/apps/{other['id']}/deliveries", 403, "forbidden", token=key),
        Case("app key, other app", "GET", f"/api/v1/apps/{other['id']}", 403, "forbidden",
             token=key),
        Case("other app's key", "POST", f"/api/v1/apps/{own['id']}/endpoints", 403,
             "forbidden", json=endpoint, token=other["api_key"]),
    ]  # fmt: skip


def other_cases(app_id: str) -> list[Case]:
    return [
        Case("app without name", "POST", "/api/v1/apps", 422, "invalid_request", json={}),
        Case("app with empty name", "POST", "/api/v1/apps", 422, "invalid_request",
             json={"name": ""}),
        Case("install without user", "POST", f"/api/v1/apps/{app_id}/installations", 422,
             "invalid_request", json={}),
        Case("install into unknown app", "POST", "/api/v1/apps/app_nope/installations", 404,
             "not_found", json={"user_id": "store-2"}),
        Case("bad cursor", "GET", f"/api/v1/apps/{app_id}/deliveries?cursor=abc", 422,
             "invalid_request"),
    ]  # fmt: skip


async def _check(api: Api, serve: ServeProcess, cases: list[Case]) -> None:
    before = serve.counts()
    for case in cases:
        reply = await api.call(
            case.method,
            case.path,
            json=case.json,
            data=case.data,
            token=case.token,
            headers=case.headers,
        )
        assert reply.status == case.status, (case.name, reply)
        assert reply.error_code == case.code, (case.name, reply)
        assert isinstance(reply.body["error"]["message"], str), case.name
        assert reply.body["error"]["message"].strip(), case.name
        assert serve.counts() == before, f"{case.name} stored something"


async def test_bad_events_are_refused(api: Api, serve: ServeProcess, world: World) -> None:
    await _check(api, serve, event_cases())
    assert (await api.call("GET", "/api/v1/events/good-1")).status == 404


async def test_bad_endpoints_are_refused(api: Api, serve: ServeProcess, world: World) -> None:
    await _check(api, serve, endpoint_cases(world.app["id"]))


async def test_wrong_or_missing_keys_are_refused(
    api: Api, serve: ServeProcess, world: World
) -> None:
    await _check(api, serve, auth_cases(world))
    # The app's own key still works where it should.
    own = await api.call(
        "GET", f"/api/v1/apps/{world.app['id']}/endpoints", token=world.app["api_key"]
    )
    assert own.status == 200 and len(own.body["data"]) == 1


async def test_other_bad_requests_are_refused(api: Api, serve: ServeProcess, world: World) -> None:
    await _check(api, serve, other_cases(world.app["id"]))


async def test_a_body_over_the_limit_without_a_length_is_refused(
    api: Api, serve: ServeProcess, world: World
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"event_type": "order_completed", "user_id": "u", "data": {"x": "'
        for _ in range(17):
            yield b"a" * MIB
        yield b'"}}'

    before = serve.counts()
    reply = await api.call("POST", "/api/v1/events", data=chunks())  # type: ignore[arg-type]
    assert (reply.status, reply.error_code) == (413, "body_too_large")
    assert serve.counts() == before


@pytest.mark.parametrize("serve_env", [{"HOOKLINE_ALLOW_PRIVATE_TARGETS": "1"}])
async def test_the_same_event_id_publishes_once(
    api: Api, serve: ServeProcess, recorder: Recorder
) -> None:
    app = await api.create_app("shop")
    await api.install(app["id"], "store-1")
    await api.create_endpoint(app["id"], recorder.url("/hook"), ["*"])
    event = _event(event_id="evt-1", data={"id": 1, "total": "9.99"})

    first = await api.expect(202, "POST", "/api/v1/events", json=event)
    again = await api.expect(202, "POST", "/api/v1/events", json=event)
    assert (first["duplicate"], first["deliveries"]) == (False, 1)
    assert (again["duplicate"], again["deliveries"]) == (True, 0)
    assert again["id"] == first["id"] == "evt-1"
    # Key order does not make data different.
    reordered = {**event, "data": {"total": "9.99", "id": 1}}
    assert (await api.expect(202, "POST", "/api/v1/events", json=reordered))["duplicate"]
    await api.settled(app["id"], 1)
    counts = serve.counts()
    assert (counts["events"], counts["deliveries"]) == (1, 1)

    for changed in (
        {"data": {"id": 1, "total": "0.01"}},
        {"event_type": "order_payment_succeeded"},
        {"user_id": "store-2"},
    ):
        reply = await api.call("POST", "/api/v1/events", json={**event, **changed})
        assert (reply.status, reply.error_code) == (409, "event_conflict"), changed
        assert "evt-1" in reply.body["error"]["message"]
    batch = {"events": [_event(event_id="evt-2"), {**event, "data": {"id": 2}}]}
    reply = await api.call("POST", "/api/v1/events/batch", json=batch)
    assert (reply.status, reply.error_code) == (409, "event_conflict")
    assert serve.counts() == counts
    assert (await api.call("GET", "/api/v1/events/evt-2")).status == 404
    await eventually(lambda: len(recorder.hits("/hook")) == 1)
    assert [h.event_id for h in recorder.hits("/hook")] == ["evt-1"]


def test_payloads_are_what_the_cases_claim() -> None:
    """The size cases sit just past the documented limits, not somewhere far beyond."""
    data = {"blob": "x" * (256 * 1024)}
    assert 256 * 1024 < len(orjson.dumps(data)) < 256 * 1024 + 64
    huge = next(c for c in event_cases() if c.name == "body over 16 MiB")
    assert huge.data is not None and 16 * MIB < len(huge.data) < 16 * MIB + 1024
