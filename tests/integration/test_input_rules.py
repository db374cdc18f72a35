"""One set of input rules behind every front door, on SQLite and PostgreSQL.

The same bad app names, user ids, URLs and event types go through the REST API (HTTP),
the dashboard's forms (HTTP, signed in, with the CSRF token) and the ``hookline``
commands (click): each door refuses each value with the rule's own message, and no row
is written. Then the inputs that used to give a 500 or change silently: NaN, Infinity
and 1e400 in event data, integers beyond 64 bits, nesting too deep, the same event_id
twice in a batch, times and ids beyond any range, NUL characters.
"""

from __future__ import annotations

import asyncio
import html
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from click.testing import CliRunner

from hookline import rules
from hookline.cli import main
from hookline.config import EngineSettings
from hookline.events import EVENT_TYPES
from tests.support.api_server import ADMIN, running_api

AUTH = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Site:
    base: str
    database: str
    app_id: str
    http: aiohttp.ClientSession  # the API, as the admin
    web: aiohttp.ClientSession  # the dashboard, signed in as the admin
    csrf: str


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]


@pytest.fixture
async def site(database_url: str) -> AsyncIterator[Site]:
    settings = EngineSettings(allow_private_targets=False)
    async with (
        running_api(database_url, deliver=False, settings=settings) as base,
        aiohttp.ClientSession(base, headers=AUTH) as http,
        aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as web,
    ):
        async with http.post("/api/v1/apps", json={"name": "shop"}) as response:
            app = await response.json()
        async with web.get("/login") as response:
            login_csrf = _csrf(await response.text())
        async with web.post("/login", data={"key": ADMIN, "csrf": login_csrf}) as response:
            csrf = _csrf(await response.text())
        yield Site(base, database_url, app["id"], http, web, csrf)


TABLES = ("apps", "installations", "endpoints", "events", "deliveries")


async def _rows(database: str) -> dict[str, int]:
    """Rows per table, read with the database's own driver."""
    if database.startswith("sqlite"):
        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    conn = await asyncpg.connect(database)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
    finally:
        await conn.close()


def _cli(database: str, *args: str) -> tuple[int, str]:
    result = CliRunner(env={"HOOKLINE_ALLOW_PRIVATE_TARGETS": "0"}).invoke(
        main, [*args, "--database", database]
    )
    return result.exit_code, result.output


BAD_NAMES = ["", " shop", "shop ", "sh\x00op", "tab\there", "x" * 201]
BAD_USERS = ["", "a b", "ü", "user\x00", "x" * 256, "semi;colon"]
BAD_URLS = [
    ("ftp://hooks.example.com/x", "must start with https:// or http://"),
    ("http://hooks.example.com/a b", rules.URL.message),
    ("http://hooks.exa\x00mple.com/", rules.URL.message),
    ("http://hooks.example.com:99999/", "Port out of range"),
    ("http://127.0.0.1:9000/hook", "HOOKLINE_ALLOW_PRIVATE_TARGETS=1"),
    ("https://hooks.example.com/a\u2028b", rules.URL.message),  # a line separator
]


async def _through_every_door(
    site: Site,
    message: str,
    api: tuple[str, dict[str, Any]],
    form: tuple[str, dict[str, str]],
    cli: list[str],
) -> None:
    before = await _rows(site.database)
    async with site.http.post(api[0], json=api[1]) as response:
        body = await response.json()
        assert response.status == 422, body
        assert message in body["error"]["message"], body
    async with site.web.post(form[0], data={**form[1], "csrf": site.csrf}) as response:
        page = html.unescape(await response.text())
        assert response.status == 422, page
        assert message in page, page
    code, output = await asyncio.to_thread(_cli, site.database, *cli)
    assert code != 0 and message in output, output
    assert await _rows(site.database) == before


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_app_names(site: Site, name: str) -> None:
    await _through_every_door(
        site,
        rules.APP_NAME.message,
        ("/api/v1/apps", {"name": name}),
        ("/apps", {"name": name}),
        ["apps", "create", name],
    )


@pytest.mark.parametrize("user_id", BAD_USERS)
async def test_user_ids(site: Site, user_id: str) -> None:
    await _through_every_door(
        site,
        rules.USER_ID.message,
        (f"/api/v1/apps/{site.app_id}/installations", {"user_id": user_id}),
        (f"/apps/{site.app_id}/installations", {"user_id": user_id}),
        ["apps", "install", site.app_id, user_id],
    )


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
async def test_endpoint_urls(site: Site, url: str, message: str) -> None:
    await _through_every_door(
        site,
        message,
        (f"/api/v1/apps/{site.app_id}/endpoints", {"url": url, "event_types": ["*"]}),
        (f"/apps/{site.app_id}/webhooks", {"url": url, "event": "*"}),
        ["endpoints", "create", "--app", site.app_id, "--url", url],
    )


async def test_event_types(site: Site) -> None:
    url = "https://hooks.example.com/x"
    await _through_every_door(
        site,
        "unknown event type 'order_refunded'",
        (f"/api/v1/apps/{site.app_id}/endpoints", {"url": url, "event_types": ["order_refunded"]}),
        (f"/apps/{site.app_id}/webhooks", {"url": url, "event": "order_refunded"}),
        ["endpoints", "create", "--app", site.app_id, "--url", url, "--event", "order_refunded"],
    )


async def test_good_values_pass_every_door(site: Site) -> None:
    """The rules refuse what they must and no more: one good value through each door."""
    async with site.http.post("/api/v1/apps", json={"name": "Ünïcode shop"}) as response:
        assert response.status == 201
    async with site.web.post("/apps", data={"name": "Web shop", "csrf": site.csrf}) as response:
        assert response.status == 200
    code, output = await asyncio.to_thread(_cli, site.database, "apps", "create", "CLI shop")
    assert code == 0, output
    assert (await _rows(site.database))["apps"] == 4
    # A host outside ASCII is judged as the client reads it (xn--bcher-kva.example).
    url = "https://b\u00fccher.example/hook"
    endpoint = {"url": url, "event_types": ["*"]}
    async with site.http.post(f"/api/v1/apps/{site.app_id}/endpoints", json=endpoint) as response:
        assert response.status == 201, await response.text()
        assert (await response.json())["url"] == url


# -- what used to be a 500 or a silent change --------------------------------------------


async def _publish_raw(site: Site, body: bytes, path: str = "/api/v1/events") -> Any:
    headers = {"Content-Type": "application/json"}
    async with site.http.post(path, data=body, headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("1e400", "too large for a 64-bit float"),
        ("-1e400", "too large for a 64-bit float"),
        (str(2**63), "does not fit in a 64-bit integer"),
        (str(-(2**63) - 1), "does not fit in a 64-bit integer"),
        (str(2**64), "does not fit in a 64-bit integer"),
    ],
)
async def test_numbers_beyond_json_are_refused_not_stored_as_null(
    site: Site, number: str, message: str
) -> None:
    before = await _rows(site.database)
    body = f'{{"event_type": "order_completed", "user_id": "u1", "data": {{"total": {number}}}}}'
    status, answer = await _publish_raw(site, body.encode())
    assert status == 422, answer
    assert message in answer["error"]["message"]
    assert await _rows(site.database) == before


async def test_the_largest_integers_are_kept_exactly(site: Site) -> None:
    data = {"max": 2**63 - 1, "min": -(2**63), "id": "x" * 19 + "1234567890123456789"}
    async with site.http.post(
        "/api/v1/events", json={"event_type": "order_completed", "user_id": "u1", "data": data}
    ) as response:
        assert response.status == 202
        event = await response.json()
    async with site.http.get(f"/api/v1/events/{event['id']}") as response:
        assert (await response.json())["data"] == data


async def test_nesting_too_deep_says_so(site: Site) -> None:
    deep = "[" * 300 + "]" * 300
    body = f'{{"event_type": "order_completed", "user_id": "u1", "data": {{"x": {deep}}}}}'
    status, answer = await _publish_raw(site, body.encode())
    assert status == 422
    assert f"nests deeper than {rules.MAX_DATA_DEPTH} levels" in answer["error"]["message"]
    deeper = "[" * 2000 + "]" * 2000
    status, answer = await _publish_raw(site, deeper.encode())
    assert status == 422
    assert f"nests deeper than {rules.MAX_BODY_DEPTH} levels" in answer["error"]["message"]


async def test_nul_in_event_data_is_kept(site: Site) -> None:
    """Event data is JSON text: a NUL in a string is an escape, stored and sent as is."""
    data = {"note": "a\x00b"}
    async with site.http.post(
        "/api/v1/events", json={"event_type": "order_completed", "user_id": "u1", "data": data}
    ) as response:
        assert response.status == 202, await response.text()
        event = await response.json()
    async with site.http.get(f"/api/v1/events/{event['id']}") as response:
        assert (await response.json())["data"] == data


def _event(event_id: str, **data: Any) -> dict[str, Any]:
    return {"event_type": "order_completed", "user_id": "u1", "event_id": event_id, "data": data}


async def test_the_same_event_twice_in_a_batch(site: Site) -> None:
    events = [_event("evt-1", total=5), _event("evt-2"), _event("evt-1", total=5)]
    async with site.http.post("/api/v1/events/batch", json={"events": events}) as response:
        assert response.status == 202
        answer = (await response.json())["events"]
    assert [e["id"] for e in answer] == ["evt-1", "evt-2", "evt-1"]
    assert [e["duplicate"] for e in answer] == [False, False, True]
    assert (await _rows(site.database))["events"] == 2

    before = await _rows(site.database)
    events = [_event("evt-3", total=5), _event("evt-3", total=6)]
    async with site.http.post("/api/v1/events/batch", json={"events": events}) as response:
        body = await response.json()
        assert response.status == 409, body
        assert "evt-3" in body["error"]["message"]
    assert await _rows(site.database) == before


async def _endpoint(site: Site) -> str:
    async with site.http.post(
        f"/api/v1/apps/{site.app_id}/endpoints",
        json={"url": "https://hooks.example.com/x", "event_types": ["*"]},
    ) as response:
        assert response.status == 201, await response.text()
        endpoint_id: str = (await response.json())["id"]
        return endpoint_id


@pytest.mark.parametrize("since", ["1e300", "-1e20", "Infinity", "-1", "253402300800"])
async def test_recover_since_beyond_any_time(site: Site, since: str) -> None:
    endpoint_id = await _endpoint(site)
    status, answer = await _publish_raw(
        site,
        b'{"since": %s}' % since.encode(),
        f"/api/v1/apps/{site.app_id}/endpoints/{endpoint_id}/recover",
    )
    assert 400 <= status < 500, answer


async def test_ids_beyond_64_bits(site: Site) -> None:
    huge = "99999999999999999999"
    async with site.http.get(f"/api/v1/apps/{site.app_id}/deliveries/{huge}") as response:
        assert response.status == 422
    async with site.http.post(f"/api/v1/apps/{site.app_id}/deliveries/{huge}/retry") as response:
        assert response.status == 422
    async with site.web.get(f"/apps/{site.app_id}/deliveries?before={huge}") as response:
        assert response.status == 422
    async with site.web.post(f"/deliveries/{huge}/retry", data={"csrf": site.csrf}) as response:
        assert response.status == 422
    code, output = await asyncio.to_thread(_cli, site.database, "deliveries", "show", huge)
    assert code == 2 and "is not in the range" in output, output


@pytest.mark.parametrize("path", ["/api/v1/apps/app%00x", "/api/v1/events/evt%00x"])
async def test_nul_in_an_id_of_a_path(site: Site, path: str) -> None:
    async with site.http.get(path) as response:
        assert 400 <= response.status < 500


async def test_event_types_in_the_document_are_one_component(site: Site) -> None:
    async with site.http.get("/openapi.json") as response:
        document = await response.text()
    assert document.count('"enum":["' + EVENT_TYPES[0]) == 1
    assert document.count("#/components/schemas/EventType") >= 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"total": NaN}', "NaN is not a JSON number"),
        ('{"total": 1e400}', "too large for a 64-bit float"),
        ('{"total": 9223372036854775808}', "does not fit in a 64-bit integer"),
    ],
)
async def test_event_data_from_the_cli(site: Site, data: str, message: str) -> None:
    before = await _rows(site.database)
    args = ["events", "publish", "--type", "order_completed", "--user", "u1", "--data", data]
    code, output = await asyncio.to_thread(_cli, site.database, *args)
    assert code != 0 and message in output, output
    assert await _rows(site.database) == before


# -- an endpoint's rate limit ------------------------------------------------------------

HOOK = "https://hooks.example.com/x"


@pytest.mark.parametrize("rate", ["0", "-1", "0.0001", "10001"])
async def test_rate_limits(site: Site, rate: str) -> None:
    await _through_every_door(
        site,
        rules.RATE_LIMIT_MESSAGE,
        (
            f"/api/v1/apps/{site.app_id}/endpoints",
            {"url": HOOK, "event_types": ["*"], "rate_limit": float(rate)},
        ),
        (f"/apps/{site.app_id}/webhooks", {"url": HOOK, "event": "*", "rate_limit": rate}),
        ["endpoints", "create", "--app", site.app_id, "--url", HOOK, f"--rate-limit={rate}"],
    )


@pytest.mark.parametrize("burst", ["0", "1001"])
async def test_rate_limit_bursts(site: Site, burst: str) -> None:
    await _through_every_door(
        site,
        rules.RATE_BURST_MESSAGE,
        (
            f"/api/v1/apps/{site.app_id}/endpoints",
            {"url": HOOK, "event_types": ["*"], "rate_limit": 5, "rate_limit_burst": int(burst)},
        ),
        (
            f"/apps/{site.app_id}/webhooks",
            {"url": HOOK, "event": "*", "rate_limit": "5", "rate_limit_burst": burst},
        ),
        ["endpoints", "create", "--app", site.app_id, "--url", HOOK, "--rate-limit-burst", burst],
    )


async def _endpoint(site: Site, **settings: Any) -> dict[str, Any]:
    body = {"url": HOOK, "event_types": ["*"], **settings}
    async with site.http.post(f"/api/v1/apps/{site.app_id}/endpoints", json=body) as response:
        assert response.status == 201, await response.text()
        endpoint: dict[str, Any] = await response.json()
        return endpoint


async def _get(site: Site, endpoint_id: str) -> dict[str, Any]:
    path = f"/api/v1/apps/{site.app_id}/endpoints/{endpoint_id}"
    async with site.http.get(path) as response:
        endpoint: dict[str, Any] = await response.json()
        return endpoint


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_limit", "0", rules.RATE_LIMIT_MESSAGE),
        ("rate_limit", "twenty", rules.RATE_LIMIT_MESSAGE),
        ("rate_limit", "1e400", rules.RATE_LIMIT_MESSAGE),
        ("rate_limit_burst", "0", rules.RATE_BURST_MESSAGE),
        ("rate_limit_burst", "2.5", rules.RATE_BURST_MESSAGE),
    ],
)
async def test_a_bad_change_of_the_limit_changes_nothing(
    site: Site, field: str, value: str, message: str
) -> None:
    endpoint = await _endpoint(site, rate_limit=5, rate_limit_burst=2)
    path = f"/api/v1/apps/{site.app_id}/endpoints/{endpoint['id']}"
    as_json = {field: float(value)} if value[0].isdigit() else {field: value}
    async with site.http.patch(path, json=as_json) as response:
        assert response.status == 422, await response.text()
    form = {"rate_limit": "5", "rate_limit_burst": "2", field: value, "csrf": site.csrf}
    async with site.web.post(f"/endpoints/{endpoint['id']}/rate-limit", data=form) as response:
        page = html.unescape(await response.text())
        assert response.status == 422 and message in page, page
    option = "--" + field.replace("_", "-")
    code, output = await asyncio.to_thread(
        _cli, site.database, "endpoints", "update", endpoint["id"], f"{option}={value}"
    )
    assert code != 0, output
    shown = await _get(site, endpoint["id"])
    assert (shown["rate_limit"], shown["rate_limit_burst"]) == (5, 2)


async def test_a_limit_is_shown_and_changed_through_every_door(site: Site) -> None:
    endpoint = await _endpoint(site, rate_limit=20, rate_limit_burst=5)
    assert (endpoint["rate_limit"], endpoint["rate_limit_burst"]) == (20, 5)
    # Its pace (after 429 or 503 answers) is shown beside it, read-only.
    assert (endpoint["pace"], endpoint["paused_until"]) == (0, None)
    path = f"/api/v1/apps/{site.app_id}/endpoints/{endpoint['id']}"
    async with site.http.patch(path, json={"rate_limit": 0.5}) as response:
        changed = await response.json()
        assert (changed["rate_limit"], changed["rate_limit_burst"]) == (0.5, 5), changed
    async with site.http.patch(path, json={"pace": 3}) as response:
        assert response.status == 422  # read-only
    async with site.http.patch(path, json={"rate_limit": None}) as response:
        assert (await response.json())["rate_limit"] is None

    form = {"rate_limit": "7", "rate_limit_burst": "2", "csrf": site.csrf}
    async with site.web.post(f"/endpoints/{endpoint['id']}/rate-limit", data=form) as response:
        page = await response.text()
        assert response.status == 200, page
        assert "7 a second, up to 2 at once" in page
        assert "not slowed down" in page
    assert (await _get(site, endpoint["id"]))["rate_limit"] == 7

    code, output = await asyncio.to_thread(
        _cli, site.database, "endpoints", "update", endpoint["id"], "--rate-limit", "3"
    )
    assert code == 0 and "3/s, burst 2" in output, output
    code, output = await asyncio.to_thread(
        _cli, site.database, "endpoints", "update", endpoint["id"], "--rate-limit", "off"
    )
    assert code == 0, output
    assert (await _get(site, endpoint["id"]))["rate_limit"] is None
    code, output = await asyncio.to_thread(
        _cli, site.database, "endpoints", "create", "--app", site.app_id, "--url", HOOK,
        "--rate-limit", "0.5", "--rate-limit-burst", "4",
    )  # fmt: skip
    assert code == 0 and "0.5/s, burst 4" in output, output

    form = {"url": HOOK, "event": "*", "rate_limit": "12.5", "rate_limit_burst": "", "csrf": ""}
    form["csrf"] = site.csrf
    async with site.web.post(f"/apps/{site.app_id}/webhooks", data=form) as response:
        page = await response.text()
        assert response.status == 200 and "12.5 a second" in page, page
