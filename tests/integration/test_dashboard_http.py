"""The dashboard's rules over plain HTTP: who sees what, sessions, CSRF, redirects."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hookline.store import Store
from hookline.web.session import SessionSigner, credential_hash
from tests.support.api_server import ADMIN, running_api


@pytest.fixture
async def site(sqlite_url: str) -> AsyncIterator[tuple[str, dict[str, str], dict[str, str]]]:
    """A running sender with two apps, each with one endpoint."""
    store = await Store.open(sqlite_url)
    apps = []
    for name in ("First", "Second"):
        app, key = await store.create_app(name)
        endpoint = await store.create_endpoint(
            app.id, url="https://example.com/hook", event_types=["*"], timeout=5
        )
        apps.append({"id": app.id, "key": key, "endpoint": endpoint.id})
    await store.close()
    async with running_api(sqlite_url, deliver=False) as base:
        yield base, apps[0], apps[1]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


async def _signed_in(base: str, key: str) -> tuple[aiohttp.ClientSession, str]:
    http = aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get("/login") as response:
        login_csrf = _csrf(await response.text())
    async with http.post("/login", data={"key": key, "csrf": login_csrf}) as response:
        assert response.status == 200, await response.text()
        return http, _csrf(await response.text())


async def test_pages_need_a_session(site: tuple[str, dict[str, str], dict[str, str]]) -> None:
    base, first, _ = site
    async with aiohttp.ClientSession(base) as http:
        for path in ("/", "/apps", f"/apps/{first['id']}", f"/endpoints/{first['endpoint']}"):
            async with http.get(path, allow_redirects=False) as response:
                assert response.status == 303
                assert response.headers["Location"].startswith("/login?next=")


async def test_a_wrong_key_is_refused(site: tuple[str, dict[str, str], dict[str, str]]) -> None:
    base, _, _ = site
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get("/login") as response:
            csrf = _csrf(await response.text())
        async with http.post("/login", data={"key": "hk_nope", "csrf": csrf}) as response:
            assert response.status == 401
            assert "neither the admin token" in await response.text()
        # Without the login form's own token, a sign-in from elsewhere is refused.
        async with http.post("/login", data={"key": ADMIN, "csrf": "forged"}) as response:
            assert response.status == 422


async def test_an_app_key_sees_only_its_app(
    site: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    base, first, second = site
    http, csrf = await _signed_in(base, first["key"])
    async with http:
        async with http.get("/apps", allow_redirects=False) as response:
            assert response.headers["Location"] == f"/apps/{first['id']}"
        async with http.get(f"/apps/{first['id']}") as response:
            assert response.status == 200
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        async with http.get(f"/apps/{second['id']}") as response:
            assert response.status == 403
        async with http.get(f"/apps/{second['id']}/deliveries") as response:
            assert response.status == 403
        async with http.get(f"/endpoints/{second['endpoint']}") as response:
            assert response.status == 404
        async with http.post(
            f"/endpoints/{second['endpoint']}/disable", data={"csrf": csrf}
        ) as response:
            assert response.status == 404
        async with http.post("/apps", data={"name": "Mine now", "csrf": csrf}) as response:
            assert response.status == 403


async def test_admin_sees_every_app(site: tuple[str, dict[str, str], dict[str, str]]) -> None:
    base, first, second = site
    http, _ = await _signed_in(base, ADMIN)
    async with http, http.get("/apps") as response:
        html = await response.text()
    assert first["id"] in html and second["id"] in html


async def test_posts_need_the_session_csrf_token(
    site: tuple[str, dict[str, str], dict[str, str]], sqlite_url: str
) -> None:
    base, first, _ = site
    http, csrf = await _signed_in(base, first["key"])
    async with http:
        path = f"/endpoints/{first['endpoint']}/disable"
        async with http.post(path, data={"csrf": "not-it"}) as response:
            assert response.status == 422
        async with http.post(path, data={"csrf": csrf}) as response:
            assert response.status == 200
            html = await response.text()
    assert "This endpoint is disabled: disabled through the API" in html
    store = await Store.open(sqlite_url)
    try:
        assert not (await store.get_endpoint(first["endpoint"])).enabled
    finally:
        await store.close()


async def test_a_forged_or_foreign_cookie_is_not_a_session(
    site: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    base, _, _ = site
    other_process = SessionSigner(b"another secret")
    forged = other_process.dumps(other_process.new("admin", credential_hash(ADMIN)))
    async with aiohttp.ClientSession(base, cookies={"hookline_session": forged}) as http:
        async with http.get("/apps", allow_redirects=False) as response:
            assert response.status == 303


async def test_sign_in_never_redirects_off_site(
    site: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    base, _, _ = site
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get("/login?next=//evil.example/") as response:
            html = await response.text()
        assert 'name="next" value="/"' in html
        data = {"key": ADMIN, "csrf": _csrf(html), "next": "//evil.example/"}
        async with http.post("/login", data=data, allow_redirects=False) as response:
            assert response.headers["Location"] == "/"
            cookie = response.cookies["hookline_session"]
            assert cookie["httponly"] and cookie["samesite"] == "strict"


async def test_an_invalid_callback_url_comes_back_with_the_form(
    site: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    base, first, _ = site
    http, csrf = await _signed_in(base, first["key"])
    data = {"event": "order_completed", "url": "ftp://example.com/", "csrf": csrf}
    async with http, http.post(f"/apps/{first['id']}/webhooks", data=data) as response:
        assert response.status == 422
        html = await response.text()
    assert "must start with https:// or http://" in html
    assert 'value="ftp://example.com/"' in html


def test_session_cookies_expire_and_resist_tampering() -> None:
    signer = SessionSigner(b"k" * 32)
    session = signer.new("app_1", credential_hash("hk_secret"), now=1000.0)
    cookie = signer.dumps(session)
    assert "hk_secret" not in cookie
    assert signer.loads(cookie, now=1001.0) == session
    assert signer.loads(cookie, now=session.expires) is None
    payload, signature = cookie.split(".")
    assert signer.loads(payload[:-2] + "xx." + signature, now=1001.0) is None


async def test_the_apps_page_shows_a_page_at_a_time(sqlite_url: str) -> None:
    store = await Store.open(sqlite_url)
    made = [(await store.create_app(f"app {n}"))[0].id for n in range(55)]
    await store.close()
    async with running_api(sqlite_url, deliver=False) as base:
        http, _ = await _signed_in(base, ADMIN)
        pages: list[list[str]] = []
        path: str | None = "/apps"
        async with http:
            while path is not None:
                async with http.get(path) as response:
                    html = await response.text()
                    assert response.status == 200, html
                pages.append(re.findall(r'<a href="/apps/(app_\w+)">', html))
                more = re.search(r'<a href="(\?cursor=[\w-]+)">More apps', html)
                path = "/apps" + more[1] if more else None
        assert [len(page) for page in pages] == [50, 5]
        assert [app for page in pages for app in page] == made
