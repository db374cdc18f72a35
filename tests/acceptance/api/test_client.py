"""hookline.Client and hookline.AsyncClient against a real ``hookline serve`` on loopback.

Every test runs with both clients (the ``api`` fixture): the tests are written once, as
coroutines; the blocking client's calls run in a thread (``Driven``), so that servers in
the test's own event loop (the faulty proxy) keep answering while it waits.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hookline import exceptions as exc
from hookline.client import AsyncClient, Client, Retries
from hookline.client import _operations as ops
from tests.support.eventually import eventually
from tests.support.faulty_proxy import FaultyProxy
from tests.support.hookline_proc import ADMIN_TOKEN, ServeProcess

#: Small waits, so that the retry tests take a moment; a long Retry-After is capped.
FAST = Retries(attempts=4, backoff=0.01, max_backoff=0.05)
CLIENTS = {"sync": Client, "async": AsyncClient}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One ``hookline serve`` for the module; each test makes apps of its own."""
    server = ServeProcess(
        tmp_path_factory.mktemp("client") / "sender.db",
        env={"HOOKLINE_RATE_TESTS": "3/hour", "HOOKLINE_RATE_AUTH_FAILURES": "1000/minute"},
    )
    asyncio.run(server.start())
    yield server
    asyncio.run(server.stop())


class Driven:
    """Either client (or one of its resources) as coroutines: a blocking call runs in a
    thread; a list comes back as a list of every item, read page by page."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return Driven(attr)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if inspect.iscoroutinefunction(attr):
                return await attr(*args, **kwargs)
            return await asyncio.to_thread(attr, *args, **kwargs)

        return call

    async def every(self, resource: str, *args: Any, **kwargs: Any) -> list[Any]:
        """All items of ``resource.list(...)``, through the client's own iterator."""
        paginator = getattr(self._target, resource).list(*args, **kwargs)
        if hasattr(paginator, "__aiter__"):
            return [item async for item in paginator]
        return await asyncio.to_thread(list, paginator)

    async def pages(self, resource: str, *args: Any, **kwargs: Any) -> list[Any]:
        paginator = getattr(self._target, resource).list(*args, **kwargs)
        if hasattr(paginator, "__aiter__"):
            return [page async for page in paginator.pages()]
        return await asyncio.to_thread(lambda: list(paginator.pages()))

    async def close(self) -> None:
        if isinstance(self._target, AsyncClient):
            await self._target.aclose()
        else:
            self._target.close()


@pytest.fixture(params=list(CLIENTS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _client(kind: str, base_url: str, token: str = ADMIN_TOKEN, **options: Any) -> Driven:
    return Driven(CLIENTS[kind](base_url, token, **{"retries": FAST, **options}))


@pytest.fixture
async def api(kind: str, serve: ServeProcess) -> AsyncIterator[Driven]:
    client = _client(kind, serve.base_url)
    yield client
    await client.close()


#: Loopback's discard port, where nothing listens: a free port picked now could be
#: another test's server by the time a delivery goes out.
NOWHERE = "http://127.0.0.1:9"


def _nowhere() -> str:
    """A loopback URL nothing listens on: deliveries to it fail at once."""
    return f"{NOWHERE}/webhooks"


def _methods(client_cls: type) -> dict[str, tuple[ops.Operation[Any, Any], str]]:
    """operationId -> (operation, "resource.method") for every method of the client."""
    found: dict[str, tuple[ops.Operation[Any, Any], str]] = {}
    probe = client_cls("http://127.0.0.1:9", "x")
    owners = {"": type(probe)} | {
        name: type(value) for name, value in vars(probe).items() if hasattr(value, "_send")
    }
    for prefix, owner in owners.items():
        for name, attr in vars(owner).items():
            op = getattr(attr, "op", None)
            if op is not None:
                found[op.__name__] = (op, f"{prefix}.{name}".lstrip("."))
    return found


def _answer_schemas(spec: dict[str, Any]) -> set[str]:
    """The components the operation's 2xx answers are, by name."""
    return {
        content["schema"]["$ref"].rsplit("/", 1)[-1]
        for status, answer in spec["responses"].items()
        if status.startswith("2")
        for content in (answer.get("content") or {}).values()
        if "$ref" in content.get("schema", {})
    }


# -- the whole API has methods -----------------------------------------------------------


async def test_every_operation_of_the_openapi_document_has_a_method(serve: ServeProcess) -> None:
    """Each operationId of the live document is a method of both clients (named after it
    in ``hookline.client._operations``), on the same method and route, reading its
    answer into the very component the document names; and the clients have no method
    for an operation the document lacks."""
    async with serve.api() as raw:
        document = (await raw.call("GET", "/openapi.json")).body
    operations = {
        spec["operationId"]: (method.upper(), path, _answer_schemas(spec))
        for path, item in document["paths"].items()
        for method, spec in item.items()
    }
    for client_cls in (Client, AsyncClient):
        methods = _methods(client_cls)
        assert sorted(methods) == sorted(operations), client_cls
        for op_id, (op, _) in methods.items():
            schemas = {op.schema.__name__} if op.schema else set()
            assert operations[op_id] == (op.method, op.template, schemas), op_id
    mapping = sorted((op_id, dotted) for op_id, (_, dotted) in _methods(Client).items())
    print("\n".join(f"{op_id:30} client.{dotted}" for op_id, dotted in mapping))


# -- every resource, through both clients ----------------------------------------------


async def test_apps_keys_and_installations(api: Driven, serve: ServeProcess, kind: str) -> None:
    app = await api.apps.create(f"shop-{kind}")
    assert app.api_key and app.verification_key and app.name == f"shop-{kind}"
    assert (await api.apps.get(app.id)).id == app.id
    assert (await api.apps.rename(app.id, "renamed")).name == "renamed"
    assert app.id in [a.id for a in await api.every("apps")]

    rotating = await api.apps.rotate_key(app.id, grace_seconds=60)
    assert rotating.next_verification_key and rotating.key_switch_at is not None
    with pytest.raises(exc.Conflict) as conflict:
        await api.apps.rotate_key(app.id)
    assert conflict.value.status == 409

    first = await api.installations.create(app.id, "store-1")
    again = await api.installations.create(app.id, "store-1")  # already installed: the same
    assert (first.user_id, first.created_at) == (again.user_id, again.created_at)
    await api.installations.create(app.id, "store-2")
    assert [i.user_id for i in await api.every("installations", app.id)] == [
        "store-1",
        "store-2",
    ]

    rotated = await api.apps.rotate_api_key(app.id)
    assert rotated.api_key != app.api_key
    old = _client(kind, serve.base_url, app.api_key)
    with pytest.raises(exc.Unauthorized) as refused:
        await old.apps.get(app.id)
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    await old.close()

    await api.apps.delete(app.id)
    with pytest.raises(exc.NotFound):
        await api.apps.get(app.id)


async def test_endpoints_tests_stats_and_recover(
    api: Driven, serve: ServeProcess, kind: str
) -> None:
    app = await api.apps.create(f"endpoints-{kind}")
    endpoint = await api.endpoints.create(
        app.id, _nowhere(), ["order_completed"], timeout=2, max_in_flight=4
    )
    assert (endpoint.event_types, endpoint.timeout, endpoint.max_in_flight) == (
        ["order_completed"],
        2.0,
        4,
    )
    assert (await api.endpoints.get(app.id, endpoint.id)).url == endpoint.url

    changed = await api.endpoints.update(
        app.id, endpoint.id, event_types=["*"], max_in_flight=None, enabled=True
    )
    assert (changed.event_types, changed.max_in_flight, changed.timeout) == (["*"], None, 2.0)

    delivery = await api.endpoints.send_test(app.id, endpoint.id, "product_created")
    assert (delivery.endpoint_id, delivery.event_type) == (endpoint.id, "product_created")

    async def failed() -> bool:
        nonlocal delivery
        delivery = await api.deliveries.get(app.id, delivery.id)
        return bool(delivery.status == "failed")

    await eventually(failed, message=lambda: f"the delivery to fail: {delivery}\n{serve.log()}")
    stats = await api.endpoints.stats(app.id, endpoint.id, window=3600)
    assert stats.attempts >= 1 and stats.endpoint_id == endpoint.id
    since = datetime.now(UTC) - timedelta(hours=1)
    assert (await api.endpoints.recover(app.id, endpoint.id, since)).recovered == 1

    await api.endpoints.delete(app.id, endpoint.id)
    with pytest.raises(exc.NotFound):
        await api.endpoints.get(app.id, endpoint.id)


async def test_events_deliveries_and_retry(api: Driven, kind: str) -> None:
    app = await api.apps.create(f"events-{kind}")
    user = f"store-{app.id}"  # users are shared by every app of the server: one of its own
    await api.installations.create(app.id, user)
    endpoint = await api.endpoints.create(app.id, _nowhere())

    event = await api.events.publish("order_completed", user, {"id": "o-1"})
    assert event.id.startswith("evt_") and event.deliveries == 1 and not event.duplicate
    again = await api.events.publish("order_completed", user, {"id": "o-1"}, event_id=event.id)
    assert again.duplicate and again.deliveries == 0
    with pytest.raises(exc.EventConflict) as conflict:
        await api.events.publish("order_completed", user, {"id": "o-2"}, event_id=event.id)
    assert (conflict.value.status, conflict.value.code) == (409, "event_conflict")
    assert isinstance(conflict.value, exc.Conflict)

    batch = await api.events.publish_batch(
        [
            {"event_type": "product_created", "user_id": user, "data": {"id": "p-1"}},
            {"event_type": "product_updated", "user_id": user, "data": {"id": "p-1"}},
        ]
    )
    assert [e.event_type for e in batch] == ["product_created", "product_updated"]
    detail = await api.events.get(event.id)
    assert (detail.data, detail.user_id) == ({"id": "o-1"}, user)

    deliveries: list[Any] = []

    async def all_failed() -> bool:
        nonlocal deliveries
        deliveries = await api.every("deliveries", app.id, endpoint_id=endpoint.id)
        return len(deliveries) == 3 and all(d.status == "failed" for d in deliveries)

    await eventually(all_failed, message=lambda: f"3 failed deliveries, have {deliveries}")
    failed = await api.every("deliveries", app.id, status="failed", event_type="order_completed")
    assert [d.event_id for d in failed] == [event.id]
    one = await api.deliveries.get(app.id, failed[0].id)
    assert one.attempts >= 1 and one.attempt_log
    retried = await api.deliveries.retry(app.id, one.id)
    assert (retried.id, retried.status, retried.token) == (one.id, "pending", one.token)


async def test_health_and_metrics(api: Driven) -> None:
    assert (await api.health()).status == "ok"
    assert "hookline_attempts_total" in await api.metrics()


# -- errors --------------------------------------------------------------------------------


async def test_each_error_answer_is_its_exception(
    api: Driven, serve: ServeProcess, kind: str
) -> None:
    mine = await api.apps.create(f"mine-{kind}")
    theirs = await api.apps.create(f"theirs-{kind}")
    their_endpoint = await api.endpoints.create(theirs.id, _nowhere())
    app_key = _client(kind, serve.base_url, mine.api_key)
    try:
        with pytest.raises(exc.Forbidden) as forbidden:  # another app's routes
            await app_key.endpoints.get(theirs.id, their_endpoint.id)
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
        with pytest.raises(exc.Forbidden):  # an admin route
            await app_key.events.publish("order_completed", "u", {})
        with pytest.raises(exc.NotFound) as missing:  # their endpoint under my app
            await app_key.endpoints.get(mine.id, their_endpoint.id)
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert [a.id for a in await app_key.every("apps")] == [mine.id]
    finally:
        await app_key.close()

    with pytest.raises(exc.ValidationError) as invalid:
        await api.events.publish("order_exploded", "u", {})
    assert invalid.value.status == 422 and "event_type" in invalid.value.message
    with pytest.raises(exc.ValidationError):
        await api.endpoints.create(mine.id, "ftp://example.invalid/x")
    with pytest.raises(exc.ValidationError):
        await api.deliveries.get(mine.id, 0)
    nobody = _client(kind, serve.base_url, "not-a-token")
    with pytest.raises(exc.Unauthorized):
        await nobody.apps.get(mine.id)
    await nobody.close()


async def test_a_rate_limit_is_rate_limited_with_retry_after(
    api: Driven, serve: ServeProcess, kind: str
) -> None:
    app = await api.apps.create(f"limited-{kind}")
    endpoint = await api.endpoints.create(app.id, _nowhere())
    app_key = _client(kind, serve.base_url, app.api_key)
    try:
        for _ in range(3):  # HOOKLINE_RATE_TESTS=3/hour
            await app_key.endpoints.send_test(app.id, endpoint.id, "order_completed")
        with pytest.raises(exc.RateLimited) as limited:
            await app_key.endpoints.send_test(app.id, endpoint.id, "order_completed")
    finally:
        await app_key.close()
    assert limited.value.status == 429 and limited.value.retry_after > 60
    assert "HOOKLINE_RATE_TESTS" in limited.value.message


# -- pages ---------------------------------------------------------------------------------


async def test_lists_go_through_every_page_lazily(api: Driven, kind: str) -> None:
    app = await api.apps.create(f"pages-{kind}")
    urls = [f"{_nowhere()}?n={i}" for i in range(7)]
    for url in urls:
        await api.endpoints.create(app.id, url, ["order_completed"])
    pages = await api.pages("endpoints", app.id, limit=3)
    assert [len(page.data) for page in pages] == [3, 3, 1]
    assert pages[-1].next_cursor is None
    assert [e.url for e in await api.every("endpoints", app.id, limit=3)] == urls
    for user in range(5):
        await api.installations.create(app.id, f"{app.id}-{user}")
    assert len(await api.every("installations", app.id, limit=2)) == 5
    for user in range(5):
        await api.events.publish("order_completed", f"{app.id}-{user}", {"id": user})
    deliveries = await api.every("deliveries", app.id, limit=4)
    assert len(deliveries) == 5 * 7 and len({d.id for d in deliveries}) == 35


# -- retries, timeouts ----------------------------------------------------------------------


async def test_a_503_is_retried_for_reads_and_publishes_never_for_creates(
    serve: ServeProcess, kind: str
) -> None:
    admin = _client(kind, serve.base_url)
    app = await admin.apps.create(f"retried-{kind}")
    user = f"store-{app.id}"
    await admin.installations.create(app.id, user)
    await admin.endpoints.create(app.id, _nowhere())
    await admin.close()
    async with FaultyProxy(serve.base_url, ["503", "503"]) as proxy:
        client = _client(kind, proxy.url)
        assert (await client.apps.get(app.id)).id == app.id
        assert proxy.requests("GET", f"/api/v1/apps/{app.id}") == ["503", "503", "forward"]

        proxy.script = ["503", "503"]
        event = await client.events.publish("order_completed", user, {"id": "o-1"})
        assert proxy.requests("POST", "/api/v1/events") == ["503", "503", "forward"]
        assert not event.duplicate and event.deliveries == 1

        proxy.script = ["503", "503"]
        with pytest.raises(exc.Unavailable) as unavailable:
            await client.apps.create("not retried")
        assert unavailable.value.status == 503 and unavailable.value.retry_after == 1
        assert proxy.requests("POST", "/api/v1/apps") == ["503"]

        proxy.script = ["503"] * 10
        with pytest.raises(exc.Unavailable):
            await client.apps.get(app.id)
        assert len(proxy.requests("GET", f"/api/v1/apps/{app.id}")) == 3 + FAST.attempts
        await client.close()


async def test_an_answer_lost_on_the_way_back_is_retried_once_only(
    serve: ServeProcess, kind: str
) -> None:
    """The server acted, the answer never came: the publish is sent again with the same
    event_id (published once, the retry says duplicate), the DELETE again finds nothing
    and counts as done."""
    admin = _client(kind, serve.base_url)
    app = await admin.apps.create(f"lost-{kind}")
    user = f"store-{app.id}"
    await admin.installations.create(app.id, user)
    endpoint = await admin.endpoints.create(app.id, _nowhere())
    async with FaultyProxy(serve.base_url, ["drop"]) as proxy:
        client = _client(kind, proxy.url)
        event = await client.events.publish("order_completed", user, {"id": "o-1"})
        assert proxy.requests("POST", "/api/v1/events") == ["drop", "forward"]
        assert event.duplicate  # the first try stored it
        rows = await admin.every("deliveries", app.id)
        assert [d.event_id for d in rows] == [event.id]

        proxy.script = ["drop"]
        await client.endpoints.delete(app.id, endpoint.id)
        assert proxy.requests("DELETE", f"/api/v1/apps/{app.id}/endpoints/{endpoint.id}") == [
            "drop",
            "forward",
        ]
        with pytest.raises(exc.NotFound):
            await admin.endpoints.get(app.id, endpoint.id)

        proxy.script = ["drop"]
        with pytest.raises(exc.Unavailable) as lost:
            await client.apps.create("created, answer lost")
        assert lost.value.sent and proxy.requests("POST", "/api/v1/apps") == ["drop"]
        await client.close()
    await admin.close()


async def test_a_refused_connection_is_retried_then_unavailable(kind: str) -> None:
    client = _client(kind, NOWHERE)
    with pytest.raises(exc.Unavailable) as refused:
        await client.apps.create("nowhere")  # never sent: safe to retry, even a create
    assert not refused.value.sent and refused.value.status is None
    assert "refused" in refused.value.message.lower()
    await client.close()


async def test_a_request_that_gets_no_answer_times_out(serve: ServeProcess, kind: str) -> None:
    async with FaultyProxy(serve.base_url, ["hang"] * 10) as proxy:
        client = _client(kind, proxy.url, timeout=0.5, retries=Retries(attempts=2, backoff=0))
        with pytest.raises(exc.Timeout) as timed_out:
            await client.health()
        assert isinstance(timed_out.value, exc.Unavailable) and "0.5 s" in timed_out.value.message
        assert proxy.requests("GET", "/healthz") == ["hang", "hang"]
        with pytest.raises(exc.Timeout):
            await client.apps.create("no answer")  # sent: not retried
        assert proxy.requests("POST", "/api/v1/apps") == ["hang"]
        await client.close()
