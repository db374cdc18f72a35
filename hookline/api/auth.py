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

from hookline.api.errors import ApiError
from hookline.api.quotas import Quotas
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


async def caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send 'Authorization: Bearer <admin token or app API key>'"
        )
    host = request.client.host if request.client else None
    who = await authenticate(request.app.state, host, token.strip())
    if who is None:
        raise ApiError(
            401, "unauthorized", "the token is neither the admin token nor an app's API key"
        )
    return who
