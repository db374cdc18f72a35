"""An HTTP proxy on loopback, in the test's event loop, that misbehaves on cue.

    async with FaultyProxy(upstream, ["503", "503"]) as proxy:   # then forwards
        ... point a client at proxy.url ...
        assert proxy.seen == [...]

Each request takes the next fault from the script (``"forward"`` once it runs out):

- ``"503"``: answer 503 with hookline's error body and ``Retry-After: 1``, upstream
  never sees the request;
- ``"429"``: the same with 429 and hookline's rate-limit body;
- ``"drop"``: forward the request, let upstream act on it, then drop the connection
  instead of answering (the answer is lost on the way back);
- ``"hang"``: read the request and never answer;
- ``"forward"``: pass it on and pass the answer back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

from tests.conftest import free_port

UNAVAILABLE = b'{"error": {"code": "storage_unavailable", "message": "the database is down"}}'
RATE_LIMITED = b'{"error": {"code": "rate_limited", "message": "too many requests"}}'


class FaultyProxy:
    def __init__(self, upstream: str, script: Sequence[str] = ()) -> None:
        self.upstream = upstream.rstrip("/")
        self.script = list(script)
        self.seen: list[tuple[str, str, str]] = []  # (method, path, what was done)
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._hanging = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, method: str, path: str) -> list[str]:
        """What was done to each request of ``method path``, in order."""
        return [done for m, p, done in self.seen if (m, p) == (method, path)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self.script.pop(0) if self.script else "forward"
        self.seen.append((request.method, request.path, fault))
        body = await request.read()
        if fault in ("503", "429"):
            return web.Response(
                status=int(fault),
                body=UNAVAILABLE if fault == "503" else RATE_LIMITED,
                content_type="application/json",
                headers={"Retry-After": "1"},
            )
        if fault == "hang":
            await self._hanging.wait()
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            if fault == "drop":
                assert request.transport is not None
                request.transport.abort()
                raise ConnectionResetError("answer dropped on purpose")
            return web.Response(
                status=answer.status,
                body=payload,
                headers={
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() in ("content-type", "retry-after")
                },
            )

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._hanging.set()
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()
