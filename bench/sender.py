"""End-to-end sender benchmark: events published through hookline's API until the sink
has counted every delivery's arrival, beside the bare aiohttp ceiling and Celery.

    python -m bench.sender --json bench/results/sender.json

Four figures, in one run, against one sink process:

* **throughput**: ``-n`` events published in batches through ``POST /api/v1/events/batch``
  while hookline delivers them (one endpoint, many users); the clock stops when the
  sink has counted them all;
* **latency**: single events published at ``--rate`` per second through
  ``POST /api/v1/events``; publish-to-arrival p50/p99 (matched by ``webhook-id``);
* **growth**: the throughput run again with ``--backlog`` deliveries waiting in the
  store for a dead endpoint, as a ratio to the empty store;
* the **ceiling** and **Celery + requests**, sending the same number of signed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import orjson

from bench._common import RunResult, now, print_table, write_json
from bench.hookline_server import ADMIN_TOKEN, HooklineServer, seed_backlog
from bench.peers.bare_sender import run_bare, run_loop
from bench.peers.sink import SinkProcess

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


def _event(i: int, prefix: str, users: int) -> dict[str, Any]:
    return {
        "event_id": f"{prefix}-{i}",
        "event_type": "order_completed",
        "user_id": f"user-{i % users}",
        "data": {"id": f"order-{i}", "reference_id": "XZHQ59WA", "total": 19.99},
    }


async def _publish_batches(
    base: str, n: int, prefix: str, users: int, batch: int, parallel: int
) -> dict[str, float]:
    sent: dict[str, float] = {}
    chunks = iter(range(0, n, batch))

    async def publisher(session: aiohttp.ClientSession) -> None:
        for start in chunks:
            events = [_event(i, prefix, users) for i in range(start, min(start + batch, n))]
            moment = now()
            for e in events:
                sent[e["event_id"]] = moment
            async with session.post(
                f"{base}/api/v1/events/batch", data=orjson.dumps({"events": events})
            ) as response:
                if response.status != 202:
                    raise RuntimeError(f"publish failed: {response.status} {await response.text()}")

    async with aiohttp.ClientSession(headers=HEADERS) as session:
        await asyncio.gather(*(publisher(session) for _ in range(parallel)))
    return sent


async def _publish_paced(
    base: str, n: int, rate: float, prefix: str, users: int
) -> dict[str, float]:
    """One event per request at a steady ``rate``, each request in its own task."""
    sent: dict[str, float] = {}
    failures: list[int] = []

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        event = _event(i, prefix, users)
        sent[event["event_id"]] = now()
        async with session.post(f"{base}/api/v1/events", data=orjson.dumps(event)) as response:
            if response.status != 202:
                failures.append(response.status)

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:
        tasks = []
        started = time.perf_counter()
        for i in range(n):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, i)))
        await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{len(failures)} publishes failed, e.g. {failures[0]}")
    return sent


def run_throughput(
    sink: SinkProcess, server: HooklineServer, n: int, *, name: str, users: int, prefix: str
) -> RunResult:
    def send() -> dict[str, float]:
        return run_loop(lambda: _publish_batches(server.base, n, prefix, users, 500, 4))

    return sink.measure(name, n, send, {"users": users, "batch": 500})


def run_latency(
    sink: SinkProcess, server: HooklineServer, *, rate: float, seconds: float, users: int
) -> RunResult:
    n = int(rate * seconds)

    def send() -> dict[str, float]:
        return run_loop(lambda: _publish_paced(server.base, n, rate, f"lat{rate:g}", users))

    return sink.measure(f"hookline at {rate:,.0f} events/s", n, send, {"rate": rate})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="events in the throughput runs")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--celery-n", type=int, default=3000)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    results: list[RunResult] = []
    extra: dict[str, Any] = {}
    with SinkProcess() as sink:
        with HooklineServer() as server:
            healthy = [f"user-{i}" for i in range(args.users)]
            server.make_app("bench", sink.url, healthy, max_in_flight=128)
            results.append(
                run_throughput(
                    sink,
                    server,
                    args.n,
                    name="hookline (SQLite, empty store)",
                    users=args.users,
                    prefix="empty",
                )
            )
            results.append(
                run_latency(sink, server, rate=args.rate, seconds=args.seconds, users=args.users)
            )
            if args.backlog:
                app, endpoint = server.make_app(
                    "dead", "http://127.0.0.1:9/dead", ["backlog-user-0"]
                )
                server.stop()
                seed_backlog(server.sqlite_path, app, endpoint, args.backlog, users=1000)
                server.start()
                results.append(
                    run_throughput(
                        sink,
                        server,
                        args.n,
                        name=f"hookline (SQLite, {args.backlog:,} waiting)",
                        users=args.users,
                        prefix="behind-backlog",
                    )
                )
                extra["growth_ratio"] = round(results[-1].rate / results[0].rate, 3)
        if not args.skip_peers:
            from bench.peers.celery_sender import run_celery_best

            results.append(run_bare(sink, args.n))
            celery = max(run_celery_best(sink, args.celery_n), key=lambda r: r.rate)
            results.append(celery)
            extra["vs_ceiling"] = round(results[0].rate / results[-2].rate, 3)
            extra["vs_celery"] = round(results[0].rate / celery.rate, 2)
    print_table(results, title="sender, end to end")
    for key, value in extra.items():
        print(f"{key}: {value}")
    if args.json:
        write_json(args.json, results, **extra)


if __name__ == "__main__":
    main()
