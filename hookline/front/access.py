"""Who is calling, and what they may see: one rule for the API and the dashboard.

The operator's admin token sees every app; an app's API key sees its own app only. The
API checks a bearer token on every request (``hookline.api.auth``), the dashboard a
signed session made from the same credentials (``hookline.web.session``); both end in
a ``Caller`` and ask it the same questions.

Failed attempts count against the client's address (``Quotas.auth``): past a burst,
further attempts from there are refused with 429 before being checked, except with a
key that already succeeded from there (see ``hookline.ratelimit.FailureThrottle``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from hookline.exceptions import Forbidden
from hookline.front.quotas import Quotas
from hookline.ratelimit import client_key


@dataclass(frozen=True, slots=True)
class Caller:
    """The admin (``app_id`` None) or the app that owns the key."""

    app_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.app_id is None

    def may_see(self, app_id: str) -> bool:
        """The one access rule: the admin sees every app, an app's key its own."""
        return self.is_admin or self.app_id == app_id

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this route needs the admin token, not an app's key")

    def require_app(self, app_id: str) -> None:
        """Admin, or the key of ``app_id`` itself; another app's key: ``Forbidden``."""
        if not self.may_see(app_id):
            raise Forbidden("this API key belongs to another app")


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
        found = Caller(app_id=app.id)
    if found is None:
        quotas.auth.failed(attempt)
    else:
        quotas.auth.succeeded(attempt)
    return found
