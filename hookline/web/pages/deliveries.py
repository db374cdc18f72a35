"""An app's deliveries, filtered and paged (newest first), and sending one again."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from hookline.events import EVENT_TYPES, OPERATIONAL_EVENT_TYPES
from hookline.exceptions import NotFound
from hookline.front.services import store as app_store
from hookline.front.services import wake_engine
from hookline.rules import INT64_MAX
from hookline.web.pages.common import (
    PAGE_SIZE,
    HtmlRoute,
    app_for,
    check_csrf,
    here,
    local_path,
    page,
    signed_in,
)

STATUSES = ("pending", "delivered", "failed")

router = APIRouter(route_class=HtmlRoute)


@router.get("/apps/{app_id}/deliveries")
async def deliveries_page(
    request: Request,
    app_id: str,
    status: str | None = None,
    event_type: str | None = None,
    endpoint_id: str | None = None,
    user_id: str | None = None,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> Response:
    session = await signed_in(request)
    app = await app_for(request, session, app_id)
    filters = {
        "status": status if status in STATUSES else None,
        "event_type": (
            event_type if event_type in (*EVENT_TYPES, *OPERATIONAL_EVENT_TYPES) else None
        ),
        "endpoint_id": endpoint_id or None,
        "user_id": (user_id or "").strip() or None,
    }
    rows = await app_store(request).list_deliveries(
        app_id,
        limit=PAGE_SIZE + 1,
        before=before,
        status=filters["status"],
        event_type=filters["event_type"],
        endpoint_id=filters["endpoint_id"],
        user_id=filters["user_id"],
    )
    older = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        older = "?" + urlencode({**{k: v for k, v in filters.items() if v}, "before": rows[-1].id})
    return page(
        request,
        "deliveries.html",
        session,
        app=app,
        endpoints=await app_store(request).list_endpoints(app_id),
        deliveries=rows,
        filters=filters,
        older=older,
        in_flight=any(d.status == "pending" for d in rows),
        back=here(request),
    )


@router.post("/deliveries/{delivery_id}/retry")
async def retry(
    request: Request,
    delivery_id: Annotated[int, Path(ge=1, le=INT64_MAX)],
    csrf: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    session = await signed_in(request)
    check_csrf(session, csrf)
    store = app_store(request)
    delivery = await store.get_delivery(delivery_id)
    if not session.caller.may_see(delivery.app_id):
        raise NotFound(f"no delivery with id {delivery_id}")
    await store.retry_deliveries([delivery_id])
    wake_engine(request)
    target = local_path(next, f"/endpoints/{delivery.endpoint_id}")
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}notice=retried", status_code=303)
