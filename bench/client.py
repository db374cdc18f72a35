"""Which HTTP library ``hookline.Client`` / ``hookline.AsyncClient`` should publish with.

    python -m bench.client --json bench/results/client.json

Every contender does what a platform's code does when it publishes: ``POST`` one event
(a JSON body, a bearer token) and read the answer, ``-n`` times, over one kept-alive
client. The async ones keep ``--concurrency`` requests in flight from one event loop;
the sync ones send one after the other from one thread (a request handler's view).

Beside the libraries, ``hookline.AsyncClient`` and ``hookline.Client`` themselves (answers
parsed into models, retries armed) publish to ``serve``. Two targets, one after the
other in the same run:

- ``sink``: ``bench.peers.sink`` (a bare counting server in its own process), so the
  figure is the client's own cost per request;
- ``serve``: a real ``hookline serve`` on a fresh SQLite file, ``POST /api/v1/events``
  (202 with the stored event), the case the client exists for.

A run counts only 2xx answers (the sink checks its own count against them); each
contender runs ``--rounds`` times, in turns, and its best round is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import time
from collections.abc import Awaitable, Callable

from bench._common import RunResult, print_table, summarize, write_json
from bench.hookline_server import ADMIN_TOKEN, HooklineServer
from bench.peers.sink import SinkProcess

EVENTS = "/api/v1/events"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


def _body(i: int) -> bytes:
    event = {
        "event_type": "order_completed",
        "user_id": f"store-{i % 100}",
        "data": {"id": f"o-{i}", "total": "19.90", "items": [{"sku": "A-1", "quantity": 2}]},
        "event_id": f"evt_bench_{i}_{time.monotonic_ns()}",
    }
    return json.dumps(event).encode()


# -- async contenders: each returns a "send one" coroutine factory and a closer ----------

AsyncSend = Callable[[bytes], Awaitable[int]]


async def _aiohttp(url: str, concurrency: int) -> tuple[AsyncSend, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), headers=HEADERS
    )

    async def send(body: bytes) -> int:
        async with session.post(url, data=body) as response:
            await response.read()
            return response.status

    return send, session.close


async def _httpx_async(
    url: str, concurrency: int
) -> tuple[AsyncSend, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(headers=HEADERS, limits=httpx.Limits(max_connections=concurrency))

    async def send(body: bytes) -> int:
        response = await client.post(url, content=body)
        return response.status_code

    return send, client.aclose


async def _pyreqwest_async(
    url: str, concurrency: int
) -> tuple[AsyncSend, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().max_connections(concurrency).default_headers(HEADERS).build()

    async def send(body: bytes) -> int:
        response = await client.post(url).body_bytes(body).build().send()
        await response.bytes()
        return response.status

    return send, client.close


async def _niquests_async(
    url: str, concurrency: int
) -> tuple[AsyncSend, Callable[[], Awaitable[None]]]:
    import niquests

    session = niquests.AsyncSession(pool_maxsize=concurrency)
    session.headers.update(HEADERS)

    async def send(body: bytes) -> int:
        response = await session.post(url, data=body)
        return int(response.status_code or 0)

    return send, session.close


async def _hookline_async(
    url: str, concurrency: int
) -> tuple[AsyncSend, Callable[[], Awaitable[None]]]:
    """hookline.AsyncClient itself: pyreqwest plus building the call, retries and
    parsing the answer into ``EventOut``. Only against ``serve`` (the sink's answer is
    not an event)."""
    from hookline.client import AsyncClient

    client = AsyncClient(url.removesuffix(EVENTS), ADMIN_TOKEN, max_connections=concurrency)

    async def send(body: bytes) -> int:
        event = json.loads(body)
        await client.events.publish(
            event["event_type"], event["user_id"], event["data"], event_id=event["event_id"]
        )
        return 202

    return send, client.aclose


ASYNC = {
    "hookline.AsyncClient": _hookline_async,
    "aiohttp": _aiohttp,
    "httpx (async)": _httpx_async,
    "pyreqwest (async)": _pyreqwest_async,
    "niquests (async)": _niquests_async,
}


async def run_async(name: str, url: str, n: int, concurrency: int) -> RunResult:
    send, close = await ASYNC[name](url, concurrency)
    bodies = [_body(i) for i in range(n)]
    await send(_body(-1))  # connect and warm up outside the clock
    took: list[float] = []
    ok = 0
    queue = iter(bodies)

    async def worker() -> None:
        nonlocal ok
        for body in queue:
            start = time.perf_counter()
            status = await send(body)
            took.append(time.perf_counter() - start)
            ok += 200 <= status < 300

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    await close()
    return RunResult(name, n, ok, seconds, summarize(took), {"concurrency": concurrency})


# -- sync contenders ---------------------------------------------------------------------

SyncSend = Callable[[bytes], int]


def _httpx(url: str) -> tuple[SyncSend, Callable[[], None]]:
    import httpx

    client = httpx.Client(headers=HEADERS)
    return (lambda body: client.post(url, content=body).status_code), client.close


def _pyreqwest(url: str) -> tuple[SyncSend, Callable[[], None]]:
    from pyreqwest.client import SyncClientBuilder

    client = SyncClientBuilder().default_headers(HEADERS).build()

    def send(body: bytes) -> int:
        response = client.post(url).body_bytes(body).build().send()
        response.bytes()
        return response.status

    return send, client.close


def _niquests(url: str) -> tuple[SyncSend, Callable[[], None]]:
    import niquests

    session = niquests.Session()
    session.headers.update(HEADERS)
    return (lambda body: int(session.post(url, data=body).status_code or 0)), session.close


def _urllib3(url: str) -> tuple[SyncSend, Callable[[], None]]:
    import urllib3

    pool = urllib3.PoolManager(headers=HEADERS)
    return (lambda body: pool.request("POST", url, body=body).status), pool.clear


def _hookline(url: str) -> tuple[SyncSend, Callable[[], None]]:
    from hookline.client import Client

    client = Client(url.removesuffix(EVENTS), ADMIN_TOKEN)

    def send(body: bytes) -> int:
        event = json.loads(body)
        client.events.publish(
            event["event_type"], event["user_id"], event["data"], event_id=event["event_id"]
        )
        return 202

    return send, client.close


SYNC = {
    "hookline.Client": _hookline,
    "httpx": _httpx,
    "pyreqwest": _pyreqwest,
    "niquests": _niquests,
    "urllib3": _urllib3,
}


def run_sync(name: str, url: str, n: int) -> RunResult:
    send, close = SYNC[name](url)
    send(_body(-1))
    bodies = [_body(i) for i in range(n)]
    took: list[float] = []
    ok = 0
    start = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        status = send(body)
        took.append(time.perf_counter() - t)
        ok += 200 <= status < 300
    seconds = time.perf_counter() - start
    close()
    return RunResult(name, n, ok, seconds, summarize(took), {"concurrency": 1})


def run_all(target: str, url: str, args: argparse.Namespace) -> list[RunResult]:
    """Every contender in turn, ``--rounds`` times over (the order of a round moves on,
    so none is always first after a warm-up), keeping each one's best round.
    hookline's own clients run only where the answer is an event."""
    names = [n for n in [*args.async_libs, *args.sync_libs] if _fits(n, target)]
    best: dict[str, RunResult] = {}
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if name in ASYNC:
                result = asyncio.run(run_async(name, url, args.n, args.concurrency))
            else:
                result = run_sync(name, url, args.sync_n)
            if name not in best or result.rate > best[name].rate:
                best[name] = result
    return [_tagged(best[name], target) for name in names]


def _fits(name: str, target: str) -> bool:
    return target == "serve" or not name.startswith("hookline")


def _tagged(result: RunResult, target: str) -> RunResult:
    return RunResult(
        f"{result.name} -> {target}",
        result.requested,
        result.delivered,
        result.seconds,
        result.latency,
        {**result.params, "target": target},
    )


def _installed(contenders: dict[str, object]) -> list[str]:
    """The contenders whose library is installed: niquests is not, by default (see the
    bench extra in pyproject.toml)."""
    return [
        name
        for name in contenders
        if importlib.util.find_spec(name.split()[0].split(".")[0]) is not None
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=5000, help="requests per async run")
    parser.add_argument("--sync-n", type=int, default=2000, help="requests per sync run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="runs per contender, best kept")
    parser.add_argument("--async-libs", nargs="*", default=_installed(ASYNC), choices=list(ASYNC))
    parser.add_argument("--sync-libs", nargs="*", default=_installed(SYNC), choices=list(SYNC))
    parser.add_argument("--targets", nargs="*", default=["sink", "serve"])
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    results: list[RunResult] = []
    if "sink" in args.targets:
        with SinkProcess(record=False) as sink:
            results += run_all("sink", sink.url, args)
            # + 1: each run's warm-up request
            expected = sum(r.requested + 1 for r in results) * args.rounds
            counted = sink.count()
            if counted != expected:
                print(f"warning: the sink counted {counted} requests, the clients sent {expected}")
    if "serve" in args.targets:
        server = HooklineServer(args=("--no-deliver",)).start()
        try:
            results += run_all("serve", server.base + EVENTS, args)
        finally:
            server.stop()
    print_table(results, title="publishing one event per request")
    if args.json:
        write_json(
            args.json, results, kind="client", concurrency=args.concurrency, rounds=args.rounds
        )


if __name__ == "__main__":
    main()
