"""The ceiling: signed webhooks sent by a bare aiohttp loop, with nothing stored.

One ClientSession, keep-alive connections, a fixed number of concurrent senders. No
database, no retries, no ordering: whatever a real sender does on top of this costs
throughput, so this number is the most one Python process can send on this machine.

    python -m bench.peers.bare_sender -n 20000
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import orjson

from bench._common import RunResult, now, print_table
from bench.peers._wire import build_webhook
from bench.peers.sink import SinkProcess

T = TypeVar("T")

DEFAULT_KEY = "bench-verification-key"
DEFAULT_CONCURRENCY = 64


async def _sender(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    ids: Iterator[int],
    sent: dict[str, float],
    failures: list[int],
) -> None:
    # All senders share one iterator: each takes the next id when it is free, so the
    # work spreads by speed, with no task per request and no semaphore.
    for i in ids:
        event_id = f"bare-{i}"
        headers, body = build_webhook(key, event_id=event_id, dumps=orjson.dumps)
        sent[event_id] = now()
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as r:
            await r.read()
            if r.status != 200:
                failures.append(r.status)


async def send_all(
    url: str, n: int, *, key: str = DEFAULT_KEY, concurrency: int = DEFAULT_CONCURRENCY
) -> dict[str, float]:
    """Send ``n`` signed webhooks to ``url``; return when each was sent, by event id."""
    sent: dict[str, float] = {}
    failures: list[int] = []
    ids = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        senders = (_sender(session, url, key, ids, sent, failures) for _ in range(concurrency))
        await asyncio.gather(*senders)
    if failures:
        raise RuntimeError(f"{len(failures)} of {n} requests failed, e.g. HTTP {failures[0]}")
    return sent


def run_loop(main: Callable[[], Coroutine[Any, Any, T]], *, use_uvloop: bool = True) -> T:
    """Run ``main()`` to completion, on uvloop when asked and installed."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main())
    return asyncio.run(main())


def run_bare(
    sink: SinkProcess,
    n: int,
    *,
    key: str = DEFAULT_KEY,
    concurrency: int = DEFAULT_CONCURRENCY,
    use_uvloop: bool = True,
) -> RunResult:
    """Measure the ceiling against a running sink."""
    params = {"concurrency": concurrency, "uvloop": use_uvloop}

    def send() -> dict[str, float]:
        return run_loop(
            lambda: send_all(sink.url, n, key=key, concurrency=concurrency), use_uvloop=use_uvloop
        )

    return sink.measure(f"bare aiohttp (c={concurrency})", n, send, params)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the bare aiohttp ceiling")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--sink-impl", default="raw")
    args = parser.parse_args(argv)
    with SinkProcess(impl=args.sink_impl) as sink:
        result = run_bare(sink, args.n, concurrency=args.concurrency, use_uvloop=not args.no_uvloop)
    print_table([result], title="bare aiohttp ceiling")


if __name__ == "__main__":
    main()
