"""``hookline.AsyncClient``: the REST API from asyncio code, method for method the same
as ``hookline.Client`` (both are built from ``_operations``).

    async with hookline.AsyncClient("http://127.0.0.1:8080", token) as client:
        await client.events.publish("order_completed", "store-42", {"id": "o-1"})
        async for endpoint in client.endpoints.list(app_id):
            ...

The HTTP library is pyreqwest's async client, chosen by measurement (bench/client.py,
docs/benchmarks.md): publishing events with 32 in flight from one event loop into a
bare sink, pyreqwest 7,955/s, aiohttp 2,118/s, niquests 649/s, httpx 171/s; into
``hookline serve``, this client 1,128/s, aiohttp 934/s (a quieter run: pyreqwest
16,866/s and aiohttp 7,254/s into the sink).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, ParamSpec, Self, TypeVar, cast, overload

from pyreqwest.client import ClientBuilder
from pyreqwest.exceptions import PyreqwestError

from hookline.client import _operations as ops
from hookline.client._http import Answer, Call, Page, Retries, result, transport_error
from hookline.client._sync import _described, _headers
from hookline.exceptions import Unavailable

P = ParamSpec("P")
T = TypeVar("T")


class AsyncPaginator(Generic[T]):
    """Every item of a list, fetched a page at a time as the iteration reaches it
    (``async for``); ``pages()`` gives the pages themselves."""

    def __init__(
        self, fetch: Callable[[str | None], Awaitable[Page[T]]], cursor: str | None
    ) -> None:
        self._fetch = fetch
        self._cursor = cursor

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.data:
                yield item

    async def pages(self) -> AsyncIterator[Page[T]]:
        cursor = self._cursor
        while True:
            page = await self._fetch(cursor)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class _AsyncBound:
    _send: Callable[[Call[Any]], Awaitable[Any]]


class _Method(Generic[P, T]):
    def __init__(self, op: ops.Operation[P, T]) -> None:
        self.op = op
        self.name = op.__name__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: _AsyncBound, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(
        self, obj: _AsyncBound | None, owner: type[Any]
    ) -> Self | Callable[P, Awaitable[T]]:
        if obj is None:
            return self
        op, send = self.op, obj._send

        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            found: T = await send(op(*args, **kwargs))
            return found

        bound = _described(method, op, self.name)
        obj.__dict__[self.name] = bound
        return bound


class _Pages(Generic[P, T]):
    def __init__(self, op: ops.Operation[P, Page[T]]) -> None:
        self.op = op
        self.name = op.__name__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: _AsyncBound, owner: type[Any]) -> Callable[P, AsyncPaginator[T]]: ...
    def __get__(
        self, obj: _AsyncBound | None, owner: type[Any]
    ) -> Self | Callable[P, AsyncPaginator[T]]:
        if obj is None:
            return self
        op, send = cast(Callable[..., Call[Page[T]]], self.op), obj._send

        def method(*args: P.args, **kwargs: P.kwargs) -> AsyncPaginator[T]:
            async def fetch(cursor: str | None) -> Page[T]:
                page: Page[T] = await send(op(*args, **{**kwargs, "cursor": cursor}))
                return page

            return AsyncPaginator(fetch, cast(str | None, kwargs.get("cursor")))

        bound = _described(method, self.op, self.name)
        obj.__dict__[self.name] = bound
        return bound


class _Resource(_AsyncBound):
    def __init__(self, client: AsyncClient) -> None:
        self._send = client._send


class AsyncApps(_Resource):
    create = _Method(ops.create_app)
    list = _Pages(ops.list_apps)
    get = _Method(ops.get_app)
    update = _Method(ops.update_app)
    rename = _Method(ops.update_app)
    delete = _Method(ops.delete_app)
    rotate_key = _Method(ops.rotate_verification_key)
    rotate_api_key = _Method(ops.rotate_api_key)


class AsyncInstallations(_Resource):
    create = _Method(ops.create_installation)
    list = _Pages(ops.list_installations)


class AsyncEndpoints(_Resource):
    create = _Method(ops.create_endpoint)
    list = _Pages(ops.list_endpoints)
    get = _Method(ops.get_endpoint)
    update = _Method(ops.update_endpoint)
    delete = _Method(ops.delete_endpoint)
    rotate_key = _Method(ops.rotate_endpoint_key)
    recover = _Method(ops.recover_endpoint)
    send_test = _Method(ops.send_test_notification)
    stats = _Method(ops.get_endpoint_stats)


class AsyncEvents(_Resource):
    publish = _Method(ops.publish_event)
    publish_batch = _Method(ops.publish_events)
    get = _Method(ops.get_event)


class AsyncDeliveries(_Resource):
    list = _Pages(ops.list_deliveries)
    get = _Method(ops.get_delivery)
    retry = _Method(ops.retry_delivery)


class AsyncClient(_AsyncBound):
    """``hookline.Client`` for asyncio: the same resources and arguments, awaited; lists
    are ``async for``. Close it with ``await client.aclose()`` or ``async with``."""

    health = _Method(ops.get_health)
    metrics = _Method(ops.get_metrics)

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: Retries | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries or Retries()
        self._http = (
            ClientBuilder()
            .default_headers(_headers(token))
            .timeout(timedelta(seconds=timeout))
            .connect_timeout(timedelta(seconds=min(timeout, 10.0)))
            .max_connections(max_connections)
            .follow_redirects(False)
            .build()
        )
        self.apps = AsyncApps(self)
        self.installations = AsyncInstallations(self)
        self.endpoints = AsyncEndpoints(self)
        self.events = AsyncEvents(self)
        self.deliveries = AsyncDeliveries(self)

    async def _send(self, call: Call[T]) -> T:
        for attempt in itertools.count():
            try:
                return result(call, attempt, await self._exchange(call))
            except Unavailable as failure:
                if not self.retries.allows(call, failure, attempt):
                    raise
                await asyncio.sleep(self.retries.delay(attempt, failure.retry_after))
        raise AssertionError("unreachable")

    async def _exchange(self, call: Call[Any]) -> Answer:
        request = self._http.request(call.method, self.base_url + call.path)
        if call.query:
            request = request.query(dict(call.query))
        if call.body is not None:
            request = request.header("Content-Type", "application/json").body_bytes(call.body)
        try:
            response = await request.build().send()
            body = (await response.bytes()).to_bytes()
        except PyreqwestError as error:
            raise transport_error(error, call, self.timeout) from error
        return Answer(response.status, response.get_header("retry-after"), body)

    async def aclose(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
