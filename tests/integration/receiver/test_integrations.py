"""The examples in examples/receiver, each served for real: FastAPI (ASGI), Flask, Django.

Each takes Selz's example order twice (a duplicate) and sends one receipt email.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import uvicorn

from hookline.receiver import Receiver
from tests.conftest import free_port
from tests.support.django_settings import configure_django
from tests.support.eventually import eventually, eventually_sync
from tests.support.receiver import post, signed_webhook

ROOT = Path(__file__).resolve().parents[3]
# Selz's published example order (the public copy breaks off inside the first item).
SEED = ROOT / "tests/fixtures/order_payment_succeeded.example.json"


def _order() -> dict[str, object]:
    if SEED.exists():
        return dict(json.loads(SEED.read_text())["data"])
    from hookline.receiver.samples import SELZ_ORDER

    return SELZ_ORDER


@pytest.fixture(autouse=True)
def example_receiver(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The examples are run from a checkout, where ``examples`` is importable.
    monkeypatch.syspath_prepend(str(ROOT))
    basic = importlib.import_module("examples.receiver.basic")
    basic.receiver.configure(database=sqlite_url)
    basic.sent_emails.clear()
    yield


def _example() -> tuple[Receiver, list[str]]:
    basic = importlib.import_module("examples.receiver.basic")
    return basic.receiver, basic.sent_emails


def _webhook(*, standard: bool = True) -> tuple[dict[str, str], bytes]:
    key = _example()[0].verifier.keys[0]
    return signed_webhook(
        [key], event_type="order_payment_succeeded", data=_order(), standard=standard
    )


async def test_fastapi_app_with_the_endpoint_and_the_lifespan() -> None:
    app = importlib.import_module("examples.receiver.fastapi_app").app

    sent_emails = _example()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done())
    base = f"http://127.0.0.1:{server.config.port}"
    try:
        async with aiohttp.ClientSession() as session:
            request = _webhook()
            assert await post(session, base + "/webhooks/selz", *request) == (
                200,
                {"status": "accepted"},
            )
            assert (await post(session, base + "/webhooks/selz", *request))[1] == {
                "status": "duplicate"
            }
            # Signed only with X-Selz-Signature: refused, as the receiver does by default.
            selz_only = await post(session, base + "/webhooks/selz", *_webhook(standard=False))
            assert selz_only[0] == 401
            async with session.get(base + "/") as response:
                assert await response.json() == {"app": "shop"}
            await eventually(lambda: len(sent_emails) == 1)
    finally:
        server.should_exit = True
        await task
    assert sent_emails == ["support@selz.com: receipt for XZHQ59WA"]


def test_flask_view() -> None:
    app = importlib.import_module("examples.receiver.flask_app").app

    sent_emails = _example()[1]
    view = app.view_functions["hookline_webhook"]
    client = app.test_client()
    try:
        headers, body = _webhook()
        first = client.post("/webhooks/selz", data=body, headers=headers)
        assert (first.status_code, first.json) == (200, {"status": "accepted"})
        again = client.post("/webhooks/selz", data=body, headers=headers)
        assert again.json == {"status": "duplicate"}
        forged = client.post("/webhooks/selz", data=body.replace(b"John", b"Eve"), headers=headers)
        assert forged.status_code == 401
        big = client.post("/webhooks/selz", data=b"x" * (2 << 20), headers=headers)
        assert big.status_code == 413
        selz_headers, selz_body = _webhook(standard=False)
        selz_only = client.post("/webhooks/selz", data=selz_body, headers=selz_headers)
        assert selz_only.status_code == 401
        eventually_sync(lambda: len(sent_emails) == 1)
    finally:
        view.background.stop()
    assert sent_emails == ["support@selz.com: receipt for XZHQ59WA"]


def test_django_view_is_csrf_exempt_and_post_only() -> None:
    configure_django()
    from django.test import Client
    from django.urls import resolve

    sent_emails = _example()[1]
    view = resolve("/webhooks/selz").func
    client = Client(enforce_csrf_checks=True)
    try:
        headers, body = _webhook()
        first = client.post(
            "/webhooks/selz", data=body, content_type="application/json", headers=headers
        )
        assert (first.status_code, first.json()) == (200, {"status": "accepted"})
        again = client.post(
            "/webhooks/selz", data=body, content_type="application/json", headers=headers
        )
        assert again.json() == {"status": "duplicate"}
        assert client.get("/webhooks/selz").status_code == 405
        selz_headers, selz_body = _webhook(standard=False)
        selz_only = client.post(
            "/webhooks/selz", data=selz_body, content_type="application/json", headers=selz_headers
        )
        assert selz_only.status_code == 401
        eventually_sync(lambda: len(sent_emails) == 1)
    finally:
        view.background.stop()
    assert sent_emails == ["support@selz.com: receipt for XZHQ59WA"]
