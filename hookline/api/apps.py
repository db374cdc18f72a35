"""Apps, their keys, and the users who installed them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from hookline.api import schemas as s
from hookline.api.body import JsonRoute
from hookline.api.common import BODY, Auth, app_of, errors, store
from hookline.front.paging import DEFAULT_LIMIT, Cursor, Limit, by_id, decode, page
from hookline.rules import check_url
from hookline.store import App

router = APIRouter(route_class=JsonRoute)


@router.post(
    "/apps",
    status_code=201,
    response_model=s.AppCreated,
    responses=errors(403, *BODY),
    tags=["apps"],
)
async def create_app(body: s.AppIn, request: Request, who: Auth) -> dict[str, Any]:
    who.require_admin()
    if body.operator_url is not None:
        check_url(body.operator_url, allow_private=request.app.state.settings.allow_private_targets)
    app, api_key = await store(request).create_app(body.name, body.operator_url)
    return {**asdict(app), "api_key": api_key}


@router.get("/apps", response_model=s.AppList, tags=["apps"])
async def list_apps(
    request: Request, who: Auth, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """Every app for the admin, oldest first, a page at a time; just its own for an
    app's key."""
    after = decode(cursor)
    if who.app_id is not None:
        return {
            "data": [] if after else [await store(request).get_app(who.app_id)],
            "next_cursor": None,
        }
    rows = await store(request).list_apps(after=after, limit=limit + 1)
    return page(rows, limit, by_id)


@router.get("/apps/{app_id}", response_model=s.AppOut, responses=errors(403, 404), tags=["apps"])
async def get_app(app_id: str, request: Request, who: Auth) -> App:
    return await app_of(request, who, app_id)


@router.patch(
    "/apps/{app_id}", response_model=s.AppOut, responses=errors(403, 404, *BODY), tags=["apps"]
)
async def update_app(app_id: str, body: s.AppPatch, request: Request, who: Auth) -> Any:
    """Rename the app, or set or remove its operator URL (``null``)."""
    who.require_app(app_id)
    changes = body.model_dump(exclude_unset=True)
    url = changes.get("operator_url")
    if url is not None:
        check_url(url, allow_private=request.app.state.settings.allow_private_targets)
    if changes.get("name") is not None:
        await store(request).rename_app(app_id, changes["name"])
    if "operator_url" in changes:
        return await store(request).set_operator_url(app_id, url)
    return await store(request).get_app(app_id)


@router.delete(
    "/apps/{app_id}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404),
    tags=["apps"],
)
async def delete_app(app_id: str, request: Request, who: Auth) -> Response:
    """Delete the app with its installations, endpoints and delivery log."""
    who.require_admin()
    await store(request).delete_app(app_id)
    return Response(status_code=204)


@router.post(
    "/apps/{app_id}/rotate-key",
    response_model=s.AppOut,
    responses=errors(403, 404, 409, *BODY),
    tags=["apps"],
)
async def rotate_verification_key(
    app_id: str, request: Request, who: Auth, body: s.KeyRotationIn | None = None
) -> Any:
    """Start a verification-key rotation without a single rejected delivery.

    The answer shows the new key (``next_verification_key``) and ``key_switch_at``.
    Until then ``X-Selz-Signature`` stays on the current key and ``webhook-signature``
    carries both; add the new key to the receiver before the switch. 409 while a
    rotation is still in its grace period.
    """
    who.require_app(app_id)
    grace = body.grace_seconds if body else s.DEFAULT_GRACE_SECONDS
    return await store(request).rotate_verification_key(app_id, grace)


@router.post(
    "/apps/{app_id}/rotate-api-key",
    response_model=s.AppCreated,
    responses=errors(403, 404),
    tags=["apps"],
)
async def rotate_api_key(app_id: str, request: Request, who: Auth) -> dict[str, Any]:
    """A new API key, shown once; the old one stops working at once."""
    who.require_app(app_id)
    app, api_key = await store(request).rotate_api_key(app_id)
    return {**asdict(app), "api_key": api_key}


@router.post(
    "/apps/{app_id}/installations",
    status_code=201,
    response_model=s.InstallationOut,
    responses={
        200: {"model": s.InstallationOut, "description": "Already installed"},
        **errors(403, 404, *BODY),
    },
    tags=["installations"],
)
async def create_installation(
    app_id: str, body: s.InstallationIn, request: Request, who: Auth
) -> Any:
    who.require_admin()
    installation, created = await store(request).install(app_id, body.user_id)
    if not created:
        out = s.InstallationOut.model_validate(installation, from_attributes=True)
        return JSONResponse(out.model_dump(mode="json"), status_code=200)
    return installation


@router.get(
    "/apps/{app_id}/installations",
    response_model=s.InstallationList,
    responses=errors(403, 404),
    tags=["installations"],
)
async def list_installations(
    app_id: str, request: Request, who: Auth, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """The users who installed the app, oldest first, a page at a time."""
    await app_of(request, who, app_id)
    rows = await store(request).list_installations(app_id, after=decode(cursor), limit=limit + 1)
    return page(rows, limit, lambda row: (row.created_at, row.user_id))
