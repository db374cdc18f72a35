"""Refuse oversized request bodies before reading them whole.

Starlette has no body-size limit of its own; this ASGI middleware counts bytes as they
arrive and answers 413 once a request passes its route's limit (by Content-Length up
front, or while streaming when there is none). Each route gets the small default limit
unless ``routes`` names a larger one: only the batch route needs 16 MiB.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline.exceptions import BodyTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, default: int, routes: Mapping[str, int]) -> None:
        self.app = app
        self.default = default
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(scope["path"].rstrip("/"), self.default)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _refuse(send, _too_large(limit))
                return
        seen = 0
        started = exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _too_large(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The app may turn the failed read into an answer of its own (FastAPI
                # answers 400 "error parsing the body"); send the 413 in its place.
                if not started and message["type"] == "http.response.start":
                    started = True
                    await _refuse(send, _too_large(limit))
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as error:
            if not exceeded:
                raise
            if not started:
                await _refuse(send, error)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"the request body is larger than this route's limit of {limit} bytes; "
        "send less (a batch: fewer events)"
    )


async def _refuse(send: Send, error: BodyTooLarge) -> None:
    """413; the server drains what is left of the body without keeping it."""
    body = orjson.dumps({"error": {"code": error.code, "message": error.message}})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
