"""The delivery log of an app: list, one with every attempt, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from hookline.api import schemas as s
from hookline.api.body import JsonRoute
from hookline.api.common import Auth, app_of, delivery_of, errors, store, wake_engine
from hookline.api.types import AnyEventType, TimeQuery
from hookline.exceptions import Conflict
from hookline.front.paging import DeliveryLimit
from hookline.rules import INT64_MAX

router = APIRouter(tags=["deliveries"], route_class=JsonRoute)

DeliveryId = Annotated[int, Path(ge=1, le=INT64_MAX)]


@router.get("/apps/{app_id}/deliveries", response_model=s.DeliveryList, responses=errors(403, 404))
async def list_deliveries(
    app_id: str,
    request: Request,
    who: Auth,
    limit: DeliveryLimit = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
    endpoint_id: str | None = None,
    user_id: str | None = None,
    event_type: AnyEventType | None = None,
    status: s.DeliveryStatus | None = None,
    since: Annotated[TimeQuery, Query(description="Created at or after.")] = None,
    until: Annotated[TimeQuery, Query(description="Created before.")] = None,
) -> dict[str, Any]:
    """Newest first, each with its attempts; ``next_cursor`` pages on."""
    await app_of(request, who, app_id)
    rows = await store(request).list_deliveries(
        app_id,
        limit=limit + 1,
        before=int(cursor) if cursor else None,
        endpoint_id=endpoint_id,
        user_id=user_id,
        event_type=event_type,
        status=status,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"data": rows, "next_cursor": str(rows[-1].id) if more else None}


@router.get(
    "/apps/{app_id}/deliveries/{delivery_id}",
    response_model=s.DeliveryOut,
    responses=errors(403, 404),
)
async def get_delivery(app_id: str, delivery_id: DeliveryId, request: Request, who: Auth) -> Any:
    return await delivery_of(request, who, app_id, delivery_id)


@router.post(
    "/apps/{app_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=s.DeliveryOut,
    responses=errors(403, 404, 409),
)
async def retry_delivery(app_id: str, delivery_id: DeliveryId, request: Request, who: Auth) -> Any:
    """Send a failed delivery again now (or replay a delivered one), with the same token
    and event_id. A pending delivery is already on its way: 409."""
    delivery = await delivery_of(request, who, app_id, delivery_id)
    if delivery.status == "pending":
        raise Conflict(f"delivery {delivery_id} is pending: it is sent, or retried, already")
    await store(request).retry_deliveries([delivery_id])
    wake_engine(request)
    return await store(request).get_delivery(delivery_id)
