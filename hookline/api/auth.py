"""Who is calling the API: an ``Authorization: Bearer`` header with the operator's admin
token or one app's API key, checked as ``hookline.front.access`` says.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from hookline.api import errors
from hookline.exceptions import HooklineError, Unauthorized
from hookline.front.access import Caller, authenticate


async def bearer(state: Any, host: str | None, authorization: str) -> Caller:
    """The caller an ``Authorization: Bearer`` header names; 401 if none.

    One rule for the ``caller`` dependency and for ``RequireAuth`` (which applies it
    before any body is read).
    """
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <admin token or app API key>'")
    who = await authenticate(state, host, token.strip())
    if who is None:
        raise Unauthorized("the token is neither the admin token nor an app's API key")
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
