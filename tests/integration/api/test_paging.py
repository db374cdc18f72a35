"""Every list of the REST API pages the same way over real HTTP, on SQLite and
PostgreSQL: ``limit`` (bounded), ``cursor``, ``next_cursor``; walking the pages gives
every item exactly once, in order, also when rows are added between two pages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hookline.store import Store
from tests.support.api_server import ADMIN, running_api

ITEMS = 23  # not a multiple of the page size, so the last page is a short one


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base + "/api/v1"

    async def call(
        self, method: str, path: str, body: Any = None, token: str = ADMIN
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.base + path, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    async def ok(self, method: str, path: str, body: Any = None, token: str = ADMIN) -> Any:
        status, found = await self.call(method, path, body, token)
        assert status < 300, (method, path, status, found)
        return found

    async def walk(self, path: str, limit: int, token: str = ADMIN) -> list[list[Any]]:
        """Every page of a list, following next_cursor to the end."""
        pages: list[list[Any]] = []
        cursor = None
        while True:
            query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            found = await self.ok("GET", path + query, token=token)
            assert set(found) == {"data", "next_cursor"}
            assert len(found["data"]) <= limit
            pages.append(found["data"])
            cursor = found["next_cursor"]
            if cursor is None:
                return pages
            assert len(pages) <= 1000, "the pages never end"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_api(database_url, deliver=False) as base, aiohttp.ClientSession() as http:
        yield Api(http, base)


def flat(pages: list[list[dict[str, Any]]], key: str) -> list[Any]:
    return [row[key] for page in pages for row in page]


@pytest.mark.slow
async def test_every_list_pages_through_every_item_exactly_once(api: Api) -> None:
    apps = [(await api.ok("POST", "/apps", {"name": f"app {n}"}))["id"] for n in range(ITEMS)]
    app = apps[0]
    users = [f"user-{n}" for n in range(ITEMS)]
    for user in users:
        await api.ok("POST", f"/apps/{app}/installations", {"user_id": user})
    endpoints = [
        (
            await api.ok(
                "POST",
                f"/apps/{app}/endpoints",
                {"url": f"http://127.0.0.1:9/hook/{n}", "event_types": ["*"]},
            )
        )["id"]
        for n in range(ITEMS)
    ]
    for user in users[:ITEMS]:
        await api.ok(
            "POST", "/events", {"event_type": "order_completed", "user_id": user, "data": {}}
        )

    for limit in (1, 5, ITEMS, 100):
        pages = await api.walk("/apps", limit)
        assert flat(pages, "id") == apps  # oldest first, each once
        assert [len(p) for p in pages[:-1]] == [limit] * (len(pages) - 1)
        assert flat(await api.walk(f"/apps/{app}/installations", limit), "user_id") == users
        assert flat(await api.walk(f"/apps/{app}/endpoints", limit), "id") == endpoints
    deliveries = flat(await api.walk(f"/apps/{app}/deliveries", 7), "id")
    assert len(deliveries) == len(set(deliveries)) == ITEMS * ITEMS
    assert deliveries == sorted(deliveries, reverse=True)  # newest first


async def test_rows_added_between_pages_are_neither_repeated_nor_skipped(api: Api) -> None:
    first = [(await api.ok("POST", "/apps", {"name": f"app {n}"}))["id"] for n in range(6)]
    page = await api.ok("GET", "/apps?limit=4")
    assert [row["id"] for row in page["data"]] == first[:4]
    later = (await api.ok("POST", "/apps", {"name": "later"}))["id"]
    rest = await api.ok("GET", f"/apps?limit=4&cursor={page['next_cursor']}")
    assert [row["id"] for row in rest["data"]] == [*first[4:], later]
    assert rest["next_cursor"] is None


async def test_an_app_key_pages_its_own_lists(api: Api) -> None:
    mine = await api.ok("POST", "/apps", {"name": "mine"})
    await api.ok("POST", "/apps", {"name": "theirs"})
    key = mine["api_key"]
    assert flat(await api.walk("/apps", 1, token=key), "id") == [mine["id"]]
    made = [
        (
            await api.ok(
                "POST",
                f"/apps/{mine['id']}/endpoints",
                {"url": f"http://127.0.0.1:9/{n}", "event_types": ["*"]},
                token=key,
            )
        )["id"]
        for n in range(3)
    ]
    assert flat(await api.walk(f"/apps/{mine['id']}/endpoints", 2, token=key), "id") == made


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WzEsMl0", "cursor"),  # a valid encoding of [1, 2]: not a cursor
        ("cursor=" + "A" * 401, "cursor"),
        ("cursor=%00", "cursor"),
    ],
)
async def test_bad_paging_parameters_are_a_clear_422(api: Api, query: str, problem: str) -> None:
    app = (await api.ok("POST", "/apps", {"name": "a"}))["id"]
    for path in ("/apps", f"/apps/{app}/installations", f"/apps/{app}/endpoints"):
        status, found = await api.call("GET", f"{path}?{query}")
        assert status == 422, (path, query, found)
        assert problem in found["error"]["message"]


async def test_a_page_of_deliveries_holds_at_most_100(api: Api) -> None:
    """Deliveries carry their attempt logs, so their pages are capped lower than others."""
    app = (await api.ok("POST", "/apps", {"name": "a"}))["id"]
    status, found = await api.call("GET", f"/apps/{app}/deliveries?limit=100")
    assert status == 200, found
    status, found = await api.call("GET", f"/apps/{app}/deliveries?limit=101")
    assert status == 422, found
    assert "limit" in found["error"]["message"]


async def test_ties_in_creation_time_page_by_id(database_url: str) -> None:
    """Rows created in the same instant still come once each, in id order."""
    store = await Store.open(database_url)
    try:
        app, _ = await store.create_app("ties")
        async with store.db.transaction() as tx:
            for n in range(9):
                await tx.execute("create_installation", app_id=app.id, user_id=f"u{n}", now=1000.0)
        seen: list[str] = []
        after = None
        while True:
            rows = await store.list_installations(app.id, after=after, limit=2)
            if not rows:
                break
            seen += [row.user_id for row in rows]
            after = (rows[-1].created_at, rows[-1].user_id)
        assert seen == [f"u{n}" for n in range(9)]
    finally:
        await store.close()
