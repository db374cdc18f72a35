"""What every route module shares: who is calling, the store, ownership checks."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from hookline.api import schemas as s
from hookline.api.auth import Caller, caller
from hookline.api.quotas import Action, Quotas
from hookline.exceptions import NotFound
from hookline.store import Store

Auth = Annotated[Caller, Depends(caller)]

#: Answers every /api/v1 route may give besides its own (all as ``ErrorOut``).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorOut} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429)
}
ERRORS[503] = {
    "model": s.ErrorOut,
    "description": "The database is unreachable for now; try again after Retry-After.",
}


def store(request: Request) -> Store:
    found: Store = request.app.state.store
    return found


def charge(request: Request, app_id: str | None, action: Action) -> None:
    """Count one ``action`` against the app's rate limit (429 past it; the admin, with
    ``app_id`` None, is not limited)."""
    quotas: Quotas = request.app.state.quotas
    quotas.charge(app_id, action)


def wake_engine(request: Request) -> None:
    """A delivery became due now: tell this process's engine (others poll or listen)."""
    engine = request.app.state.engine
    if engine is not None:
        engine.wake()


async def app_of(request: Request, who: Caller, app_id: str) -> dict[str, Any]:
    """The app, if the caller may see it: 403 for another app's key, 404 if none."""
    who.require_app(app_id)
    return await store(request).get_app(app_id)


async def endpoint_of(request: Request, who: Caller, app_id: str, endpoint_id: str) -> Any:
    """The app's endpoint; one of another app is as good as missing (404)."""
    who.require_app(app_id)
    row = await store(request).get_endpoint(endpoint_id)
    if row["app_id"] != app_id:
        raise NotFound(f"no endpoint with id {endpoint_id!r} in app {app_id!r}")
    return row


async def delivery_of(request: Request, who: Caller, app_id: str, delivery_id: int) -> Any:
    who.require_app(app_id)
    row = await store(request).get_delivery(delivery_id)
    if row["app_id"] != app_id:
        raise NotFound(f"no delivery with id {delivery_id} in app {app_id!r}")
    return row


def endpoint_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "event_types": orjson.loads(row["event_types"]),
        "ordered": bool(row["ordered"]),
        "enabled": bool(row["enabled"]),
    }
