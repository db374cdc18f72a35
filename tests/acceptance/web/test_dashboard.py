"""The dashboard in a real headless Chromium against a real ``hookline serve``.

Sign in with an app's API key, add a webhook the way Selz's developer settings do (an
event and a callback URL), send a test notification and watch it arrive at a loopback
receiver and show as delivered, with its status code and response body; then make one
fail and retry it from the page. Screenshots of each step go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hookline.signing import selz_signature
from tests.conftest import free_port
from tests.support.eventually import eventually, eventually_sync
from tests.support.receive_process import HOOKLINE, ROOT, listening

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN = "dashboard-admin-5e1b7d3f9a2c6e0b4d8f"
SHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture
def sender(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "HOOKLINE_ADMIN_TOKEN": ADMIN,
        "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1",
        # One attempt per delivery: a refused test notification ends as failed at once,
        # so the page can retry it without waiting out a backoff.
        "HOOKLINE_RETRY_SCHEDULE": "0",
    }
    database = f"sqlite:///{tmp_path}/sender.db"
    proc = subprocess.Popen(
        [HOOKLINE, "serve", "--database", database, "--port", str(port)],
        cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    eventually_sync(
        lambda: listening(port) or proc.poll() is not None, message="hookline serve to listen"
    )
    assert proc.poll() is None, "hookline serve exited"
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


class Receiver:
    """A loopback endpoint that records what it gets and answers as told."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if self.status == 200:
            return web.json_response({"received": True})
        return web.Response(status=self.status, text="receiver is down for maintenance")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    target.url = f"http://127.0.0.1:{port}/webhooks"
    yield target
    await runner.cleanup()


async def _new_app(sender: str) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.post(f"{sender}/api/v1/apps", json={"name": "Acme Apps"}) as response:
            assert response.status == 201, await response.text()
            app: dict[str, str] = await response.json()
    return app


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; scripts/services installs it")
        pytest.skip(f"{CHROMIUM} is missing; scripts/services installs it")


async def test_add_webhook_send_test_see_it_delivered_and_retry(
    sender: str, receiver: Receiver
) -> None:
    _require_chromium()
    from playwright.async_api import async_playwright, expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    app = await _new_app(sender)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)

            # Signing in with the app's key lands on that app's own page.
            await page.goto(sender + "/")
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await page.screenshot(path=SHOTS / "01-sign-in.png")
            await page.get_by_label("Admin token or API key").fill(app["api_key"])
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Acme Apps")).to_be_visible()

            # Add a webhook: an event and a callback URL.
            await page.get_by_label("Event").select_option("order_completed")
            await page.get_by_label("Callback URL").fill(receiver.url)
            await page.screenshot(path=SHOTS / "02-add-webhook.png", full_page=True)
            await page.get_by_role("button", name="Add webhook").click()
            await expect(page.locator("h1")).to_have_text(receiver.url)
            await expect(page.get_by_text("Webhook added.")).to_be_visible()

            # Send a test notification; the page refreshes itself until it is delivered.
            await page.get_by_label("Event").select_option("order_completed")
            await page.get_by_role("button", name="Send test notification").click()
            first = page.locator("tbody.delivery").first
            await expect(first).to_have_attribute("data-status", "delivered")
            await expect(first.locator("tr").first.locator(".badge")).to_have_text("delivered")
            await first.locator("summary").click()
            attempt = first.locator("table.attempts tr").nth(1)
            await expect(attempt.locator("td.code")).to_have_text("200")
            await expect(attempt.locator("pre.body")).to_contain_text('"received": true')
            await page.screenshot(path=SHOTS / "03-test-delivered.png", full_page=True)

            headers, body = receiver.requests[0]
            assert b'"event_type":"order_completed"' in body
            timestamp = re.search(rb'"timestamp":"([^"]+)"', body)
            token = re.search(rb'"token":"([^"]+)"', body)
            assert timestamp and token
            expected = selz_signature(
                app["verification_key"], timestamp[1].decode(), token[1].decode()
            )
            assert headers["X-Selz-Signature"] == expected

            # A refused one ends as failed, with the receiver's answer on the page...
            receiver.status = 500  # a 503 would pace the endpoint, not fail the delivery
            await page.reload()
            await page.get_by_role("button", name="Send test notification").click()
            failed = page.locator("tbody.delivery").first
            await expect(failed).to_have_attribute("data-status", "failed")
            await failed.locator("summary").click()
            await expect(failed.locator("td.code").first).to_have_text("500")
            await expect(failed.locator("pre.body").first).to_contain_text("maintenance")
            await page.screenshot(path=SHOTS / "04-test-failed.png", full_page=True)

            # ...and a retry from the page delivers it, same token, one more attempt.
            receiver.status = 200
            failed_id = await failed.get_attribute("id")
            await failed.get_by_role("button", name="Retry").click()
            await expect(page.get_by_text("Delivery queued to be sent again.")).to_be_visible()
            retried = page.locator(f"tbody#{failed_id}")
            await expect(retried).to_have_attribute("data-status", "delivered")
            await retried.locator("summary").click()
            await expect(retried.locator("table.attempts tr")).to_have_count(3)  # head + 2
            await page.screenshot(path=SHOTS / "05-retried.png", full_page=True)
            tokens = [re.search(rb'"token":"([^"]+)"', b)[1] for _, b in receiver.requests[1:]]  # type: ignore[index]
            assert len(tokens) == 2 and tokens[0] == tokens[1]

            # The app page charts what happened.
            await page.get_by_role("link", name="Acme Apps").click()
            await expect(page.locator("figure.chart figcaption")).to_contain_text("2 delivered")
            await page.screenshot(path=SHOTS / "06-app.png", full_page=True)
        finally:
            await browser.close()


async def test_a_rate_limit_is_set_changed_and_removed_and_the_pace_shows(
    sender: str, receiver: Receiver
) -> None:
    _require_chromium()
    from playwright.async_api import async_playwright, expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    app = await _new_app(sender)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            await page.goto(sender + "/")
            await page.get_by_label("Admin token or API key").fill(app["api_key"])
            await page.get_by_role("button", name="Sign in").click()

            # A webhook with a rate limit, from the add-webhook form.
            await page.get_by_label("Callback URL").fill(receiver.url)
            await page.get_by_label("Rate limit, deliveries a second").fill("2")
            await page.get_by_label("Burst: at once").fill("3")
            await page.get_by_role("button", name="Add webhook").click()
            await expect(page.locator("#rate-limit")).to_have_text("2 a second, up to 3 at once")
            await expect(page.locator("#pace")).to_have_text("not slowed down")

            # Changed on the endpoint's page, then removed.
            await page.get_by_label("Deliveries a second").fill("0.5")
            await page.get_by_label("Burst", exact=True).fill("1")
            await page.get_by_role("button", name="Save rate limit").click()
            await expect(page.get_by_text("Rate limit saved")).to_be_visible()
            await expect(page.locator("#rate-limit")).to_have_text("0.5 a second")
            await page.screenshot(path=SHOTS / "07-rate-limit.png", full_page=True)
            await page.get_by_label("Deliveries a second").fill("")
            await page.get_by_role("button", name="Save rate limit").click()
            await expect(page.locator("#rate-limit")).to_have_text("none")

            # A value the rules refuse is refused with their message, and nothing changes.
            await page.goto(page.url.split("?")[0])
            await page.get_by_label("Burst", exact=True).fill("5000")
            await page.get_by_label("Burst", exact=True).evaluate("e => e.removeAttribute('max')")
            await page.get_by_role("button", name="Save rate limit").click()
            await expect(page.get_by_text("rate_limit_burst is a whole number")).to_be_visible()
            await page.go_back()
            await page.reload()
            await expect(page.locator("#rate-limit")).to_have_text("none")

            # The endpoint answers 429: the page shows it slowed down, read-only.
            receiver.status = 429
            await page.get_by_role("button", name="Send test notification").click()
            pace = page.locator("#pace")

            async def paced() -> bool:
                await page.reload()
                return "slowed down after" in (await pace.text_content() or "")

            await eventually(paced, timeout=30, interval=0.2, message="the pace after 429s")
            await expect(pace).to_contain_text("s between requests")
            await page.screenshot(path=SHOTS / "08-paced.png", full_page=True)
            assert receiver.requests  # the 429s did come from the sender
        finally:
            await browser.close()


async def test_an_operator_url_set_on_the_app_page_hears_of_a_failed_delivery(
    sender: str, receiver: Receiver
) -> None:
    _require_chromium()
    from playwright.async_api import async_playwright, expect

    from hookline.signing import Verifier

    SHOTS.mkdir(parents=True, exist_ok=True)
    app = await _new_app(sender)
    dead = f"http://127.0.0.1:{free_port()}/webhooks"  # nothing listens: fails at once
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            await page.goto(sender + "/")
            await page.get_by_label("Admin token or API key").fill(app["api_key"])
            await page.get_by_role("button", name="Sign in").click()

            # The operator URL, on the app's page: kept as the app's operational endpoint.
            await page.get_by_label("Operator URL").fill(receiver.url)
            await page.get_by_role("button", name="Save operator URL").click()
            await expect(page.get_by_text("Operator URL saved")).to_be_visible()
            await expect(page.get_by_label("Operator URL")).to_have_value(receiver.url)
            row = page.locator("table.endpoints tr", has_text=receiver.url)
            await expect(row.locator(".badge").first).to_have_text("operational")
            await page.screenshot(path=SHOTS / "09-operator-url.png", full_page=True)

            # A webhook whose test notification fails for good (one attempt here)...
            await page.get_by_label("Callback URL").fill(dead)
            await page.get_by_role("button", name="Add webhook").click()
            await page.get_by_role("button", name="Send test notification").click()
            await expect(page.locator("tbody.delivery").first).to_have_attribute(
                "data-status", "failed"
            )

            # ...is told to the operator URL, signed with the app's key, and logged.
            await page.goto(f"{sender}/apps/{app['id']}/deliveries?event_type=delivery.failed")
            told = page.locator("tbody.delivery").first
            await expect(told).to_have_attribute("data-status", "delivered")
            await expect(told).to_contain_text("delivery.failed")
            await page.screenshot(path=SHOTS / "10-delivery-failed-told.png", full_page=True)
            ((headers, body),) = receiver.requests
            envelope = Verifier(keys=(app["verification_key"],)).verify(headers, body)
            assert envelope.event_type == "delivery.failed"
            assert envelope.data["url"] == dead and envelope.data["user_id"] == "hookline-test"

            # Emptied, the operator URL is gone with its endpoint.
            await page.goto(f"{sender}/apps/{app['id']}")
            await page.get_by_label("Operator URL").fill("")
            await page.get_by_role("button", name="Save operator URL").click()
            await expect(page.get_by_text("Operator URL removed")).to_be_visible()
            await expect(page.locator("table.endpoints")).not_to_contain_text(receiver.url)
        finally:
            await browser.close()
