"""/docs and /redoc load everything from the server itself: they work without the
internet (and never make a reader's browser call a CDN)."""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.support.api_server import running_api


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_documentation_pages_need_no_other_host(sqlite_url: str, page: str) -> None:
    async with running_api(sqlite_url, deliver=False) as base, aiohttp.ClientSession(base) as http:
        async with http.get(page) as response:
            assert response.status == 200
            html = await response.text()
        assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html), html
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert any(a.endswith(".js") for a in assets), html
        for asset in assets:
            async with http.get(asset) as response:
                assert response.status == 200, asset
                assert len(await response.read()) > 0
        assert "/openapi.json" in html
