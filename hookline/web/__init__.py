"""The dashboard: server-rendered pages over the same store and the same rules as the API.

The admin token sees every app; an app's API key sees only its own app, exactly as on
``/api/v1`` (both ask ``hookline.front.access``). Pages are plain HTML forms with
POST-then-redirect, so they work without scripts; one small static script reloads a
page while its deliveries are in flight. ``hookline.server`` installs the dashboard
beside the API; the two do not import each other.
"""

from __future__ import annotations

from fastapi import FastAPI

from hookline.web.pages import router
from hookline.web.session import SessionSigner, cookie_secure

__all__ = ["install", "router"]


def install(app: FastAPI) -> None:
    """Add the dashboard's pages to ``app``, with a session signer of its own."""
    app.state.session_signer = SessionSigner()
    app.state.cookie_secure = cookie_secure()
    app.include_router(router)
