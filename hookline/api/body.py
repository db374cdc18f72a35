"""Request bodies read by hookline's JSON rules instead of Python's ``json`` module.

Starlette's ``Request.json()`` uses ``json.loads``, which takes ``NaN``, ``Infinity`` and
``1e400`` (as floats that are later written as ``null``) and integers of any size.
Every /api/v1 route reads its body through ``hookline.rules.parse_json`` instead: such
bodies are refused with a message that says what is wrong, and nothing changes silently.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from hookline.api.errors import BodyRefused
from hookline.rules import InvalidJson, parse_json


class _RuledRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except InvalidJson as exc:
                raise BodyRefused(exc) from None
        return self._json


class JsonRoute(APIRoute):
    """An API route whose JSON body is parsed by hookline's rules."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_RuledRequest(request.scope, request.receive))

        return route
