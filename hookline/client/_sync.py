"""``hookline.Client``: the REST API from ordinary (blocking) code.

    with hookline.Client("http://127.0.0.1:8080", token) as client:
        app = client.apps.create("Shop app")
        client.installations.create(app.id, "store-42")
        client.events.publish("order_completed", "store-42", {"id": "o-1"})
        for delivery in client.deliveries.list(app.id, status="failed"):
            client.deliveries.retry(app.id, delivery.id)

The HTTP library is pyreqwest's blocking client, chosen by measurement (bench/client.py,
docs/benchmarks.md): publishing events one after the other into a bare sink, pyreqwest
8,440/s, niquests 1,019/s, httpx 815/s, urllib3 769/s (29,511, 1,513, 2,670 and
2,512/s in a quieter run). Into ``hookline serve`` every sync client waits on the
server's latency, so there they are within 2x of each other.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Generic, ParamSpec, Self, TypeVar, cast, overload

from pyreqwest.client import SyncClientBuilder
from pyreqwest.exceptions import PyreqwestError

from hookline import __version__
from hookline.client import _operations as ops
from hookline.client._http import Answer, Call, Page, Retries, result, transport_error
from hookline.exceptions import Unavailable

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Paginator(Generic[T]):
    """Every item of a list, fetched a page at a time as the iteration reaches it.

    Nothing is fetched before the first item is asked for; iterate again to start over.
    ``pages()`` gives the pages themselves, with their ``next_cursor``."""

    def __init__(self, fetch: Callable[[str | None], Page[T]], cursor: str | None) -> None:
        self._fetch = fetch
        self._cursor = cursor

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.data

    def pages(self) -> Iterator[Page[T]]:
        cursor = self._cursor
        while True:
            page = self._fetch(cursor)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class _Bound:
    """A client, or one of its resources: something that sends calls."""

    _send: Callable[[Call[Any]], Any]


class _Method(Generic[P, T]):
    """An operation as a method: the builder's parameters, the answer's type."""

    def __init__(self, op: ops.Operation[P, T]) -> None:
        self.op = op
        self.name = op.__name__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: _Bound, owner: type[Any]) -> Callable[P, T]: ...
    def __get__(self, obj: _Bound | None, owner: type[Any]) -> Self | Callable[P, T]:
        if obj is None:
            return self
        op, send = self.op, obj._send

        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            found: T = send(op(*args, **kwargs))
            return found

        bound = _described(method, op, self.name)
        obj.__dict__[self.name] = bound  # bind once per instance
        return bound


class _Pages(Generic[P, T]):
    """A list operation as a method that returns a lazy ``Paginator`` of its items."""

    def __init__(self, op: ops.Operation[P, Page[T]]) -> None:
        self.op = op
        self.name = op.__name__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: _Bound, owner: type[Any]) -> Callable[P, Paginator[T]]: ...
    def __get__(self, obj: _Bound | None, owner: type[Any]) -> Self | Callable[P, Paginator[T]]:
        if obj is None:
            return self
        op, send = cast(Callable[..., Call[Page[T]]], self.op), obj._send

        def method(*args: P.args, **kwargs: P.kwargs) -> Paginator[T]:
            def fetch(cursor: str | None) -> Page[T]:
                page: Page[T] = send(op(*args, **{**kwargs, "cursor": cursor}))
                return page

            return Paginator(fetch, cast(str | None, kwargs.get("cursor")))

        bound = _described(method, self.op, self.name)
        obj.__dict__[self.name] = bound
        return bound


def _described(method: F, op: ops.Operation[Any, Any], name: str) -> F:
    functools.update_wrapper(method, op.build, assigned=("__module__", "__doc__"), updated=())
    method.__name__ = method.__qualname__ = name
    return method


class _Resource(_Bound):
    def __init__(self, client: Client) -> None:
        self._send = client._send


class Apps(_Resource):
    create = _Method(ops.create_app)
    list = _Pages(ops.list_apps)
    get = _Method(ops.get_app)
    update = _Method(ops.update_app)
    rename = _Method(ops.update_app)
    delete = _Method(ops.delete_app)
    rotate_key = _Method(ops.rotate_verification_key)
    rotate_api_key = _Method(ops.rotate_api_key)


class Installations(_Resource):
    create = _Method(ops.create_installation)
    list = _Pages(ops.list_installations)


class Endpoints(_Resource):
    create = _Method(ops.create_endpoint)
    list = _Pages(ops.list_endpoints)
    get = _Method(ops.get_endpoint)
    update = _Method(ops.update_endpoint)
    delete = _Method(ops.delete_endpoint)
    rotate_key = _Method(ops.rotate_endpoint_key)
    recover = _Method(ops.recover_endpoint)
    send_test = _Method(ops.send_test_notification)
    stats = _Method(ops.get_endpoint_stats)


class Events(_Resource):
    publish = _Method(ops.publish_event)
    publish_batch = _Method(ops.publish_events)
    get = _Method(ops.get_event)


class Deliveries(_Resource):
    list = _Pages(ops.list_deliveries)
    get = _Method(ops.get_delivery)
    retry = _Method(ops.retry_delivery)


class Client(_Bound):
    """hookline's REST API at ``base_url``, with the admin token or an app's API key.

    ``timeout``: seconds for one try of a request, answer included. ``retries``: how
    idempotent calls are sent again after a dropped connection, a timeout or a 503
    (``Retries()`` by default; ``Retries(attempts=1)`` never retries). Errors are the
    exceptions of ``hookline.exceptions``, each with the answer's ``status`` and ``code``.
    """

    health = _Method(ops.get_health)
    metrics = _Method(ops.get_metrics)

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: Retries | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries or Retries()
        self._http = (
            SyncClientBuilder()
            .default_headers(_headers(token))
            .timeout(timedelta(seconds=timeout))
            .connect_timeout(timedelta(seconds=min(timeout, 10.0)))
            .follow_redirects(False)
            .build()
        )
        self.apps = Apps(self)
        self.installations = Installations(self)
        self.endpoints = Endpoints(self)
        self.events = Events(self)
        self.deliveries = Deliveries(self)

    def _send(self, call: Call[T]) -> T:
        for attempt in itertools.count():
            try:
                return result(call, attempt, self._exchange(call))
            except Unavailable as failure:
                if not self.retries.allows(call, failure, attempt):
                    raise
                time.sleep(self.retries.delay(attempt, failure.retry_after))
        raise AssertionError("unreachable")

    def _exchange(self, call: Call[Any]) -> Answer:
        request = self._http.request(call.method, self.base_url + call.path)
        if call.query:
            request = request.query(dict(call.query))
        if call.body is not None:
            request = request.header("Content-Type", "application/json").body_bytes(call.body)
        try:
            response = request.build().send()
            body = response.bytes().to_bytes()
        except PyreqwestError as error:
            raise transport_error(error, call, self.timeout) from error
        return Answer(response.status, response.get_header("retry-after"), body)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "User-Agent": f"hookline-python/{__version__}",
    }
