"""The receiver over ASGI: a Starlette app, or one endpoint to add to your own app.

Standalone (what ``hookline receive`` serves)::

    app = receiver.asgi_app()            # POST /webhooks, workers run in the lifespan

In FastAPI or Starlette, add the endpoint and run the receiver in your lifespan::

    @asynccontextmanager
    async def lifespan(app):
        async with receiver.running():
            yield

    app = FastAPI(lifespan=lifespan)
    app.add_route("/webhooks", webhook_endpoint(receiver), methods=["POST"])
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookline.receiver.intake import too_large

if TYPE_CHECKING:
    from hookline.receiver._receiver import Receiver

Endpoint = Callable[[Request], Awaitable[Response]]
_JSON = "application/json"


def webhook_endpoint(receiver: Receiver) -> Endpoint:
    """A Starlette/FastAPI endpoint that verifies, stores and acknowledges one webhook."""
    limit_of = receiver.intake

    async def endpoint(request: Request) -> Response:
        limit = limit_of.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _answer(too_large(limit).status, too_large(limit).body)
        body = await _read_limited(request, limit)
        if body is None:
            return _answer(too_large(limit).status, too_large(limit).body)
        receipt = await receiver.receive(request.headers, body)
        return _answer(receipt.status, receipt.body)

    return endpoint


def create_app(receiver: Receiver, path: str = "/webhooks") -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with receiver.running():
            yield

    routes = [Route(path, webhook_endpoint(receiver), methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` (a chunked upload has no length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type=_JSON)
