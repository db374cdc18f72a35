"""The address policy end to end: the real ``hookline serve`` never connects to loopback,
however an app spells it and whichever way the request would go out.

A raw TCP listener on 127.0.0.1 and ::1 counts every connection it accepts. Loopback
spellings are registered while the operator allows private targets, then the server
restarts without that (the operator turned it off, or rows got in some other way), so
the check on the socket is what stands between each URL and the listener. Over the API
(create and PATCH), the dashboard form and the CLI, the same spellings are refused at
registration. Then events are published, test notifications sent and disabled endpoints
probed: the listener sees 0 connections, and the attempt log and the probe log say the
policy refused each one. Only loopback is ever dialled here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.eventually import eventually
from tests.support.hookline_proc import Api, ServeProcess
from tests.support.listener import ConnectionCounter
from tests.support.receive_process import HOOKLINE, ROOT

FULLWIDTH = str.maketrans({str(d): chr(0xFF10 + d) for d in range(10)})
CIRCLED = str.maketrans({"0": "\u24ea", **{str(d): chr(0x2460 + d - 1) for d in range(1, 10)}})

#: Hosts the client connects to as loopback, each as yarl normalises it (and as the
#: sender would have dialled it before the address policy looked at the socket).
LOOPBACK_HOSTS = [
    "127.0.0.1",
    "127.0.0.1".translate(FULLWIDTH),
    "127\u30020\u30020\u30021",  # ideographic full stops
    "127\uff610\uff610\uff611",  # halfwidth ideographic full stops
    "127.0.0.1".translate(CIRCLED),
    "1\uff127.0.0.1",  # one fullwidth digit among ASCII ones
    "LocalHost",  # from /etc/hosts: names that need DNS would leave the machine
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
]
#: Refused at registration even where private targets are allowed: HTTP clients read
#: them differently (aiohttp refuses some, resolves others).
ODD_HOSTS = ["0x7f.1", "2130706433", "127.1", "0177.0.0.1", "127.0.0.1."]

SERVE_ENV = {
    # Endpoints failing for a second are disabled and then probed every 0.2 s.
    "HOOKLINE_DISABLE_AFTER": "1",
    "HOOKLINE_HEALTH_INTERVAL": "0.2",
    "HOOKLINE_PROBE_INTERVAL": "0.2",
    "HOOKLINE_RATE_TESTS": "off",
    "HOOKLINE_RATE_NEW_ENDPOINTS": "off",
}
REFUSED = "refused by the address policy"


async def test_no_spelling_of_loopback_is_ever_connected_to(tmp_path: Path) -> None:
    async with ConnectionCounter() as listener:
        urls = [f"http://{host}:{listener.port}/hook" for host in LOOPBACK_HOSTS]
        odd_urls = [f"http://{host}:{listener.port}/hook" for host in ODD_HOSTS]
        serve = ServeProcess(
            tmp_path / "sender.db", env={**SERVE_ENV, "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1"}
        )
        try:
            async with serve, serve.api() as api:
                app = await api.create_app("shop")
                await api.install(app["id"], "store-1")
                endpoints = [
                    await api.expect(
                        201, "POST", f"/api/v1/apps/{app['id']}/endpoints",
                        json={"url": url, "event_types": ["*"]}, token=app["api_key"],
                    )
                    for url in urls
                ]  # fmt: skip
                for url in odd_urls:
                    reply = await _register(api, app, url)
                    assert reply.status == 422 and "write 127.0.0.1" in str(reply.body), reply

            serve.env["HOOKLINE_ALLOW_PRIVATE_TARGETS"] = "0"
            async with serve, serve.api() as api:
                await _registration_refuses_every_spelling(serve, api, app, urls + odd_urls)
                await _dashboard_refuses(serve, app, urls[1])
                _cli_refuses(serve, app, urls[2])
                await _sending_refuses_every_spelling(serve, api, app, endpoints)
        finally:
            print(serve.log())
        print(f"{len(listener.accepted)} connections accepted")
        assert listener.accepted == []


async def _register(api: Api, app: dict[str, Any], url: str) -> Any:
    return await api.call(
        "POST",
        f"/api/v1/apps/{app['id']}/endpoints",
        json={"url": url, "event_types": ["*"]},
        token=app["api_key"],
    )


async def _registration_refuses_every_spelling(
    serve: ServeProcess, api: Api, app: dict[str, Any], urls: list[str]
) -> None:
    before = serve.counts()
    stored = await api.endpoints(app["id"])
    some_endpoint = stored[0]["id"]
    for url in urls:
        created = await _register(api, app, url)
        assert created.status == 422, (url, created)
        assert created.error_code == "forbidden_address", (url, created)
        assert "loopback" in created.body["error"]["message"], (url, created)
        changed = await api.call(
            "PATCH",
            f"/api/v1/apps/{app['id']}/endpoints/{some_endpoint}",
            json={"url": url},
            token=app["api_key"],
        )
        assert changed.status == 422 and changed.error_code == "forbidden_address", changed
    assert serve.counts() == before
    assert await api.endpoints(app["id"]) == stored


async def _dashboard_refuses(serve: ServeProcess, app: dict[str, Any], url: str) -> None:
    async with aiohttp.ClientSession(
        serve.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        async with http.get("/login") as page:
            login_csrf = _csrf(await page.text())
        async with http.post("/login", data={"key": app["api_key"], "csrf": login_csrf}) as r:
            assert r.status == 200, await r.text()
        async with http.get(f"/apps/{app['id']}") as page:
            csrf = _csrf(await page.text())
        before = serve.counts()
        async with http.post(
            f"/apps/{app['id']}/webhooks", data={"csrf": csrf, "event": "*", "url": url}
        ) as response:
            assert response.status == 422
            assert "which is loopback" in await response.text()
        assert serve.counts() == before


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]


def _cli_refuses(serve: ServeProcess, app: dict[str, Any], url: str) -> None:
    before = serve.counts()
    command = [HOOKLINE, "endpoints", "create", "--app", app["id"], "--url", url]
    done = subprocess.run(
        [*command, "--database", serve.database_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode != 0 and "which is loopback" in done.stdout + done.stderr, done
    assert serve.counts() == before


async def _sending_refuses_every_spelling(
    serve: ServeProcess, api: Api, app: dict[str, Any], endpoints: list[dict[str, Any]]
) -> None:
    await api.publish("order_completed", "store-1", {"id": 1})
    for endpoint in endpoints:
        await api.expect(
            202,
            "POST",
            f"/api/v1/apps/{app['id']}/endpoints/{endpoint['id']}/test",
            json={"event_type": "order_completed"},
            token=app["api_key"],
        )
    url_of = {e["id"]: e["url"] for e in endpoints}
    refused: dict[str, list[str]] = {}

    async def every_delivery_refused() -> bool:
        nonlocal refused
        rows = await api.deliveries(app["id"])
        refused = {}
        for row in rows:
            errors = [a["error"] for a in row["attempt_log"]]
            if errors and all(REFUSED in e for e in errors):
                refused.setdefault(row["endpoint_id"], []).append(errors[0])
        # Two deliveries per endpoint: the published event and the test notification.
        return len(rows) == 2 * len(endpoints) and all(
            len(refused.get(e["id"], [])) == 2 for e in endpoints
        )

    await eventually(
        every_delivery_refused,
        timeout=60,
        message=lambda: f"every delivery refused by the policy; refused so far: {refused}",
    )
    for endpoint_id, errors in refused.items():
        print(f"{url_of[endpoint_id]}: {errors[0]}")

    def every_probe_refused() -> bool:
        log = serve.log()
        return all(re.search(rf"probe of endpoint {e['id']}: .*{REFUSED}", log) for e in endpoints)

    await eventually(
        every_probe_refused, timeout=60, message="a refused probe of every disabled endpoint"
    )
