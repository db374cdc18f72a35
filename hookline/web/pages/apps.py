"""The apps: the admin's list, a new app, an app's page with its webhooks, its
installations and where its operational events go."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from hookline.events import WILDCARD, check_event_type
from hookline.exceptions import ValidationError
from hookline.front import paging
from hookline.front.services import charge
from hookline.front.services import store as app_store
from hookline.rules import APP_NAME, USER_ID, check_url
from hookline.store import App
from hookline.web import chart
from hookline.web.pages.common import HtmlRoute, app_for, check_csrf, page, rate_fields, signed_in
from hookline.web.session import Session

APPS_PER_PAGE = 50

router = APIRouter(route_class=HtmlRoute)


@router.get("/")
async def home(request: Request) -> Response:
    session = await signed_in(request)
    target = "/apps" if session.is_admin else f"/apps/{session.subject}"
    return RedirectResponse(target, status_code=303)


@router.get("/apps")
async def apps_page(request: Request, cursor: str | None = None) -> Response:
    """The apps a page at a time, oldest first, with a link to the next page."""
    session = await signed_in(request)
    if not session.is_admin:
        return RedirectResponse(f"/apps/{session.subject}", status_code=303)
    store = app_store(request)
    found = paging.page(
        await store.list_apps(after=paging.decode(cursor), limit=APPS_PER_PAGE + 1),
        APPS_PER_PAGE,
        paging.by_id,
    )
    apps = [(app, await store.list_endpoints(app.id)) for app in found["data"]]
    more = found["next_cursor"] and "?" + urlencode({"cursor": found["next_cursor"]})
    return page(request, "apps.html", session, apps=apps, more=more, created=None)


@router.post("/apps")
async def create_app(
    request: Request, csrf: Annotated[str, Form()], name: Annotated[str, Form()] = ""
) -> Response:
    session = await signed_in(request)
    check_csrf(session, csrf)
    session.caller.require_admin()
    APP_NAME.check(name)
    app, api_key = await app_store(request).create_app(name)
    # Rendered, not redirected: the API key is shown this once and never stored.
    return page(request, "app_created.html", session, app=app, api_key=api_key)


@router.get("/apps/{app_id}")
async def app_page(request: Request, app_id: str) -> Response:
    session = await signed_in(request)
    app = await app_for(request, session, app_id)
    return await _app_page(request, session, app)


async def _app_page(
    request: Request,
    session: Session,
    app: App,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    operator_error: str | None = None,
    operator_url: str | None = None,
) -> Response:
    """The app's page; with an error, the form that caused it filled in again (422)."""
    store = app_store(request)
    since, bucket = chart.window()
    timeline = await store.delivery_timeline(app.id, since=since, bucket=bucket)
    response = page(
        request,
        "app.html",
        session,
        app=app,
        endpoints=await store.list_endpoints(app.id),
        installations=await store.count_installations(app.id),
        chart=chart.build(timeline, since, bucket),
        form=form
        or {"event": "order_completed", "url": "", "rate_limit": "", "rate_limit_burst": ""},
        error=error,
        operator_url=(app.operator_url or "") if operator_url is None else operator_url,
        operator_error=operator_error,
    )
    if error or operator_error:
        response.status_code = 422
    return response


@router.post("/apps/{app_id}/operator-url")
async def set_operator_url(
    request: Request,
    app_id: str,
    csrf: Annotated[str, Form()],
    operator_url: Annotated[str, Form()] = "",
) -> Response:
    """Where hookline's own events about the app's endpoints go; empty: nowhere."""
    session = await signed_in(request)
    check_csrf(session, csrf)
    app = await app_for(request, session, app_id)
    url = operator_url.strip() or None
    try:
        if url is not None:
            check_url(url, allow_private=request.app.state.settings.allow_private_targets)
    except ValidationError as exc:
        return await _app_page(
            request, session, app, operator_error=exc.message, operator_url=operator_url
        )
    await app_store(request).set_operator_url(app_id, url)
    notice = "operator_url_saved" if url else "operator_url_removed"
    return RedirectResponse(f"/apps/{app_id}?notice={notice}#operator-url", status_code=303)


@router.post("/apps/{app_id}/installations")
async def install_user(
    request: Request,
    app_id: str,
    csrf: Annotated[str, Form()],
    # An empty field is a value the rule refuses with its own message, not a missing one.
    user_id: Annotated[str, Form()] = "",
) -> Response:
    session = await signed_in(request)
    check_csrf(session, csrf)
    session.caller.require_admin()
    USER_ID.check(user_id)
    await app_store(request).install(app_id, user_id)
    return RedirectResponse(f"/apps/{app_id}?notice=installed", status_code=303)


@router.post("/apps/{app_id}/webhooks")
async def add_webhook(
    request: Request,
    app_id: str,
    csrf: Annotated[str, Form()],
    event: Annotated[str, Form()] = "",
    url: Annotated[str, Form()] = "",
    rate_limit: Annotated[str, Form()] = "",
    rate_limit_burst: Annotated[str, Form()] = "",
) -> Response:
    """Selz's developer settings: one event (or all of them) and a callback URL, and
    optionally a rate limit."""
    session = await signed_in(request)
    check_csrf(session, csrf)
    app = await app_for(request, session, app_id)
    try:
        event_types = [WILDCARD] if event == WILDCARD else [check_event_type(event)]
        check_url(url, allow_private=request.app.state.settings.allow_private_targets)
        rate, burst = rate_fields(rate_limit, rate_limit_burst)
    except ValidationError as exc:
        form = {
            "event": event,
            "url": url,
            "rate_limit": rate_limit,
            "rate_limit_burst": rate_limit_burst,
        }
        return await _app_page(request, session, app, form=form, error=exc.message)
    charge(request, session.app_id, "new_endpoints")
    endpoint = await app_store(request).create_endpoint(
        app_id,
        url=url,
        event_types=event_types,
        timeout=10.0,
        rate_limit=rate,
        rate_limit_burst=burst,
    )
    return RedirectResponse(f"/endpoints/{endpoint.id}?notice=webhook_added", status_code=303)
