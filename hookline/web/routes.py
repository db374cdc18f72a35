"""The dashboard: server-rendered pages over the same store and the same rules as the API.

The admin token sees every app; an app's API key sees only its own app, exactly as on
``/api/v1``. Pages are plain HTML forms with POST-then-redirect, so they work without
scripts; one small static script reloads a page while its deliveries are in flight.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, FastAPI, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from hookline.events import (
    EVENT_DESCRIPTIONS,
    EVENT_TYPES,
    OPERATIONAL_EVENT_TYPES,
    WILDCARD,
    check_event_type,
    format_timestamp,
)
from hookline.exceptions import (
    Forbidden,
    HooklineError,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationError,
)
from hookline.front import paging
from hookline.front.access import authenticate
from hookline.front.quotas import retry_after_header
from hookline.front.services import charge, wake_engine
from hookline.front.services import store as app_store
from hookline.rules import (
    APP_NAME,
    INT64_MAX,
    RATE_BURST_MESSAGE,
    RATE_LIMIT_MESSAGE,
    USER_ID,
    check_rate_burst,
    check_rate_limit,
    check_url,
)
from hookline.samples import sample_data
from hookline.web import chart
from hookline.web.session import (
    ADMIN,
    COOKIE,
    LIFETIME,
    Session,
    SessionSigner,
    cookie_secure,
    credential_hash,
)

LOGIN_COOKIE = "hookline_login"
STATUSES = ("pending", "delivered", "failed")
PAGE_SIZE = 25
APPS_PER_PAGE = 50
#: Scripts and styles only from the dashboard's own /static; response bodies written by
#: endpoints are shown on these pages, so this is a second wall behind autoescaping.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTICES = {
    "test_sent": "Test notification queued; it shows below once the endpoint answers.",
    "retried": "Delivery queued to be sent again.",
    "enabled": "Endpoint enabled; its waiting deliveries go out now.",
    "disabled": "Endpoint disabled; new deliveries wait until it is enabled again.",
    "installed": "Installation recorded.",
    "webhook_added": "Webhook added.",
    "rate_limit_saved": "Rate limit saved; it holds from the next delivery on.",
    "operator_url_saved": "Operator URL saved: hookline's own events about this app's "
    "endpoints go there.",
    "operator_url_removed": "Operator URL removed: hookline sends this app no operational events.",
}
STATIC_TYPES = {"app.css": "text/css", "app.js": "text/javascript"}


def _format_time(value: Any) -> str:
    if value is None:
        return "—"
    return format_timestamp(float(value)).replace("T", " ") + " UTC"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("hookline.web", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["when"] = _format_time
    env.filters["loads"] = orjson.loads
    env.globals.update(
        event_types=EVENT_TYPES,
        operational_types=OPERATIONAL_EVENT_TYPES,
        descriptions=EVENT_DESCRIPTIONS,
        notices=NOTICES,
    )
    return env


templates = Jinja2Templates(env=_environment())


class _HtmlRoute(APIRoute):
    """Turns errors into pages (not the API's JSON) and adds the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except Unauthorized:
                # No valid session: the browser goes to the sign-in form.
                target = "/login?" + urlencode({"next": request.url.path})
                response = RedirectResponse(target, status_code=303)
                response.delete_cookie(COOKIE, path="/")
            except Forbidden:
                # Signed in, but as another app (or an app on an admin's page).
                response = _error(request, 403, "This page belongs to another app.")
            except NotFound as exc:
                response = _error(request, 404, exc.message)
            except RateLimited as exc:
                response = _error(request, 429, exc.message)
                response.headers["Retry-After"] = retry_after_header(exc.retry_after)
            except HooklineError as exc:
                response = _error(request, 422, exc.message)
            except RequestValidationError:
                response = _error(
                    request,
                    422,
                    "The form or the address was not understood; reload the page and try again.",
                )
            response.headers.update(SECURITY_HEADERS)
            return response

        return route


router = APIRouter(include_in_schema=False, route_class=_HtmlRoute)


def install(app: FastAPI) -> None:
    app.state.session_signer = SessionSigner()
    app.state.cookie_secure = cookie_secure()
    app.include_router(router)


def _error(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


# -- sessions ----------------------------------------------------------------------------


async def _session(request: Request) -> Session:
    """The signed-in caller, checked against the credentials as they are now."""
    signer: SessionSigner = request.app.state.session_signer
    cookie = request.cookies.get(COOKIE)
    session = signer.loads(cookie) if cookie else None
    if session is None:
        raise Unauthorized("no session; sign in")
    if session.is_admin:
        current = credential_hash(request.app.state.admin_token)
    else:
        try:
            current = (await app_store(request).get_app(session.subject))["api_key_hash"]
        except NotFound:
            raise Unauthorized("the app signed in as is gone; sign in") from None
    if not hmac.compare_digest(session.fingerprint, signer.fingerprint(current)):
        raise Unauthorized("the credential signed in with has changed; sign in")
    return session


def _check_csrf(session: Session, token: str) -> None:
    if not hmac.compare_digest(session.csrf.encode(), token.encode()):
        raise ValidationError("the form has expired; reload the page and try again")


async def _app_for(request: Request, session: Session, app_id: str) -> dict[str, Any]:
    session.caller.require_app(app_id)
    return await app_store(request).get_app(app_id)


async def _endpoint_for(request: Request, session: Session, endpoint_id: str) -> dict[str, Any]:
    endpoint = await app_store(request).get_endpoint(endpoint_id)
    if not session.caller.may_see(endpoint["app_id"]):
        # The same answer as a missing endpoint: another app's ids are not confirmed.
        raise NotFound(f"no endpoint with id {endpoint_id!r}")
    return endpoint


def _local(target: str | None, fallback: str) -> str:
    """Only same-site paths as redirect targets: no open redirect via ``next``."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return fallback


def _here(request: Request) -> str:
    """This page's address without its notice, for forms that come back to it."""
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "notice"])
    return request.url.path + (f"?{query}" if query else "")


def _page(request: Request, name: str, session: Session, **context: Any) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return templates.TemplateResponse(
        request, name, {"session": session, "notice": notice, **context}
    )


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request, "login.html", {"login_csrf": token, "next": _local(next, "/"), "error": None}
    )
    # Double-submit token: a form posted from another site cannot sign a victim in
    # under the attacker's key.
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        raise ValidationError("the sign-in form has expired; reload the page and try again")
    key = key.strip()
    subject: str | None = None
    if key:
        host = request.client.host if request.client else None
        who = await authenticate(request.app.state, host, key)
        if who is not None:
            subject = ADMIN if who.is_admin else who.app_id
    if subject is None:
        token = secrets.token_urlsafe(24)
        refused = templates.TemplateResponse(
            request,
            "login.html",
            {
                "login_csrf": token,
                "next": _local(next, "/"),
                "error": "That is neither the admin token nor an app's API key.",
            },
            status_code=401,
        )
        _set_cookie(request, refused, LOGIN_COOKIE, token, max_age=3600)
        return refused
    signer: SessionSigner = request.app.state.session_signer
    response = RedirectResponse(_local(next, "/"), status_code=303)
    session = signer.new(subject, credential_hash(key))
    _set_cookie(request, response, COOKIE, signer.dumps(session), LIFETIME)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()]) -> Response:
    _check_csrf(await _session(request), csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: float
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.app.state.cookie_secure or request.url.scheme == "https",
    )


def _rate_fields(rate_limit: str, burst: str) -> tuple[float | None, int]:
    """A rate limit as the forms give it: deliveries a second (empty: none), and a burst
    (empty: 1), held to the rules the API and the CLI use."""
    rate = None
    if rate_limit.strip():
        try:
            rate = check_rate_limit(float(rate_limit))
        except ValueError:
            raise ValidationError(RATE_LIMIT_MESSAGE) from None
    if not burst.strip():
        return rate, 1
    if not burst.strip().isascii() or not burst.strip().isdigit() or len(burst.strip()) > 6:
        raise ValidationError(RATE_BURST_MESSAGE)
    return rate, check_rate_burst(int(burst))


# -- apps --------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    session = await _session(request)
    target = "/apps" if session.is_admin else f"/apps/{session.subject}"
    return RedirectResponse(target, status_code=303)


@router.get("/apps")
async def apps_page(request: Request, cursor: str | None = None) -> Response:
    """The apps a page at a time, oldest first, with a link to the next page."""
    session = await _session(request)
    if not session.is_admin:
        return RedirectResponse(f"/apps/{session.subject}", status_code=303)
    store = app_store(request)
    found = paging.page(
        await store.list_apps(after=paging.decode(cursor), limit=APPS_PER_PAGE + 1),
        APPS_PER_PAGE,
        paging.by_id,
    )
    for app in found["data"]:
        app["endpoints"] = await store.list_endpoints(app["id"])
    more = found["next_cursor"] and "?" + urlencode({"cursor": found["next_cursor"]})
    return _page(request, "apps.html", session, apps=found["data"], more=more, created=None)


@router.post("/apps")
async def create_app(
    request: Request, csrf: Annotated[str, Form()], name: Annotated[str, Form()] = ""
) -> Response:
    session = await _session(request)
    _check_csrf(session, csrf)
    session.caller.require_admin()
    APP_NAME.check(name)
    app, api_key = await app_store(request).create_app(name)
    # Rendered, not redirected: the API key is shown this once and never stored.
    return _page(request, "app_created.html", session, app=app, api_key=api_key)


@router.get("/apps/{app_id}")
async def app_page(request: Request, app_id: str) -> Response:
    session = await _session(request)
    app = await _app_for(request, session, app_id)
    return await _app_page(request, session, app)


async def _app_page(
    request: Request,
    session: Session,
    app: dict[str, Any],
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    operator_error: str | None = None,
    operator_url: str | None = None,
) -> Response:
    """The app's page; with an error, the form that caused it filled in again (422)."""
    store = app_store(request)
    since, bucket = chart.window()
    timeline = await store.delivery_timeline(app["id"], since=since, bucket=bucket)
    response = _page(
        request,
        "app.html",
        session,
        app=app,
        endpoints=await store.list_endpoints(app["id"]),
        installations=await store.count_installations(app["id"]),
        chart=chart.build(timeline, since, bucket),
        form=form
        or {"event": "order_completed", "url": "", "rate_limit": "", "rate_limit_burst": ""},
        error=error,
        operator_url=(app.get("operator_url") or "") if operator_url is None else operator_url,
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
    session = await _session(request)
    _check_csrf(session, csrf)
    app = await _app_for(request, session, app_id)
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
    session = await _session(request)
    _check_csrf(session, csrf)
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
    session = await _session(request)
    _check_csrf(session, csrf)
    app = await _app_for(request, session, app_id)
    try:
        event_types = [WILDCARD] if event == WILDCARD else [check_event_type(event)]
        check_url(url, allow_private=request.app.state.settings.allow_private_targets)
        rate, burst = _rate_fields(rate_limit, rate_limit_burst)
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
    return RedirectResponse(f"/endpoints/{endpoint['id']}?notice=webhook_added", status_code=303)


# -- endpoints ---------------------------------------------------------------------------


@router.get("/endpoints/{endpoint_id}")
async def endpoint_page(request: Request, endpoint_id: str) -> Response:
    session = await _session(request)
    endpoint = await _endpoint_for(request, session, endpoint_id)
    store = app_store(request)
    app = await store.get_app(endpoint["app_id"])
    deliveries = await store.list_deliveries(
        endpoint["app_id"], endpoint_id=endpoint_id, limit=PAGE_SIZE
    )
    since, bucket = chart.window()
    timeline = await store.delivery_timeline(
        endpoint["app_id"], endpoint_id=endpoint_id, since=since, bucket=bucket
    )
    stats = await store.endpoint_stats(endpoint_id, since)
    subscribed = orjson.loads(endpoint["event_types"])
    return _page(
        request,
        "endpoint.html",
        session,
        app=app,
        endpoint=endpoint,
        subscribed=subscribed,
        test_event=subscribed[0] if subscribed != [WILDCARD] else "order_completed",
        deliveries=deliveries,
        chart=chart.build(timeline, since, bucket),
        stats=stats,
        in_flight=any(d["status"] == "pending" for d in deliveries),
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
    session = await _session(request)
    _check_csrf(session, csrf)
    await _endpoint_for(request, session, endpoint_id)
    rate, burst = _rate_fields(rate_limit, rate_limit_burst)
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
    session = await _session(request)
    _check_csrf(session, csrf)
    await _endpoint_for(request, session, endpoint_id)
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


# -- deliveries --------------------------------------------------------------------------


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
    session = await _session(request)
    app = await _app_for(request, session, app_id)
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
        older = "?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "before": rows[-1]["id"]}
        )
    return _page(
        request,
        "deliveries.html",
        session,
        app=app,
        endpoints=await app_store(request).list_endpoints(app_id),
        deliveries=rows,
        filters=filters,
        older=older,
        in_flight=any(d["status"] == "pending" for d in rows),
        back=_here(request),
    )


@router.post("/deliveries/{delivery_id}/retry")
async def retry(
    request: Request,
    delivery_id: Annotated[int, Path(ge=1, le=INT64_MAX)],
    csrf: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    session = await _session(request)
    _check_csrf(session, csrf)
    store = app_store(request)
    delivery = await store.get_delivery(delivery_id)
    if not session.caller.may_see(delivery["app_id"]):
        raise NotFound(f"no delivery with id {delivery_id}")
    await store.retry_deliveries([delivery_id])
    wake_engine(request)
    target = _local(next, f"/endpoints/{delivery['endpoint_id']}")
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}notice=retried", status_code=303)


# -- static ------------------------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_TYPES:
        raise NotFound(f"no static file {name!r}")
    body = resources.files("hookline.web").joinpath(f"static/{name}").read_bytes()
    return Response(body, media_type=STATIC_TYPES[name])
