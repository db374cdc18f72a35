"""Who is calling: the operator's admin token, or one app's API key.

Failed attempts count against the client's address (``Quotas.auth``): past a burst,
further attempts from there are refused with 429 before being checked, except with a
key that already succeeded from there (see ``hookline.ratelimit.FailureThrottle``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from hookline.api import errors
from hookline.api.errors import ApiError
from hookline.api.quotas import Quotas
from hookline.exceptions import HooklineError
from hookline.ratelimit import client_key


@dataclass(frozen=True, slots=True)
class Caller:
    """The admin (``app_id`` None) or the app that owns the key."""

    app_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.app_id is None

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ApiError(403, "forbidden", "this route needs the admin token, not an app's key")

    def require_app(self, app_id: str) -> None:
        """Admin, or the key of ``app_id`` itself; another app's key gets 403."""
        if not self.is_admin and self.app_id != app_id:
            raise ApiError(403, "forbidden", "this API key belongs to another app")


async def authenticate(state: Any, host: str | None, token: str) -> Caller | None:
    """The caller ``token`` belongs to, or None; ``state`` is the application's state
    and ``host`` the client's address. Raises ``RateLimited`` while the address is
    throttled for failing too often (shared by the API and the dashboard's sign-in)."""
    quotas: Quotas = state.quotas
    attempt = quotas.sign_in(client_key(host), token)
    # An error of the store (a 503) ends here and leaves the attempt as it was counted:
    # it proved nothing either way.
    found: Caller | None = None
    if hmac.compare_digest(token.encode(), state.admin_token.encode()):
        found = Caller(app_id=None)
    elif (app := await state.store.app_for_api_key(token)) is not None:
        found = Caller(app_id=app["id"])
    if found is None:
        quotas.auth.failed(attempt)
    else:
        quotas.auth.succeeded(attempt)
    return found


async def bearer(state: Any, host: str | None, authorization: str) -> Caller:
    """The caller an ``Authorization: Bearer`` header names; 401 if none.

    One rule for the ``caller`` dependency and for ``RequireAuth`` (which applies it
    before any body is read).
    """
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send 'Authorization: Bearer <admin token or app API key>'"
        )
    who = await authenticate(state, host, token.strip())
    if who is None:
        raise ApiError(
            401, "unauthorized", "the token is neither the admin token nor an app's API key"
        )
    return who


#: Where ``RequireAuth`` leaves the caller, in the request's ``scope["state"]``.
CALLER = "hookline.caller"


async def caller(request: Request) -> Caller:
    """Who is calling: found by ``RequireAuth`` before the body was read."""
    found = request.scope.get("state", {}).get(CALLER)
    if isinstance(found, Caller):
        return found
    host = request.client.host if request.client else None
    return await bearer(request.app.state, host, request.headers.get("authorization", ""))


class RequireAuth:
    """Authenticate every request under ``prefix`` from its headers, before the body.

    FastAPI reads and parses a route's body before it runs the route's dependencies, so
    the ``caller`` dependency alone would let anyone without a token make the server
    read and parse a body as large as the limit. After a refusal the body is never
    parsed or kept; the server drains a bounded amount of it (``ServerSettings.drain_bytes``)
    so that the client reads the 401 rather than a reset connection.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == self.prefix or path.startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client = scope.get("client")
        try:
            who = await bearer(
                scope["app"].state, client[0] if client else None, headers.get("authorization", "")
            )
        except HooklineError as error:
            await errors.response_for(error)(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER] = who
        await self.app(scope, receive, send)
