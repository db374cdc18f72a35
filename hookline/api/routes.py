"""The /api/v1 routes. Handlers check who may call, then call the store; nothing else."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from hookline.api import schemas as s
from hookline.api.auth import Caller, caller
from hookline.exceptions import ValidationError
from hookline.sender.addresses import check_url
from hookline.store import NewEvent, Published, Store
from hookline.store.manager import new_id

router = APIRouter(
    prefix="/api/v1",
    responses={
        401: {"model": s.ErrorOut},
        403: {"model": s.ErrorOut},
        404: {"model": s.ErrorOut},
        422: {"model": s.ErrorOut},
    },
)
Auth = Annotated[Caller, Depends(caller)]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _endpoint_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "event_types": orjson.loads(row["event_types"]),
        "ordered": bool(row["ordered"]),
        "enabled": bool(row["enabled"]),
    }


# -- apps --------------------------------------------------------------------------------


@router.post("/apps", status_code=201, response_model=s.AppCreated, tags=["apps"])
async def create_app(body: s.AppIn, request: Request, who: Auth) -> dict[str, Any]:
    who.require_admin()
    row, api_key = await _store(request).create_app(body.name)
    return {**row, "api_key": api_key}


@router.get("/apps", response_model=list[s.AppOut], tags=["apps"])
async def list_apps(request: Request, who: Auth) -> list[dict[str, Any]]:
    if who.is_admin:
        return await _store(request).list_apps()
    assert who.app_id is not None
    return [await _store(request).get_app(who.app_id)]


@router.get("/apps/{app_id}", response_model=s.AppOut, tags=["apps"])
async def get_app(app_id: str, request: Request, who: Auth) -> dict[str, Any]:
    who.require_app(app_id)
    return await _store(request).get_app(app_id)


# -- installations -----------------------------------------------------------------------


@router.post(
    "/apps/{app_id}/installations",
    status_code=201,
    response_model=s.InstallationOut,
    tags=["installations"],
)
async def install(app_id: str, body: s.InstallationIn, request: Request, who: Auth) -> Any:
    who.require_admin()
    row, created = await _store(request).install(app_id, body.user_id)
    if not created:
        return JSONResponse(s.InstallationOut(**row).model_dump(mode="json"), status_code=200)
    return row


@router.get(
    "/apps/{app_id}/installations", response_model=list[s.InstallationOut], tags=["installations"]
)
async def list_installations(app_id: str, request: Request, who: Auth) -> list[dict[str, Any]]:
    who.require_app(app_id)
    await _store(request).get_app(app_id)
    return await _store(request).list_installations(app_id)


# -- endpoints ---------------------------------------------------------------------------


@router.post(
    "/apps/{app_id}/endpoints", status_code=201, response_model=s.EndpointOut, tags=["endpoints"]
)
async def create_endpoint(
    app_id: str, body: s.EndpointIn, request: Request, who: Auth
) -> dict[str, Any]:
    who.require_app(app_id)
    check_url(body.url, allow_private=request.app.state.settings.allow_private_targets)
    row = await _store(request).create_endpoint(
        app_id,
        url=body.url,
        event_types=body.event_types,
        timeout=body.timeout,
        ordered=body.ordered,
        max_in_flight=body.max_in_flight,
    )
    return _endpoint_out(row)


@router.get("/apps/{app_id}/endpoints", response_model=list[s.EndpointOut], tags=["endpoints"])
async def list_endpoints(app_id: str, request: Request, who: Auth) -> list[dict[str, Any]]:
    who.require_app(app_id)
    await _store(request).get_app(app_id)
    return [_endpoint_out(r) for r in await _store(request).list_endpoints(app_id)]


# -- events ------------------------------------------------------------------------------


def _new_event(event: s.EventIn, max_bytes: int) -> NewEvent:
    data = orjson.dumps(event.data).decode()
    if len(data) > max_bytes:
        raise ValidationError(
            f"data is {len(data)} bytes once serialised; the limit is {max_bytes} bytes"
        )
    return NewEvent(
        id=event.event_id or new_id("evt"),
        event_type=event.event_type,
        user_id=event.user_id,
        data=data,
    )


def _event_out(published: Published) -> dict[str, Any]:
    return {
        "id": published.id,
        "event_type": published.event_type,
        "user_id": published.user_id,
        "created_at": published.created_at,
        "duplicate": published.duplicate,
        "deliveries": published.deliveries,
    }


@router.post("/events", status_code=202, response_model=s.EventOut, tags=["events"])
async def publish(body: s.EventIn, request: Request, who: Auth) -> dict[str, Any]:
    """Publish one event; it is stored with its deliveries before the 202."""
    who.require_admin()
    state = request.app.state
    (published,) = await state.publisher.publish([_new_event(body, state.settings.max_event_bytes)])
    return _event_out(published)


@router.post("/events/batch", status_code=202, response_model=s.EventBatchOut, tags=["events"])
async def publish_batch(body: s.EventBatchIn, request: Request, who: Auth) -> dict[str, Any]:
    """Publish up to 1,000 events in one transaction: all stored, or none."""
    who.require_admin()
    state = request.app.state
    events = [_new_event(e, state.settings.max_event_bytes) for e in body.events]
    return {"events": [_event_out(p) for p in await state.publisher.publish(events)]}


@router.get("/events/{event_id}", tags=["events"])
async def get_event(event_id: str, request: Request, who: Auth) -> dict[str, Any]:
    who.require_admin()
    row = await _store(request).get_event(event_id)
    return {
        "id": row["id"],
        "event_type": row["event_type"],
        "user_id": row["user_id"],
        "data": orjson.loads(row["data"]),
        "created_at": s._epoch(row["created_at"]),
    }


# -- deliveries --------------------------------------------------------------------------


@router.get("/apps/{app_id}/deliveries", response_model=s.DeliveryList, tags=["deliveries"])
async def list_deliveries(
    app_id: str,
    request: Request,
    who: Auth,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d+$")] = None,
    endpoint_id: str | None = None,
    user_id: str | None = None,
    event_type: s.EventType | None = None,
    status: s.DeliveryStatus | None = None,
) -> dict[str, Any]:
    who.require_app(app_id)
    store = _store(request)
    await store.get_app(app_id)
    rows = await store.list_deliveries(
        app_id,
        limit=limit + 1,
        before=int(cursor) if cursor else None,
        endpoint_id=endpoint_id,
        user_id=user_id,
        event_type=event_type,
        status=status,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"data": rows, "next_cursor": str(rows[-1]["id"]) if more else None}
