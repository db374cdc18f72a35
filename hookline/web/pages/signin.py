"""Signing in and out: the form, the check of a key (the admin token or an app's
API key, as the API takes them) and the session cookie it leaves."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from hookline.exceptions import ValidationError
from hookline.front.access import authenticate
from hookline.web.pages.common import (
    HtmlRoute,
    check_csrf,
    local_path,
    set_cookie,
    signed_in,
    templates,
)
from hookline.web.session import ADMIN, COOKIE, LIFETIME, SessionSigner, credential_hash

LOGIN_COOKIE = "hookline_login"

router = APIRouter(route_class=HtmlRoute)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request, "login.html", {"login_csrf": token, "next": local_path(next, "/"), "error": None}
    )
    # Double-submit token: a form posted from another site cannot sign a victim in
    # under the attacker's key.
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
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
                "next": local_path(next, "/"),
                "error": "That is neither the admin token nor an app's API key.",
            },
            status_code=401,
        )
        set_cookie(request, refused, LOGIN_COOKIE, token, max_age=3600)
        return refused
    signer: SessionSigner = request.app.state.session_signer
    response = RedirectResponse(local_path(next, "/"), status_code=303)
    session = signer.new(subject, credential_hash(key))
    set_cookie(request, response, COOKIE, signer.dumps(session), LIFETIME)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(await signed_in(request), csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
