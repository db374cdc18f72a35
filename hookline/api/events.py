"""Publishing events (admin only: events come from the platform, not from apps).

An admin's well-formed publish is answered by ``publish_path.PublishPath`` with the
helpers below, before FastAPI's routing; these routes answer every other publish
request (and document both in /openapi.json).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.datastructures import Headers

from hookline.api import schemas as s
from hookline.api.body import JsonRoute
from hookline.api.common import BODY, Auth, errors, store
from hookline.rules import event_data
from hookline.store import Event, NewEvent, Published
from hookline.store.base import new_id
from hookline.traceparent import HEADER, parse, parse_headers

router = APIRouter(tags=["events"], route_class=JsonRoute)

#: Stated for the OpenAPI document; read with every value it has (``_traceparent``).
Traceparent = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description="W3C trace context of the caller: each event's deliveries carry the "
        "trace on in their `traceparent` header. An invalid one is ignored.",
    ),
]


def traceparent_of(headers: Headers) -> str | None:
    """The request's valid ``traceparent``; one sent twice is as invalid as a bad one."""
    return parse_headers(headers.getlist(HEADER))


def new_event(event: s.EventIn, max_bytes: int, traceparent: str | None) -> NewEvent:
    return NewEvent(
        id=event.event_id or new_id("evt"),
        event_type=event.event_type,
        user_id=event.user_id,
        data=event_data(event.data, max_bytes=max_bytes),
        traceparent=parse(event.traceparent) or traceparent,
    )


async def publish(state: Any, events: list[NewEvent], parent: str | None) -> list[Published]:
    """Store the events (durably, before the 202) and count the new ones; where the
    server traces, inside a publish span that is a child of the request's ``parent``."""
    published: list[Published]
    if state.tracing is None:
        published = await state.publisher.publish(events)
    else:
        published = await state.tracing.publish(events, parent, state.publisher.publish)
    state.metrics.events.inc(sum(not p.duplicate for p in published))
    return published


def event_out(published: Published) -> dict[str, Any]:
    return {
        "id": published.id,
        "event_type": published.event_type,
        "user_id": published.user_id,
        "created_at": published.created_at,
        "duplicate": published.duplicate,
        "deliveries": published.deliveries,
    }


@router.post(
    "/events", status_code=202, response_model=s.EventOut, responses=errors(403, 409, *BODY)
)
async def publish_event(
    body: s.EventIn, request: Request, who: Auth, traceparent: Traceparent = None
) -> dict[str, Any]:
    """Publish one event; it is stored with its deliveries before the 202."""
    who.require_admin()
    state = request.app.state
    given = traceparent_of(request.headers)
    event = new_event(body, state.settings.max_event_bytes, given)
    published = await publish(state, [event], given)
    return event_out(published[0])


@router.post(
    "/events/batch",
    status_code=202,
    response_model=s.EventBatchOut,
    responses=errors(403, 409, *BODY),
)
async def publish_events(
    body: s.EventBatchIn, request: Request, who: Auth, traceparent: Traceparent = None
) -> dict[str, Any]:
    """Publish up to 1,000 events in one transaction: all stored, or none."""
    who.require_admin()
    state = request.app.state
    given = traceparent_of(request.headers)
    events = [new_event(e, state.settings.max_event_bytes, given) for e in body.events]
    return {"events": [event_out(p) for p in await publish(state, events, given)]}


@router.get("/events/{event_id}", response_model=s.EventDetail, responses=errors(403, 404))
async def get_event(event_id: str, request: Request, who: Auth) -> Event:
    who.require_admin()
    return await store(request).get_event(event_id)
