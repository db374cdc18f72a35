"""The dashboard's own stylesheet and script (the pages load nothing from elsewhere)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from hookline.exceptions import NotFound
from hookline.web.pages.common import HtmlRoute

STATIC_TYPES = {"app.css": "text/css", "app.js": "text/javascript"}

router = APIRouter(route_class=HtmlRoute)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_TYPES:
        raise NotFound(f"no static file {name!r}")
    body = resources.files("hookline.web").joinpath(f"static/{name}").read_bytes()
    return Response(body, media_type=STATIC_TYPES[name])
