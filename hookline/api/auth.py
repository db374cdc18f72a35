"""Who is calling: the operator's admin token, or one app's API key."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from hookline.api.errors import ApiError


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


async def caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send 'Authorization: Bearer <admin token or app API key>'"
        )
    token = token.strip()
    state = request.app.state
    if hmac.compare_digest(token.encode(), state.admin_token.encode()):
        return Caller(app_id=None)
    app = await state.store.app_for_api_key(token)
    if app is None:
        raise ApiError(
            401, "unauthorized", "the token is neither the admin token nor an app's API key"
        )
    return Caller(app_id=app["id"])
