"""What every route module shares: who is calling, the store, ownership checks.

``store``, ``charge`` and ``wake_engine`` are the dashboard's too (``hookline.front``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from hookline.api import schemas as s
from hookline.api.auth import caller
from hookline.exceptions import NotFound
from hookline.front.access import Caller
from hookline.front.services import charge, store, wake_engine
from hookline.store import App, Delivery, Endpoint

__all__ = [
    "BODY",
    "ERRORS",
    "Auth",
    "app_of",
    "charge",
    "delivery_of",
    "endpoint_of",
    "errors",
    "store",
    "wake_engine",
]

Auth = Annotated[Caller, Depends(caller)]

_ERROR_ANSWERS = {
    400: "The body is not valid JSON.",
    401: "No token, or one that is neither the admin token nor an app's API key.",
    403: "The token may not do this: an app's key on an admin route or another app's.",
    404: "Nothing with this id (in this app).",
    409: "The request conflicts with what is stored; the message says how.",
    413: "The body, or the deliveries it would make, is more than this server allows.",
    415: "The body is not sent as Content-Type: application/json.",
    422: "A parameter, an id or a field of the body breaks an input rule; the message says which.",
    429: "Too many of these requests (or failed sign-ins) of late; try again after Retry-After.",
    503: "The database is unreachable for now; try again after Retry-After.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers ``codes`` of a route, for the OpenAPI document (as ``ErrorOut``).

    Each route lists those its own handler can give; ``ERRORS`` those of every route."""
    return {code: {"model": s.ErrorOut, "description": _ERROR_ANSWERS[code]} for code in codes}


#: What every /api/v1 route may answer: the caller is authenticated (against the store,
#: throttled after failed attempts) and every parameter checked (an id with NUL is
#: refused on PostgreSQL).
ERRORS = errors(401, 422, 429, 503)
#: What a route that reads a JSON body may answer besides.
BODY = (400, 413, 415)


async def app_of(request: Request, who: Caller, app_id: str) -> App:
    """The app, if the caller may see it: 403 for another app's key, 404 if none."""
    who.require_app(app_id)
    return await store(request).get_app(app_id)


async def endpoint_of(request: Request, who: Caller, app_id: str, endpoint_id: str) -> Endpoint:
    """The app's endpoint; one of another app is as good as missing (404)."""
    who.require_app(app_id)
    endpoint = await store(request).get_endpoint(endpoint_id)
    if endpoint.app_id != app_id:
        raise NotFound(f"no endpoint with id {endpoint_id!r} in app {app_id!r}")
    return endpoint


async def delivery_of(request: Request, who: Caller, app_id: str, delivery_id: int) -> Delivery:
    who.require_app(app_id)
    delivery = await store(request).get_delivery(delivery_id)
    if delivery.app_id != app_id:
        raise NotFound(f"no delivery with id {delivery_id} in app {app_id!r}")
    return delivery
