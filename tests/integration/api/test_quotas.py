"""Rate limits over real HTTP on loopback: failed authentication per client address
(API and dashboard sign-in share it) and each app's own limits on test notifications,
recover calls and new endpoints."""

from __future__ import annotations

import asyncio
import collections
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hookline.config import RateLimits
from hookline.ratelimit import Rate
from tests.support.api_server import ADMIN, running_api

HOUR = 3600.0


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(
        self, method: str, path: str, token: str = ADMIN, body: Any = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.http.request(
            method,
            self.base + "/api/v1" + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None, response

    async def ok(self, method: str, path: str, token: str = ADMIN, body: Any = None) -> Any:
        status, found, _ = await self.call(method, path, token, body)
        assert status < 300, (method, path, status, found)
        return found


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def assert_limited(status: int, body: Any, response: aiohttp.ClientResponse, what: str) -> None:
    assert status == 429, (status, body)
    assert body["error"]["code"] == "rate_limited"
    assert what in body["error"]["message"]
    assert int(response.headers["Retry-After"]) >= 1


async def sign_in(http: aiohttp.ClientSession, base: str, key: str) -> aiohttp.ClientResponse:
    async with http.get(base + "/login") as page:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf
    async with http.post(
        base + "/login", data={"key": key, "csrf": csrf[1]}, allow_redirects=False
    ) as response:
        await response.read()
        return response


async def test_failed_authentication_is_throttled_and_working_keys_still_answered(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    limits = RateLimits(auth_failures=Rate(5, HOUR))
    async with running_api(sqlite_url, deliver=False, rate_limits=limits) as base:
        api = Api(http, base)
        app = await api.ok("POST", "/apps", body={"name": "legit"})
        mine = f"/apps/{app['id']}"
        await api.ok("GET", mine, app["api_key"])  # the app's client at work
        for _ in range(20):  # successes never count
            await api.ok("GET", mine, app["api_key"])

        for n in range(5):
            status, _, _ = await api.call("GET", mine, f"hk_guess_{n}")
            assert status == 401
        status, body, response = await api.call("GET", mine, "hk_guess_5")
        assert_limited(status, body, response, "too many failed sign-ins")
        print("Retry-After after the burst:", response.headers["Retry-After"])

        # Meanwhile the keys that work from this address are answered as before.
        assert (await api.ok("GET", mine, app["api_key"]))["id"] == app["id"]
        await api.ok("GET", "/apps")
        # Guesses stay refused, for the API and for the dashboard's sign-in alike.
        for n in range(10):
            status, body, response = await api.call("GET", mine, f"hk_more_{n}")
            assert_limited(status, body, response, "HOOKLINE_RATE_AUTH_FAILURES")
        refused = await sign_in(http, base, "hk_through_the_dashboard")
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) >= 1
        # A key never used from here waits like a guess (answering it would tell a
        # guesser which guess was right); the admin's own session still signs in.
        other = await api.ok("POST", "/apps", body={"name": "other"})
        status, body, response = await api.call("GET", f"/apps/{other['id']}", other["api_key"])
        assert_limited(status, body, response, "too many failed sign-ins")
        assert (await sign_in(http, base, ADMIN)).status == 303

        # Another address (another loopback one here) is not held back by this one.
        elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=elsewhere) as other_http:
            status, _, _ = await Api(other_http, base).call("GET", mine, "hk_guess_elsewhere")
            assert status == 401
            await Api(other_http, base).ok("GET", f"/apps/{other['id']}", other["api_key"])


async def test_concurrent_guesses_get_no_more_than_the_burst(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    """A guess is counted before it is checked: many at once cannot all slip through the
    check before the first failure is recorded."""
    limits = RateLimits(auth_failures=Rate(5, HOUR))
    async with running_api(sqlite_url, deliver=False, rate_limits=limits) as base:
        api = Api(http, base)
        app = await api.ok("POST", "/apps", body={"name": "legit"})
        await api.ok("GET", f"/apps/{app['id']}", app["api_key"])
        statuses = await asyncio.gather(
            *(api.call("GET", "/apps", f"hk_guess_{n}") for n in range(60)),
            *(api.call("GET", f"/apps/{app['id']}", app["api_key"]) for _ in range(20)),
        )
        guesses = [status for status, _, _ in statuses[:60]]
        print("answers to 60 concurrent guesses:", collections.Counter(guesses))
        assert guesses.count(401) == 5 and guesses.count(429) == 55
        assert {status for status, _, _ in statuses[60:]} == {200}
        async with http.get(base + "/metrics") as response:
            assert 'hookline_rate_limited_total{limit="auth_failures"} 55.0' in (
                await response.text()
            )


async def test_dashboard_sign_in_failures_count_too(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    limits = RateLimits(auth_failures=Rate(3, HOUR))
    async with running_api(sqlite_url, deliver=False, rate_limits=limits) as base:
        await Api(http, base).ok("GET", "/apps")
        assert [(await sign_in(http, base, f"nope-{n}")).status for n in range(4)] == [
            401,
            401,
            401,
            429,
        ]
        status, body, response = await Api(http, base).call("GET", "/apps", "nope")
        assert_limited(status, body, response, "too many failed sign-ins")
        assert (await sign_in(http, base, ADMIN)).status == 303


async def test_each_app_has_its_own_limits_and_the_admin_none(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    limits = RateLimits(tests=Rate(3, HOUR), recovers=Rate(2, HOUR), new_endpoints=Rate(4, HOUR))
    async with running_api(sqlite_url, deliver=False, rate_limits=limits) as base:
        api = Api(http, base)
        a = await api.ok("POST", "/apps", body={"name": "A"})
        b = await api.ok("POST", "/apps", body={"name": "B"})
        hook = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}

        async def create(app: dict[str, Any], token: str) -> tuple[int, Any, Any]:
            return await api.call("POST", f"/apps/{app['id']}/endpoints", token, hook)

        for _ in range(4):
            assert (await create(a, a["api_key"]))[0] == 201
        assert_limited(*await create(a, a["api_key"]), "HOOKLINE_RATE_NEW_ENDPOINTS")
        listed = (await api.ok("GET", f"/apps/{a['id']}/endpoints"))["data"]
        assert len(listed) == 4  # unchanged
        assert (await create(b, b["api_key"]))[0] == 201  # B is not held back by A
        assert (await create(a, ADMIN))[0] == 201  # nor is the admin

        def path(app: dict[str, Any], endpoint: str, action: str) -> str:
            return f"/apps/{app['id']}/endpoints/{endpoint}/{action}"

        ep_a = listed[0]["id"]
        ep_b = (await api.ok("GET", f"/apps/{b['id']}/endpoints", b["api_key"]))["data"][0]["id"]
        test = {"event_type": "order_completed"}
        for _ in range(3):
            await api.ok("POST", path(a, ep_a, "test"), a["api_key"], test)
        assert_limited(
            *await api.call("POST", path(a, ep_a, "test"), a["api_key"], test),
            "test notifications",
        )
        await api.ok("POST", path(b, ep_b, "test"), b["api_key"], test)
        await api.ok("POST", path(a, ep_a, "test"), ADMIN, test)

        since = {"since": "2000-01-01T00:00:00Z"}
        for _ in range(2):
            await api.ok("POST", path(a, ep_a, "recover"), a["api_key"], since)
        assert_limited(
            *await api.call("POST", path(a, ep_a, "recover"), a["api_key"], since),
            "recover calls",
        )
        await api.ok("POST", path(b, ep_b, "recover"), b["api_key"], since)
        await api.ok("POST", path(a, ep_a, "recover"), ADMIN, since)

        deliveries = await api.ok("GET", f"/apps/{a['id']}/deliveries?endpoint_id={ep_a}")
        assert len(deliveries["data"]) == 4  # three by the app, one by the admin
        async with http.get(base + "/metrics") as response:
            metrics = await response.text()
        for limit in ("new_endpoints", "tests", "recovers"):
            assert f'hookline_rate_limited_total{{limit="{limit}"}} 1.0' in metrics


async def test_the_dashboard_counts_against_the_same_limits(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    limits = RateLimits(tests=Rate(2, HOUR), new_endpoints=Rate(1, HOUR))
    async with running_api(sqlite_url, deliver=False, rate_limits=limits) as base:
        api = Api(http, base)
        a = await api.ok("POST", "/apps", body={"name": "A"})
        endpoint = await api.ok(
            "POST",
            f"/apps/{a['id']}/endpoints",
            a["api_key"],
            {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
        )
        assert (await sign_in(http, base, a["api_key"])).status == 303
        async with http.get(f"{base}/endpoints/{endpoint['id']}") as page:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf
        statuses = []
        for _ in range(3):
            async with http.post(
                f"{base}/endpoints/{endpoint['id']}/test",
                data={"csrf": csrf[1], "event_type": "order_completed"},
                allow_redirects=False,
            ) as response:
                statuses.append(response.status)
                text = await response.text()
        assert statuses == [303, 303, 429]
        assert "too many test notifications" in text
        async with http.post(
            f"{base}/apps/{a['id']}/webhooks",
            data={"csrf": csrf[1], "event": "*", "url": "http://127.0.0.1:9/other"},
            allow_redirects=False,
        ) as response:
            assert response.status == 429, await response.text()
            assert int(response.headers["Retry-After"]) >= 1
