"""One endpoint's page: its deliveries and figures, its rate limit, a test
notification, enabling and disabling it."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from hookline.events import WILDCARD, check_event_type
from hookline.exceptions import NotFound
from hookline.front.services import charge, wake_engine
from hookline.front.services import store as app_store
from hookline.samples import sample_data
from hookline.web import chart
from hookline.web.pages.common import (
    PAGE_SIZE,
    HtmlRoute,
    check_csrf,
    endpoint_for,
    page,
    rate_fields,
    signed_in,
)

router = APIRouter(route_class=HtmlRoute)


@router.get("/endpoints/{endpoint_id}")
async def endpoint_page(request: Request, endpoint_id: str) -> Response:
    session = await signed_in(request)
    endpoint = await endpoint_for(request, session, endpoint_id)
    store = app_store(request)
    app = await store.get_app(endpoint.app_id)
    deliveries = await store.list_deliveries(
        endpoint.app_id, endpoint_id=endpoint_id, limit=PAGE_SIZE
    )
    since, bucket = chart.window()
    timeline = await store.delivery_timeline(
        endpoint.app_id, endpoint_id=endpoint_id, since=since, bucket=bucket
    )
    stats = await store.endpoint_stats(endpoint_id, since)
    subscribed = endpoint.event_types
    return page(
        request,
        "endpoint.html",
        session,
        app=app,
        endpoint=endpoint,
        subscribed=subscribed,
        test_event=subscribed[0] if subscribed != (WILDCARD,) else "order_completed",
        deliveries=deliveries,
        chart=chart.build(timeline, since, bucket),
        stats=stats,
        in_flight=any(d.status == "pending" for d in deliveries),
        back=request.url.path,
    )


@router.post("/endpoints/{endpoint_id}/rate-limit")
async def set_rate_limit(
    request: Request,
    endpoint_id: str,
    csrf: Annotated[str, Form()],
    rate_limit: Annotated[str, Form()] = "",
    rate_limit_burst: Annotated[str, Form()] = "",
) -> Response:
    """The endpoint's rate limit: deliveries a second (empty: none) and its burst."""
    session = await signed_in(request)
    check_csrf(session, csrf)
    await endpoint_for(request, session, endpoint_id)
    rate, burst = rate_fields(rate_limit, rate_limit_burst)
    await app_store(request).update_endpoint(endpoint_id, rate_limit=rate, rate_limit_burst=burst)
    wake_engine(request)
    return RedirectResponse(f"/endpoints/{endpoint_id}?notice=rate_limit_saved", status_code=303)


@router.post("/endpoints/{endpoint_id}/{action}")
async def endpoint_action(
    request: Request,
    endpoint_id: str,
    action: str,
    csrf: Annotated[str, Form()],
    event_type: Annotated[str | None, Form()] = None,
) -> Response:
    session = await signed_in(request)
    check_csrf(session, csrf)
    await endpoint_for(request, session, endpoint_id)
    store = app_store(request)
    if action == "test":
        event_type = check_event_type(event_type or "")
        charge(request, session.app_id, "tests")
        await store.send_test(
            endpoint_id, event_type, orjson.dumps(sample_data(event_type)).decode()
        )
        notice = "test_sent"
    elif action in ("enable", "disable"):
        await store.update_endpoint(endpoint_id, enabled=action == "enable")
        notice = f"{action}d"
    else:
        raise NotFound(f"no action {action!r} on endpoints")
    wake_engine(request)
    return RedirectResponse(f"/endpoints/{endpoint_id}?notice={notice}", status_code=303)
