"""What every page of the dashboard shares: the templates, the error pages and
security headers of every route (``HtmlRoute``), and the checks of who is signed in and
what they may see (``signed_in``, ``app_for``, ``endpoint_for``: the access rule of
``hookline.front.access``)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from hookline.events import (
    EVENT_DESCRIPTIONS,
    EVENT_TYPES,
    OPERATIONAL_EVENT_TYPES,
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
from hookline.front.quotas import retry_after_header
from hookline.front.services import store as app_store
from hookline.rules import (
    RATE_BURST_MESSAGE,
    RATE_LIMIT_MESSAGE,
    check_rate_burst,
    check_rate_limit,
)
from hookline.store import App, Endpoint
from hookline.web.session import COOKIE, Session, SessionSigner, credential_hash

#: Deliveries on a page (an endpoint's, an app's).
PAGE_SIZE = 25
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
    env.globals.update(
        event_types=EVENT_TYPES,
        operational_types=OPERATIONAL_EVENT_TYPES,
        descriptions=EVENT_DESCRIPTIONS,
        notices=NOTICES,
    )
    return env


templates = Jinja2Templates(env=_environment())


class HtmlRoute(APIRoute):
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
                response = error_page(request, 403, "This page belongs to another app.")
            except NotFound as exc:
                response = error_page(request, 404, exc.message)
            except RateLimited as exc:
                response = error_page(request, 429, exc.message)
                response.headers["Retry-After"] = retry_after_header(exc.retry_after)
            except HooklineError as exc:
                response = error_page(request, 422, exc.message)
            except RequestValidationError:
                response = error_page(
                    request,
                    422,
                    "The form or the address was not understood; reload the page and try again.",
                )
            response.headers.update(SECURITY_HEADERS)
            return response

        return route


def error_page(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


# -- sessions ----------------------------------------------------------------------------


async def signed_in(request: Request) -> Session:
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
            current = (await app_store(request).get_app(session.subject)).api_key_hash
        except NotFound:
            raise Unauthorized("the app signed in as is gone; sign in") from None
    if not hmac.compare_digest(session.fingerprint, signer.fingerprint(current)):
        raise Unauthorized("the credential signed in with has changed; sign in")
    return session


def check_csrf(session: Session, token: str) -> None:
    if not hmac.compare_digest(session.csrf.encode(), token.encode()):
        raise ValidationError("the form has expired; reload the page and try again")


async def app_for(request: Request, session: Session, app_id: str) -> App:
    session.caller.require_app(app_id)
    return await app_store(request).get_app(app_id)


async def endpoint_for(request: Request, session: Session, endpoint_id: str) -> Endpoint:
    endpoint = await app_store(request).get_endpoint(endpoint_id)
    if not session.caller.may_see(endpoint.app_id):
        # The same answer as a missing endpoint: another app's ids are not confirmed.
        raise NotFound(f"no endpoint with id {endpoint_id!r}")
    return endpoint


def local_path(target: str | None, fallback: str) -> str:
    """Only same-site paths as redirect targets: no open redirect via ``next``."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return fallback


def here(request: Request) -> str:
    """This page's address without its notice, for forms that come back to it."""
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "notice"])
    return request.url.path + (f"?{query}" if query else "")


def page(request: Request, name: str, session: Session, **context: Any) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return templates.TemplateResponse(
        request, name, {"session": session, "notice": notice, **context}
    )


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: float) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.app.state.cookie_secure or request.url.scheme == "https",
    )


def rate_fields(rate_limit: str, burst: str) -> tuple[float | None, int]:
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
