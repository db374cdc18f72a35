"""Every operation of the REST API, once: its route, what it sends, how its answer reads.

``Client`` and ``AsyncClient`` are both built from these (each resource method is one of
them, bound to the client's way of sending), so the two cannot drift apart, and a test
checks the routes here against ``/openapi.json``. The answers are the API's own
response models (``hookline.api.schemas``), so the types are the document's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar
from urllib.parse import quote

import orjson
from pydantic import BaseModel

from hookline.api import schemas as s
from hookline.client._http import Call, Page

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class NotGiven:
    """Leave the field as it is (``None`` is a value for some fields)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


@dataclass(frozen=True, slots=True)
class Parts:
    """What an operation's builder says; ``Operation`` makes the ``Call`` of it."""

    path: Mapping[str, str | int] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None


class Operation(Generic[P, T]):
    """A route of the API (``method``, ``template``) and a builder of its calls."""

    def __init__(
        self,
        method: str,
        template: str,
        parse: Callable[[bytes], T],
        build: Callable[P, Parts],
        idempotent: bool | None,
    ) -> None:
        self.method = method
        self.template = template
        self.parse = parse
        #: The response model the answer follows, where it is JSON of one.
        self.schema: type[BaseModel] | None = getattr(parse, "schema", None)
        self.build = build
        # Safe to send twice: by HTTP's rules for GET, PUT and DELETE; PATCH here too
        # (every API patch sets fields to values); a POST only when its builder says.
        self.idempotent = method in ("GET", "PUT", "DELETE", "PATCH") or bool(idempotent)
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Call[T]:
        parts = self.build(*args, **kwargs)
        path = self.template.format(**{k: quote(str(v), safe="") for k, v in parts.path.items()})
        query = {k: _query_value(v) for k, v in parts.query.items() if _given(v)}
        body = None if parts.body is None else orjson.dumps(_fields(parts.body))
        return Call(self.method, path, self.parse, self.idempotent, query, body)


def operation(
    method: str, template: str, parse: Callable[[bytes], T], *, idempotent: bool | None = None
) -> Callable[[Callable[P, Parts]], Operation[P, T]]:
    def wrap(build: Callable[P, Parts]) -> Operation[P, T]:
        return Operation(method, template, parse, build, idempotent)

    return wrap


def _given(value: Any) -> bool:
    return value is not None and not isinstance(value, NotGiven)


def _fields(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not isinstance(v, NotGiven)}


def _query_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Reader(Generic[T]):
    """Reads an answer's body into the result: ``schema`` is the API's response model it
    follows (a component of ``/openapi.json``), which a test checks against the document."""

    def __init__(self, read: Callable[[bytes], T], schema: type[BaseModel]) -> None:
        self.read = read
        self.schema = schema

    def __call__(self, body: bytes) -> T:
        return self.read(body)


def _model(cls: type[M]) -> Reader[M]:
    return Reader(cls.model_validate_json, cls)


def _page(cls: type[BaseModel], item: type[M]) -> Reader[Page[M]]:
    """A page of ``cls`` (``{"data": [item, ...], "next_cursor"}``), typed by ``item``."""
    if cls.model_fields["data"].annotation != list[item]:  # type: ignore[valid-type]
        raise TypeError(f"{cls.__name__}.data is not a list of {item.__name__}")

    def read(body: bytes) -> Page[M]:
        found = cls.model_validate_json(body)
        return Page(list(found.data), found.next_cursor)  # type: ignore[attr-defined]

    return Reader(read, cls)


def _nothing(body: bytes) -> None:
    return None


def _text(body: bytes) -> str:
    return body.decode()


_events = Reader(lambda body: s.EventBatchOut.model_validate_json(body).events, s.EventBatchOut)


def new_event_id() -> str:
    """An id for an event published without one (the server's own form, ``evt_...``)."""
    return f"evt_{secrets.token_hex(10)}"


# -- operations (not under /api/v1) ------------------------------------------------------


@operation("GET", "/healthz", _model(s.HealthOut))
def get_health() -> Parts:
    """The server's ``/healthz``: status, version, whether it delivers, in flight."""
    return Parts()


@operation("GET", "/metrics", _text)
def get_metrics() -> Parts:
    """The server's Prometheus metrics, as text."""
    return Parts()


# -- apps --------------------------------------------------------------------------------


@operation("POST", "/api/v1/apps", _model(s.AppCreated))
def create_app(name: str, *, operator_url: str | NotGiven = NOT_GIVEN) -> Parts:
    """A new app (admin). Its ``api_key`` is shown in this answer only. ``operator_url``
    gets hookline's own events about the app's endpoints."""
    return Parts(body={"name": name, "operator_url": operator_url})


@operation("GET", "/api/v1/apps", _page(s.AppList, s.AppOut))
def list_apps(*, limit: int | None = None, cursor: str | None = None) -> Parts:
    """Every app, oldest first (an app's key: just its own); ``limit`` per page."""
    return Parts(query={"limit": limit, "cursor": cursor})


@operation("GET", "/api/v1/apps/{app_id}", _model(s.AppOut))
def get_app(app_id: str) -> Parts:
    """One app, with its verification key and any rotation in progress."""
    return Parts(path={"app_id": app_id})


@operation("PATCH", "/api/v1/apps/{app_id}", _model(s.AppOut))
def update_app(
    app_id: str,
    name: str | NotGiven = NOT_GIVEN,
    *,
    operator_url: str | NotGiven | None = NOT_GIVEN,
) -> Parts:
    """Change only what is given: the name (``rename``), the operator URL (None removes
    it)."""
    return Parts(path={"app_id": app_id}, body={"name": name, "operator_url": operator_url})


@operation("DELETE", "/api/v1/apps/{app_id}", _nothing)
def delete_app(app_id: str) -> Parts:
    """Delete the app with its installations, endpoints and delivery log (admin)."""
    return Parts(path={"app_id": app_id})


@operation("POST", "/api/v1/apps/{app_id}/rotate-key", _model(s.AppOut))
def rotate_verification_key(app_id: str, *, grace_seconds: float | None = None) -> Parts:
    """Start a verification-key rotation: the answer has ``next_verification_key`` and
    ``key_switch_at``. ``Conflict`` while a rotation is in its grace period."""
    return Parts(
        path={"app_id": app_id},
        body={"grace_seconds": NOT_GIVEN if grace_seconds is None else grace_seconds},
    )


@operation("POST", "/api/v1/apps/{app_id}/rotate-api-key", _model(s.AppCreated))
def rotate_api_key(app_id: str) -> Parts:
    """A new API key, shown in this answer only; the old one stops working at once.
    Never sent twice: a second rotation would lose the key of the first."""
    return Parts(path={"app_id": app_id})


# -- installations -----------------------------------------------------------------------


# Installing twice is the same installation (200 instead of 201): safe to send again.
@operation(
    "POST", "/api/v1/apps/{app_id}/installations", _model(s.InstallationOut), idempotent=True
)
def create_installation(app_id: str, user_id: str) -> Parts:
    """Record that ``user_id`` installed the app (admin); again, nothing changes."""
    return Parts(path={"app_id": app_id}, body={"user_id": user_id})


@operation(
    "GET", "/api/v1/apps/{app_id}/installations", _page(s.InstallationList, s.InstallationOut)
)
def list_installations(
    app_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Parts:
    """The users who installed the app, oldest first."""
    return Parts(path={"app_id": app_id}, query={"limit": limit, "cursor": cursor})


# -- endpoints ---------------------------------------------------------------------------


@operation("POST", "/api/v1/apps/{app_id}/endpoints", _model(s.EndpointOut))
def create_endpoint(
    app_id: str,
    url: str,
    event_types: Sequence[str] = ("*",),
    *,
    timeout: float | NotGiven = NOT_GIVEN,
    ordered: bool | NotGiven = NOT_GIVEN,
    max_in_flight: int | NotGiven | None = NOT_GIVEN,
    headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
    auth: Mapping[str, str] | NotGiven = NOT_GIVEN,
    client_cert: str | NotGiven = NOT_GIVEN,
    client_key: str | NotGiven = NOT_GIVEN,
    own_verification_key: bool | NotGiven = NOT_GIVEN,
) -> Parts:
    """Register ``url`` for ``event_types`` (``["*"]``: all of them). ``headers`` and
    ``auth`` (``{"type": "bearer", "token": ...}`` or ``{"type": "basic", "username":
    ..., "password": ...}``) go with every delivery; ``client_cert`` and ``client_key``
    (PEM) for mutual TLS; ``own_verification_key`` signs with a key of its own."""
    body = {
        "url": url,
        "event_types": list(event_types),
        "timeout": timeout,
        "ordered": ordered,
        "max_in_flight": max_in_flight,
        "headers": headers if isinstance(headers, NotGiven) else dict(headers),
        "auth": auth if isinstance(auth, NotGiven) else dict(auth),
        "client_cert": client_cert,
        "client_key": client_key,
        "own_verification_key": own_verification_key,
    }
    return Parts(path={"app_id": app_id}, body=body)


@operation("GET", "/api/v1/apps/{app_id}/endpoints", _page(s.EndpointList, s.EndpointOut))
def list_endpoints(app_id: str, *, limit: int | None = None, cursor: str | None = None) -> Parts:
    """The app's endpoints, oldest first."""
    return Parts(path={"app_id": app_id}, query={"limit": limit, "cursor": cursor})


@operation("GET", "/api/v1/apps/{app_id}/endpoints/{endpoint_id}", _model(s.EndpointOut))
def get_endpoint(app_id: str, endpoint_id: str) -> Parts:
    """One endpoint of the app."""
    return Parts(path={"app_id": app_id, "endpoint_id": endpoint_id})


@operation("PATCH", "/api/v1/apps/{app_id}/endpoints/{endpoint_id}", _model(s.EndpointOut))
def update_endpoint(
    app_id: str,
    endpoint_id: str,
    *,
    url: str | NotGiven = NOT_GIVEN,
    event_types: Sequence[str] | NotGiven = NOT_GIVEN,
    timeout: float | NotGiven = NOT_GIVEN,
    ordered: bool | NotGiven = NOT_GIVEN,
    max_in_flight: int | NotGiven | None = NOT_GIVEN,
    enabled: bool | NotGiven = NOT_GIVEN,
    headers: Mapping[str, str | None] | NotGiven = NOT_GIVEN,
    auth: Mapping[str, str] | NotGiven = NOT_GIVEN,
    client_cert: str | NotGiven | None = NOT_GIVEN,
    client_key: str | NotGiven | None = NOT_GIVEN,
) -> Parts:
    """Change only what is given (``max_in_flight=None``: the engine's default;
    ``headers``: the named ones, None removes one); enabled again, the endpoint sends
    its backlog at once, in order."""
    if not isinstance(event_types, NotGiven):
        event_types = list(event_types)
    body = {
        "url": url,
        "event_types": event_types,
        "timeout": timeout,
        "ordered": ordered,
        "max_in_flight": max_in_flight,
        "enabled": enabled,
        "headers": headers if isinstance(headers, NotGiven) else dict(headers),
        "auth": auth if isinstance(auth, NotGiven) else dict(auth),
        "client_cert": client_cert,
        "client_key": client_key,
    }
    return Parts(path={"app_id": app_id, "endpoint_id": endpoint_id}, body=body)


@operation(
    "POST", "/api/v1/apps/{app_id}/endpoints/{endpoint_id}/rotate-key", _model(s.EndpointOut)
)
def rotate_endpoint_key(
    app_id: str, endpoint_id: str, *, grace_seconds: float | None = None
) -> Parts:
    """Give the endpoint a new key of its own, rotated as an app's key is (from the app's
    key, for an endpoint without one yet). ``Conflict`` during a rotation."""
    return Parts(
        path={"app_id": app_id, "endpoint_id": endpoint_id},
        body={"grace_seconds": NOT_GIVEN if grace_seconds is None else grace_seconds},
    )


@operation("DELETE", "/api/v1/apps/{app_id}/endpoints/{endpoint_id}", _nothing)
def delete_endpoint(app_id: str, endpoint_id: str) -> Parts:
    """Delete the endpoint with its deliveries."""
    return Parts(path={"app_id": app_id, "endpoint_id": endpoint_id})


@operation("POST", "/api/v1/apps/{app_id}/endpoints/{endpoint_id}/recover", _model(s.RecoverOut))
def recover_endpoint(app_id: str, endpoint_id: str, since: datetime) -> Parts:
    """Send every failed delivery created since ``since`` again, now, in order."""
    return Parts(path={"app_id": app_id, "endpoint_id": endpoint_id}, body={"since": since})


@operation("POST", "/api/v1/apps/{app_id}/endpoints/{endpoint_id}/test", _model(s.DeliveryOut))
def send_test_notification(
    app_id: str, endpoint_id: str, event_type: str, *, user_id: str | NotGiven = NOT_GIVEN
) -> Parts:
    """Send a sample event of ``event_type`` to this endpoint only; the delivery to
    follow comes back."""
    return Parts(
        path={"app_id": app_id, "endpoint_id": endpoint_id},
        body={"event_type": event_type, "user_id": user_id},
    )


@operation("GET", "/api/v1/apps/{app_id}/endpoints/{endpoint_id}/stats", _model(s.EndpointStats))
def get_endpoint_stats(app_id: str, endpoint_id: str, *, window: int | None = None) -> Parts:
    """Attempts by outcome, success rate and latency over the last ``window`` seconds."""
    return Parts(path={"app_id": app_id, "endpoint_id": endpoint_id}, query={"window": window})


# -- events ------------------------------------------------------------------------------


def _event(
    event_type: str,
    user_id: str,
    data: Mapping[str, Any],
    event_id: str | None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    event = {
        "event_type": event_type,
        "user_id": user_id,
        "data": data,
        "event_id": event_id or new_event_id(),
    }
    if traceparent is not None:  # only when given: a server without tracing refuses it
        event["traceparent"] = traceparent
    return event


# The server publishes an event_id once (the same again is a duplicate), and the client
# gives every event an id before the first try: publishing is always safe to resend.
@operation("POST", "/api/v1/events", _model(s.EventOut), idempotent=True)
def publish_event(
    event_type: str,
    user_id: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
    traceparent: str | None = None,
) -> Parts:
    """Publish one event (admin); it is stored with its deliveries when this returns.

    Without ``event_id`` the client makes one, so that a retry after a lost answer
    publishes it once (the retry's answer then says ``duplicate``). The same
    ``event_id`` with other data raises ``EventConflict``. ``traceparent`` (W3C trace
    context) is carried on to each delivery's ``traceparent`` header."""
    return Parts(body=_event(event_type, user_id, data, event_id, traceparent))


@operation("POST", "/api/v1/events/batch", _events, idempotent=True)
def publish_events(events: Iterable[Mapping[str, Any]]) -> Parts:
    """Publish up to 1,000 events in one transaction, all or none (admin). Each is a
    mapping with ``event_type``, ``user_id``, ``data``, ``event_id`` (made if absent) and
    optionally ``traceparent``."""
    batch = [
        _event(e["event_type"], e["user_id"], e["data"], e.get("event_id"), e.get("traceparent"))
        for e in events
    ]
    return Parts(body={"events": batch})


@operation("GET", "/api/v1/events/{event_id}", _model(s.EventDetail))
def get_event(event_id: str) -> Parts:
    """A published event with its data (admin)."""
    return Parts(path={"event_id": event_id})


# -- deliveries --------------------------------------------------------------------------


@operation("GET", "/api/v1/apps/{app_id}/deliveries", _page(s.DeliveryList, s.DeliveryOut))
def list_deliveries(
    app_id: str,
    *,
    endpoint_id: str | None = None,
    user_id: str | None = None,
    event_type: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Parts:
    """The app's deliveries, newest first, each with its attempts."""
    query = {
        "endpoint_id": endpoint_id,
        "user_id": user_id,
        "event_type": event_type,
        "status": status,
        "since": since,
        "until": until,
        "limit": limit,
        "cursor": cursor,
    }
    return Parts(path={"app_id": app_id}, query=query)


@operation("GET", "/api/v1/apps/{app_id}/deliveries/{delivery_id}", _model(s.DeliveryOut))
def get_delivery(app_id: str, delivery_id: int) -> Parts:
    """One delivery with every attempt."""
    return Parts(path={"app_id": app_id, "delivery_id": delivery_id})


@operation("POST", "/api/v1/apps/{app_id}/deliveries/{delivery_id}/retry", _model(s.DeliveryOut))
def retry_delivery(app_id: str, delivery_id: int) -> Parts:
    """Send a failed delivery again now (a delivered one is replayed), same token and
    event_id. ``Conflict`` while it is still pending."""
    return Parts(path={"app_id": app_id, "delivery_id": delivery_id})
