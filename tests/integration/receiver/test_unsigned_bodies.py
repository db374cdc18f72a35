"""A request from someone without the key costs the receiver next to nothing: refused from
its headers before the body is read, or after one HMAC over the raw bytes, and never
parsed as JSON. A body over the limit is refused before it is read whole."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from hookline import signing
from hookline.events import Envelope, parse_envelope
from hookline.receiver import Event, Receiver
from hookline.receiver.asgi import WebhookEndpoint
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.receiver import KEY, serving, signed_webhook

MIB = 1024 * 1024


def big_body() -> bytes:
    """Close to 1 MiB of ``[]`` inside ``data``: what costs a JSON parser the most per byte."""
    _, body = signed_webhook(data={"id": "x", "blob": [[] for _ in range(MIB // 3 - 100)]})
    assert MIB - 1024 < len(body) <= MIB
    return body


def forged_headers() -> dict[str, str]:
    """Well-formed signature headers with a fresh timestamp, made without the key."""
    return {
        "Content-Type": "application/json",
        "X-Selz-Signature": "A" * 43 + "=",
        "webhook-id": "msg_forged",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + "A" * 43 + "=",
    }


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Sizes of the bodies the verifier gave to the JSON parser."""
    sizes: list[int] = []

    def spy(body: bytes | str) -> Envelope:
        sizes.append(len(body))
        return parse_envelope(body)

    monkeypatch.setattr(signing, "parse_envelope", spy)
    yield sizes


async def post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=io.BytesIO(body), headers=headers) as response:
        return response.status, await response.json(content_type=None)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_unsigned_and_forged_bodies_never_reach_the_json_parser(
    sqlite_url: str, parsed: list[int], session: aiohttp.ClientSession
) -> None:
    receiver = Receiver(keys=[KEY], database=sqlite_url)
    handled: list[Event] = []
    receiver.on("*")(handled.append)
    body = big_body()
    unsigned = {"Content-Type": "application/json"}
    async with serving(receiver, free_port()) as url:
        for headers in (unsigned, forged_headers()):
            for _ in range(5):
                status, answer = await post(session, url, headers, body)
                assert (status, answer["error"]["code"]) == (401, "bad_signature")
        # Over the limit, with a Content-Length or chunked (no length): 413.
        too_big = body + b" " * MIB
        assert (await post(session, url, forged_headers(), too_big))[0] == 413

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(too_big), 64 * 1024):
                yield too_big[start : start + 64 * 1024]

        async with session.post(url, data=chunks(), headers=forged_headers()) as response:
            assert response.status == 413
        assert parsed == []
        genuine = signed_webhook()
        assert (await post(session, url, *genuine))[0] == 200
        assert parsed == [len(genuine[1])]
        await eventually(lambda: len(handled) == 1)


@pytest.mark.slow
async def test_what_a_refusal_costs_in_cpu(sqlite_url: str, parsed: list[int]) -> None:
    """Printed, not asserted: CPU per refusal of a forged 1 MiB body, beside what parsing it
    (which the receiver did first before) costs."""
    body = big_body()
    rounds = 20
    figures: dict[str, float] = {}
    started = time.process_time()
    for _ in range(rounds):
        orjson.loads(body)
    figures["parsing it (the old first step)"] = (time.process_time() - started) / rounds
    receiver = Receiver(keys=[KEY], database=sqlite_url)
    async with receiver.running(workers=False):
        cases = {"no signature": {"Content-Type": "application/json"}, "forged": forged_headers()}
        for name, headers in cases.items():
            started = time.process_time()
            for _ in range(rounds):
                assert (await receiver.receive(headers, body)).status == 401
            figures[f"refusing it, {name}"] = (time.process_time() - started) / rounds
    print()
    for name, seconds in figures.items():
        print(f"  1 MiB body, {name}: {seconds * 1000:.2f} ms CPU")
    assert parsed == []


class _Body:
    """An ASGI ``receive`` that hands out a body in chunks and counts how much was read."""

    def __init__(self, body: bytes, chunk: int = 64 * 1024) -> None:
        self.parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.read = 0

    async def __call__(self) -> dict[str, Any]:
        part = self.parts.pop(0)
        self.read += len(part)
        return {"type": "http.request", "body": part, "more_body": bool(self.parts)}


async def _call(
    receiver: Receiver, headers: dict[str, str], receive: _Body
) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await WebhookEndpoint(receiver)(scope, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"], orjson.loads(sent[1]["body"])


async def test_the_endpoint_refuses_from_the_headers_without_reading_the_body(
    sqlite_url: str,
) -> None:
    receiver = Receiver(keys=[KEY], database=sqlite_url, max_body_bytes=256 * 1024)
    body = b"x" * (200 * 1024)
    async with receiver.running(workers=False):
        for headers, status in [
            ({}, 401),  # no signature at all
            ({"X-Selz-Signature": "A" * 43 + "="}, 401),  # no body signature
            ({**forged_headers(), "webhook-timestamp": "1"}, 401),  # stale
            ({**forged_headers(), "Content-Length": str(300 * 1024)}, 413),  # declared too big
        ]:
            receive = _Body(body)
            assert (await _call(receiver, headers, receive))[0] == status
            assert receive.read == 0
        # A forged signature needs the body for its HMAC: read, refused, never parsed.
        receive = _Body(body)
        assert (await _call(receiver, forged_headers(), receive))[0] == 401
        assert receive.read == len(body)
        # A chunked body is cut off at the limit, not read whole.
        receive = _Body(b"x" * (2 * MIB))
        assert (await _call(receiver, forged_headers(), receive))[0] == 413
        assert 256 * 1024 < receive.read <= 256 * 1024 + 64 * 1024


async def test_selz_only_mode_checks_the_headers_before_it_parses(
    sqlite_url: str, parsed: list[int]
) -> None:
    """Without a body signature the Selz signature needs the body's timestamp and token, so
    this mode parses what it is sent; only after the size limit and the header checks."""
    receiver = Receiver(keys=[KEY], database=sqlite_url, require_standard=False)
    async with receiver.running(workers=False):
        assert (await receiver.receive({}, big_body())).status == 401
        assert (await receiver.receive({"X-Selz-Signature": "junk"}, big_body())).status == 401
        assert parsed == []
        headers, body = signed_webhook(standard=False)
        assert (await receiver.receive(headers, body)).status == 200
        assert parsed == [len(body)]
    await asyncio.sleep(0)
