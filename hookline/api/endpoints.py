"""Endpoints: register, change, remove; recover failures, send tests, read statistics."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from hookline.api import schemas as s
from hookline.api.body import JsonRoute
from hookline.api.common import (
    BODY,
    Auth,
    app_of,
    charge,
    endpoint_of,
    errors,
    store,
    wake_engine,
)
from hookline.front.paging import DEFAULT_LIMIT, Cursor, Limit, by_id, decode, page
from hookline.rules import check_url, with_authorization
from hookline.samples import sample_data
from hookline.store import Endpoint
from hookline.store.deliveries import TEST_USER

router = APIRouter(tags=["endpoints"], route_class=JsonRoute)

#: Settings a PATCH may set to null (the engine's default; no client certificate; no
#: rate limit).
NULLABLE = frozenset({"max_in_flight", "client_cert", "client_key", "rate_limit"})


@router.post(
    "/apps/{app_id}/endpoints",
    status_code=201,
    response_model=s.EndpointOut,
    responses=errors(403, 404, 409, *BODY),
)
async def create_endpoint(app_id: str, body: s.EndpointIn, request: Request, who: Auth) -> Endpoint:
    who.require_app(app_id)
    check_url(body.url, allow_private=request.app.state.settings.allow_private_targets)
    charge(request, who.app_id, "new_endpoints")
    return await store(request).create_endpoint(
        app_id,
        url=body.url,
        event_types=body.event_types,
        timeout=body.timeout,
        ordered=body.ordered,
        max_in_flight=body.max_in_flight,
        headers=with_authorization(body.headers, **body.authorization()),
        client_cert=body.client_cert,
        client_key=body.client_key,
        own_verification_key=body.own_verification_key,
        rate_limit=body.rate_limit,
        rate_limit_burst=body.rate_limit_burst,
    )


@router.get("/apps/{app_id}/endpoints", response_model=s.EndpointList, responses=errors(403, 404))
async def list_endpoints(
    app_id: str, request: Request, who: Auth, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """The app's endpoints, oldest first, a page at a time."""
    await app_of(request, who, app_id)
    rows = await store(request).list_endpoints(app_id, after=decode(cursor), limit=limit + 1)
    return page(rows, limit, by_id)


@router.get(
    "/apps/{app_id}/endpoints/{endpoint_id}",
    response_model=s.EndpointOut,
    responses=errors(403, 404),
)
async def get_endpoint(app_id: str, endpoint_id: str, request: Request, who: Auth) -> Any:
    return await endpoint_of(request, who, app_id, endpoint_id)


@router.patch(
    "/apps/{app_id}/endpoints/{endpoint_id}",
    response_model=s.EndpointOut,
    responses=errors(403, 404, *BODY),
)
async def update_endpoint(
    app_id: str, endpoint_id: str, body: s.EndpointPatch, request: Request, who: Auth
) -> Any:
    """Change the URL, event types, timeout, ordering, in-flight cap, rate limit,
    headers, or turn it on/off.

    Enabled again, an endpoint sends its backlog at once, in order.
    """
    await endpoint_of(request, who, app_id, endpoint_id)
    auth = body.authorization()
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True, exclude={"auth"}).items()
        if v is not None or k in NULLABLE
    }
    if body.headers is not None or any(auth.values()):
        changes["headers"] = with_authorization(body.headers or {}, **auth)
    if "url" in changes:
        check_url(changes["url"], allow_private=request.app.state.settings.allow_private_targets)
    endpoint = await store(request).update_endpoint(endpoint_id, **changes)
    if endpoint.enabled:
        wake_engine(request)
    return endpoint


@router.post(
    "/apps/{app_id}/endpoints/{endpoint_id}/rotate-key",
    response_model=s.EndpointOut,
    responses=errors(403, 404, 409, *BODY),
)
async def rotate_endpoint_key(
    app_id: str, endpoint_id: str, request: Request, who: Auth, body: s.KeyRotationIn | None = None
) -> Any:
    """Give the endpoint a new verification key of its own, without a rejected delivery.

    The same rotation as an app's: the answer shows the new key
    (``next_verification_key``) and ``key_switch_at``; until then ``X-Selz-Signature``
    stays on the current key (the app's, for an endpoint without one of its own yet) and
    ``webhook-signature`` carries both. 409 while a rotation is in its grace period.
    """
    await endpoint_of(request, who, app_id, endpoint_id)
    grace = body.grace_seconds if body else s.DEFAULT_GRACE_SECONDS
    return await store(request).rotate_endpoint_key(endpoint_id, grace)


@router.delete(
    "/apps/{app_id}/endpoints/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404, 409),
)
async def delete_endpoint(app_id: str, endpoint_id: str, request: Request, who: Auth) -> Response:
    """Delete the endpoint with its deliveries and their attempts. The app's operational
    endpoint goes with its operator_url only (409)."""
    await endpoint_of(request, who, app_id, endpoint_id)
    await store(request).delete_endpoint(endpoint_id)
    return Response(status_code=204)


@router.post(
    "/apps/{app_id}/endpoints/{endpoint_id}/recover",
    status_code=202,
    response_model=s.RecoverOut,
    responses=errors(403, 404, *BODY),
)
async def recover_endpoint(
    app_id: str, endpoint_id: str, body: s.RecoverIn, request: Request, who: Auth
) -> dict[str, Any]:
    """Send every failed delivery of the endpoint created since ``since`` again, now,
    each with its own token and event_id, in order within each user."""
    await endpoint_of(request, who, app_id, endpoint_id)
    charge(request, who.app_id, "recovers")
    recovered = await store(request).recover_endpoint(endpoint_id, body.since.timestamp())
    wake_engine(request)
    return {"recovered": recovered}


@router.post(
    "/apps/{app_id}/endpoints/{endpoint_id}/test",
    status_code=202,
    response_model=s.DeliveryOut,
    responses=errors(403, 404, *BODY),
)
async def send_test_notification(
    app_id: str, endpoint_id: str, body: s.TestNotificationIn, request: Request, who: Auth
) -> Any:
    """Send a sample event of the chosen type to this endpoint (only), through the normal
    pipeline: signed, retried, logged. Follow it with the delivery returned."""
    await endpoint_of(request, who, app_id, endpoint_id)
    charge(request, who.app_id, "tests")
    data = orjson.dumps(sample_data(body.event_type)).decode()
    delivery = await store(request).send_test(
        endpoint_id, body.event_type, data, user_id=body.user_id or TEST_USER
    )
    wake_engine(request)
    return delivery


@router.get(
    "/apps/{app_id}/endpoints/{endpoint_id}/stats",
    response_model=s.EndpointStats,
    responses=errors(403, 404),
)
async def get_endpoint_stats(
    app_id: str,
    endpoint_id: str,
    request: Request,
    who: Auth,
    window: Annotated[
        int, Query(ge=1, le=30 * 86400, description="Seconds back from now.")
    ] = 86400,
) -> dict[str, Any]:
    """Success rate, attempts by outcome and latency percentiles over the window."""
    await endpoint_of(request, who, app_id, endpoint_id)
    since = store(request).clock.now() - window
    stats = await store(request).endpoint_stats(endpoint_id, since)
    return {**stats, "endpoint_id": endpoint_id, "since": since}
