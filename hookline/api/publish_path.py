"""``POST /api/v1/events`` and ``/events/batch`` without FastAPI's per-request machinery.

The publish routes carry nearly all of the API's traffic, and FastAPI's handling of a
request (matching it against every route, solving the dependencies, the exception and
exit-stack layers) cost more CPU than validating and publishing the event itself. This
middleware answers an admin's well-formed publish by itself, with the same models, the
same helpers and the same answer as the routes in ``events.py``. Anything else (an
app's key, another content type, a body that is not JSON or breaks a rule) goes on to
those routes with the body already read, and they answer it as they always did; they
also stay what ``/openapi.json`` documents.

It sits inside ``RequireAuth`` (which found the caller) and ``BodyLimit`` (which bounds
what is read here).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as InvalidModel
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline.api import errors
from hookline.api import schemas as s
from hookline.api.auth import CALLER
from hookline.api.events import event_out, new_event, publish, traceparent_of
from hookline.exceptions import HooklineError
from hookline.front.access import Caller
from hookline.rules import InvalidJson, parse_json


class PublishPath:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.routes: dict[str, type[BaseModel]] = {
            f"{prefix}/events": s.EventIn,
            f"{prefix}/events/batch": s.EventBatchIn,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if model is None or scope["method"] != "POST" or not _by_admin(scope):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            await self.app(scope, receive, send)
            return
        try:
            body = await _read(receive)
        except ClientDisconnect:
            return
        try:
            given = model.model_validate(parse_json(body))
        except (InvalidJson, InvalidModel):
            # The route says what is wrong, in its own words.
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            content = await _publish(scope["app"].state, given, headers)
        except HooklineError as error:
            await errors.response_for(error)(scope, receive, send)
            return
        await Response(content, status_code=202, media_type="application/json")(
            scope, receive, send
        )


def _by_admin(scope: Scope) -> bool:
    who = scope.get("state", {}).get(CALLER)
    return isinstance(who, Caller) and who.is_admin


async def _publish(state: Any, given: BaseModel, headers: Headers) -> bytes:
    """What ``publish_event`` or ``publish_events`` does, and its answer as FastAPI
    writes it (the response model's JSON)."""
    parent = traceparent_of(headers)
    max_bytes = state.settings.max_event_bytes
    if isinstance(given, s.EventBatchIn):
        events = [new_event(e, max_bytes, parent) for e in given.events]
        published = await publish(state, events, parent)
        return (
            s.EventBatchOut.model_validate({"events": [event_out(p) for p in published]})
            .model_dump_json()
            .encode()
        )
    assert isinstance(given, s.EventIn)
    (published_one,) = await publish(state, [new_event(given, max_bytes, parent)], parent)
    return s.EventOut.model_validate(event_out(published_one)).model_dump_json().encode()


async def _read(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the route: the body read here, then whatever the client sends."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
