"""The receiver over ASGI: an app of its own, or one endpoint to add to your app.

Standalone (what ``hookline receive`` serves; mount it anywhere an ASGI app goes)::

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

from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from hookline.receiver import stages
from hookline.receiver.intake import too_large

if TYPE_CHECKING:
    from hookline.receiver._receiver import Receiver


class WebhookEndpoint:
    """A raw ASGI endpoint for ``POST /webhooks``.

    It skips Starlette's Request and Response objects: this is the receiver's hot path,
    and at thousands of requests a second their cost is a visible share of each one.
    Starlette routes to it like to any ASGI app.
    """

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        marks = stages.begin()
        intake = self._receiver.intake
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        # Refused from the headers (too large, signature headers missing or stale): the
        # body is never read.
        receipt = intake.precheck(headers)
        if receipt is None:
            body = await _body(receive, intake.max_body_bytes)
            if body is None:
                receipt = too_large(intake.max_body_bytes)
            else:
                if marks is not None:
                    marks.read = stages.clock()
                receipt = await self._receiver.receive(headers, body, marks)
        await send(
            {
                "type": "http.response.start",
                "status": receipt.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(receipt.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": receipt.body})
        if marks is not None and stages.recorder is not None:
            stages.recorder.record(marks, stages.clock())


def webhook_endpoint(receiver: Receiver) -> WebhookEndpoint:
    """The endpoint to add to a Starlette or FastAPI app (``app.add_route``)."""
    return WebhookEndpoint(receiver)


class ReceiverApp:
    """The standalone app: ``POST <path>`` and the lifespan that runs the workers.

    A plain ASGI class rather than a Starlette app, because it has one route and
    Starlette's router and middleware would cost every webhook more than everything
    else the HTTP layer does.
    """

    def __init__(self, receiver: Receiver, path: str = "/webhooks", *, workers: bool = True):
        self._receiver = receiver
        self._path = path
        self._workers = workers
        self._endpoint = WebhookEndpoint(receiver)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] != self._path:
                await _plain(send, 404, b"not found")
            elif scope["method"] != "POST":
                await _plain(send, 405, b"method not allowed", [(b"allow", b"POST")])
            else:
                await self._endpoint(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            await self._receiver.start(workers=self._workers)
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self._receiver.stop()
        await send({"type": "lifespan.shutdown.complete"})


def create_app(receiver: Receiver, path: str = "/webhooks", *, workers: bool = True) -> ReceiverApp:
    return ReceiverApp(receiver, path, workers=workers)


async def _plain(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` (a chunked upload has no length)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
