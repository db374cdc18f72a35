"""A loopback webhook endpoint that records every request and answers as scripted.

    async with Recorder() as rec:
        rec.script("/flaky", [Answer(500), Answer(500)], then=Answer(200))
        url = rec.url("/flaky")
        ...
        await rec.wait_for(lambda: len(rec.hits("/flaky")) == 3)

Each path answers its scripted answers in order, then ``then`` forever (200 by default);
or each request as a function of its hits so far decides (``respond``).
An answer can be late (``sleep``), never come (``hang``: the connection is accepted and
the request read, but nothing is ever sent back), redirect, or carry headers such as
``Retry-After``. Every request becomes a ``Hit`` with its start and end times, so tests
can check what overlapped: handlers are cancelled when the sender hangs up, so a hit
that is still open is one the sender is still waiting for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict

from tests.support.eventually import eventually


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    sleep: float = 0.0
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"


def redirect(to: str, status: int = 302) -> Answer:
    return Answer(status, headers={"Location": to})


@dataclass(slots=True)
class Hit:
    path: str
    #: Looked up by name in any case, as HTTP defines them: the transports write names
    #: differently on the wire (reqwest title-cases them: ``Webhook-Id``).
    headers: CIMultiDict[str]
    body: bytes
    started: float
    ended: float | None = None
    status: int | None = None
    cancelled: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def open(self) -> bool:
        return self.ended is None

    @property
    def user_id(self) -> str:
        return str(self.json["user_id"])

    @property
    def event_id(self) -> str:
        return str(self.json["event_id"])


class Recorder:
    def __init__(self) -> None:
        self._hits: list[Hit] = []
        self._scripts: dict[str, list[Answer]] = defaultdict(list)
        self._then: dict[str, Answer] = {}
        self._deciders: dict[str, Callable[[list[Hit]], Answer]] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- behaviour ----------------------------------------------------------------------

    def script(self, path: str, answers: Iterable[Answer] = (), then: Answer | None = None) -> str:
        """Answer the next requests to ``path`` with ``answers``, then ``then``; return its URL."""
        self._scripts[path] = list(answers)
        if then is not None:
            self._then[path] = then
        return self.url(path)

    def respond(self, path: str, decide: Callable[[list[Hit]], Answer]) -> str:
        """Answer each request to ``path`` with ``decide(its hits so far, this one last)``;
        return its URL."""
        self._deciders[path] = decide
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- what happened ------------------------------------------------------------------

    def hits(self, path: str | None = None) -> list[Hit]:
        return [h for h in self._hits if path is None or h.path == path]

    def open_hits(self, path: str | None = None) -> list[Hit]:
        return [h for h in self.hits(path) if h.open]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        await eventually(
            condition,
            timeout=timeout,
            message=lambda: f"the recorder; {len(self._hits)} hit(s) so far",
        )

    # -- serving ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        hit = Hit(
            path=request.path,
            headers=CIMultiDict(request.headers),
            body=await request.read(),
            started=time.monotonic(),
        )
        self._hits.append(hit)
        script = self._scripts[request.path]
        decide = self._deciders.get(request.path)
        if decide is not None:
            answer = decide(self.hits(request.path))
        else:
            answer = script.pop(0) if script else self._then.get(request.path, Answer())
        try:
            if answer.hang:
                await self._release.wait()
                answer = Answer(503, body="released at shutdown")
            elif answer.sleep:
                await asyncio.sleep(answer.sleep)
        except asyncio.CancelledError:
            hit.cancelled = True
            hit.ended = time.monotonic()
            raise
        hit.status = answer.status
        hit.ended = time.monotonic()
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    async def start(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    def release(self) -> None:
        """Answer every hanging request now (503), and any later one at once."""
        self._release.set()

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def in_flight_peak(hits: Iterable[Hit], key: Callable[[Hit], Any] | None = None) -> int:
    """The most hits (or distinct ``key``s of hits) that were open at the same moment."""
    moments: list[tuple[float, int, Hit]] = []
    for hit in hits:
        moments.append((hit.started, 1, hit))
        moments.append((hit.ended if hit.ended is not None else float("inf"), -1, hit))
    # Ends sort before starts at the same instant: touching intervals do not overlap.
    moments.sort(key=lambda m: (m[0], m[1]))
    open_now: dict[Any, int] = defaultdict(int)
    peak = 0
    for _, step, hit in moments:
        k = key(hit) if key else id(hit)
        open_now[k] += step
        if open_now[k] == 0:
            del open_now[k]
        peak = max(peak, len(open_now))
    return peak


def most_in_one_second(moments: list[float]) -> int:
    """The most of ``moments`` in any window [t, t + 1 s)."""
    ordered = sorted(moments)
    most, start = 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most
