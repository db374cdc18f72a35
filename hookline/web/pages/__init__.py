"""The dashboard's pages, one module per group: ``signin``, ``apps``, ``endpoints``,
``deliveries`` and ``static``; ``common`` holds what they share. ``router`` has them all,
in this order (``/endpoints/{id}/rate-limit`` comes before ``/endpoints/{id}/{action}``
within its module)."""

from __future__ import annotations

from fastapi import APIRouter

from hookline.web.pages import apps, deliveries, endpoints, signin, static
from hookline.web.pages.common import HtmlRoute

router = APIRouter(include_in_schema=False, route_class=HtmlRoute)
for _group in (signin, apps, endpoints, deliveries, static):
    router.include_router(_group.router)
