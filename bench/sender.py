"""End-to-end sender benchmark: events published through hookline's API until the sink
has counted every delivery's arrival, beside the bare aiohttp ceiling and Celery.

    python -m bench.sender --json bench/results/sender.json

Five figures, in one run, against one sink process:

* **throughput**: ``-n`` events published in batches through ``POST /api/v1/events/batch``
  while hookline delivers them (one ordered endpoint, ``--users`` users); the clock
  stops when the sink has counted them all;
* **single events**: ``-n`` events, one per ``POST /api/v1/events``, 32 requests in
  flight, delivered into the sink: the API and the deliveries end to end, as a
  platform publishing its changes one by one would use hookline;
* **latency**: single events published at ``--rate`` per second; publish-to-arrival
  p50/p99 (matched by ``webhook-id``);
* **growth**: the throughput run again with ``--backlog`` deliveries waiting in the
  store for a dead endpoint, as a ratio to the empty store;
* the **ceiling** (the bare aiohttp loop) and **Celery + requests**, sending the same
  number of signed requests.

The first three run for each ``--delivery-processes`` count given (``0,1`` measures the
one-process layout beside the default one in the same run); the targets are judged on
the first. It prints the runs, then one table of the targets, each a ratio to its peer
measured in the same run, and ``--json`` writes both.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import orjson

from bench._common import RunResult, Target, now, print_table, print_targets, write_json
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


async def _publish_single(
    base: str, n: int, prefix: str, users: int, in_flight: int
) -> dict[str, float]:
    """One event per request, ``in_flight`` requests at a time, as fast as answered."""
    sent: dict[str, float] = {}
    numbers = iter(range(n))

    async def publisher(session: aiohttp.ClientSession) -> None:
        for i in numbers:
            event = _event(i, prefix, users)
            sent[event["event_id"]] = now()
            async with session.post(f"{base}/api/v1/events", data=orjson.dumps(event)) as r:
                if r.status != 202:
                    raise RuntimeError(f"publish failed: {r.status} {await r.text()}")

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:
        await asyncio.gather(*(publisher(session) for _ in range(in_flight)))
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


def run_single(
    sink: SinkProcess, server: HooklineServer, n: int, *, name: str, users: int, in_flight: int
) -> RunResult:
    def send() -> dict[str, float]:
        return run_loop(lambda: _publish_single(server.base, n, "single", users, in_flight))

    return sink.measure(name, n, send, {"users": users, "in_flight": in_flight})


def run_latency(
    sink: SinkProcess,
    server: HooklineServer,
    *,
    rate: float,
    seconds: float,
    users: int,
    name: str = "",
) -> RunResult:
    n = int(rate * seconds)

    def send() -> dict[str, float]:
        return run_loop(lambda: _publish_paced(server.base, n, rate, f"lat{rate:g}", users))

    return sink.measure(name or f"hookline at {rate:,.0f} events/s", n, send, {"rate": rate})


def _layout(processes: int) -> str:
    return "1 process" if processes == 0 else f"API + {processes} delivery"


def measure_layout(sink: SinkProcess, processes: int, args: argparse.Namespace) -> dict[str, Any]:
    """Throughput, single events and latency of ``hookline serve`` with ``processes``
    delivery processes, each on an empty store; and the backlog run, where asked."""
    layout = _layout(processes)
    out: dict[str, Any] = {}
    server_args = ("--delivery-processes", str(processes))
    with HooklineServer(args=server_args) as server:
        users = [f"user-{i}" for i in range(args.users)]
        server.make_app("bench", sink.url, users, max_in_flight=128)
        out["batch"] = run_throughput(
            sink,
            server,
            args.n,
            name=f"batches, {args.users:,} users ({layout})",
            users=args.users,
            prefix="empty",
        )
        out["single"] = run_single(
            sink,
            server,
            args.n,
            name=f"single events, {args.in_flight} in flight ({layout})",
            users=args.users,
            in_flight=args.in_flight,
        )
        out["latency"] = run_latency(
            sink,
            server,
            rate=args.rate,
            seconds=args.seconds,
            users=args.users,
            name=f"{args.rate:,.0f} events/s ({layout})",
        )
        if args.backlog:
            app, endpoint = server.make_app("dead", "http://127.0.0.1:9/dead", ["backlog-user-0"])
            server.stop()
            seed_backlog(server.sqlite_path, app, endpoint, args.backlog, users=1000)
            server.start()
            out["backlog"] = run_throughput(
                sink,
                server,
                args.n,
                name=f"batches, {args.backlog:,} waiting ({layout})",
                users=args.users,
                prefix="behind-backlog",
            )
    return out


def _rate(r: RunResult) -> str:
    return f"{r.rate:,.0f}/s"


def targets(
    main: dict[str, RunResult], bare: RunResult | None, celery: RunResult | None
) -> list[Target]:
    """The targets of the sender this benchmark covers, judged on one layout's runs."""
    found: list[Target] = []
    if bare is not None:
        found += [
            Target(
                "1. batches, 1,000 users, ordered, SQLite (vs bare loop)",
                _rate(main["batch"]),
                _rate(bare),
                main["batch"].rate / bare.rate,
                0.75,
                absolute=">= 6,000/s",
            ),
            Target(
                "2. single events, 32 in flight, end to end (vs bare loop)",
                _rate(main["single"]),
                _rate(bare),
                main["single"].rate / bare.rate,
                0.375,
                absolute=">= 3,000/s",
            ),
        ]
    latency = main["latency"].latency
    if latency is not None:
        for name, value, goal in (("p50", latency.p50, 5.0), ("p99", latency.p99, 25.0)):
            found.append(
                Target(
                    f"3. publish to arrival at {main['latency'].params['rate']:,.0f}/s, {name} ms",
                    f"{value * 1000:.1f} ms",
                    "-",
                    value * 1000,
                    goal,
                    at_most=True,
                )
            )
    if "backlog" in main:
        found.append(
            Target(
                "5. with the backlog waiting (vs empty store)",
                _rate(main["backlog"]),
                _rate(main["batch"]),
                main["backlog"].rate / main["batch"].rate,
                0.8,
            )
        )
    if celery is not None:
        found.append(
            Target(
                "5. batches (vs Celery + requests)",
                _rate(main["batch"]),
                _rate(celery),
                main["batch"].rate / celery.rate,
                5.0,
            )
        )
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="events in the throughput runs")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=32, help="single-event requests at once")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--celery-n", type=int, default=3000)
    parser.add_argument(
        "--delivery-processes",
        default="1",
        metavar="N[,N...]",
        help="layouts to measure (hookline serve --delivery-processes); targets use the first",
    )
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    layouts = [int(n) for n in args.delivery_processes.split(",")]

    results: list[RunResult] = []
    measured: list[dict[str, Any]] = []
    bare = celery = None
    with SinkProcess() as sink:
        for i, processes in enumerate(layouts):
            if i > 0:
                args.backlog = 0  # the growth is judged on the first layout only
            runs = measure_layout(sink, processes, args)
            measured.append(runs)
            results += runs.values()
        if not args.skip_peers:
            from bench.peers.celery_sender import run_celery_best

            bare = run_bare(sink, args.n)
            celery = max(run_celery_best(sink, args.celery_n), key=lambda r: r.rate)
            results += [bare, celery]
    found = targets(measured[0], bare, celery)
    print_table(results, title="sender, end to end")
    print_targets(found, title=f"sender targets ({_layout(layouts[0])})")
    if args.json:
        write_json(args.json, results, targets=[t.to_dict() for t in found], layouts=layouts)


if __name__ == "__main__":
    main()
