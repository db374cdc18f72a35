"""Flowing past a flaky endpoint: an ordered endpoint that answers 500 to a fifth of
requests at random, fed at a steady rate, as a new user would try it.

    python -m bench.flaky_endpoint --json bench/results/flaky_endpoint.json
    python -m bench.flaky_endpoint --duration 60          # a quicker run

``--rate`` single events a second (150) through ``POST /api/v1/events`` for
``--duration`` seconds (180) over ``--users`` users (50) into one ordered endpoint (the
default) of ``hookline serve`` on SQLite. The sink, a process of its own, answers 500 to
``--fail`` of the requests (0.2) at random and 200 to the rest, and checks each user's
order as the 2xx answers arrive. Figures: the share of events delivered within 30 s of
publishing, publish-to-arrival p50/p99 (to the 2xx), order violations (an event answered
2xx before an earlier one of its user) and duplicates (one answered 2xx twice), and the
requests the sink answered 500.

The run waits ``--grace`` seconds (60) after the last publish for stragglers; events
still missing then count as not delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench._common import (
    RunResult,
    now,
    print_table,
    python_cmd,
    start_process,
    stop_process,
    summarize,
    write_json,
)
from bench.hookline_server import ADMIN_TOKEN, HooklineServer
from bench.peers.bare_sender import run_loop

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
WITHIN = 30.0


# -- the flaky sink (its own process) ---------------------------------------------------


@dataclass(slots=True)
class FlakySink:
    fail: float
    answered_500: int = 0
    arrivals: dict[str, float] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)
    violations: int = 0
    duplicates: int = 0

    def take(self, body: bytes) -> int:
        if random.random() < self.fail:
            self.answered_500 += 1
            return 500
        envelope = orjson.loads(body)
        event_id, user = envelope["event_id"], envelope["user_id"]
        seq = int(envelope["data"]["seq"])
        if event_id in self.arrivals:
            self.duplicates += 1
            return 200
        self.arrivals[event_id] = now()
        if seq != self.last_seq.get(user, -1) + 1:
            self.violations += 1
        self.last_seq[user] = max(seq, self.last_seq.get(user, -1))
        return 200

    def state(self) -> dict[str, Any]:
        return {
            "arrivals": self.arrivals,
            "answered_500": self.answered_500,
            "violations": self.violations,
            "duplicates": self.duplicates,
        }


async def _serve(fail: float) -> None:
    from aiohttp import web

    sink = FlakySink(fail)

    async def webhook(request: web.Request) -> web.Response:
        status = sink.take(await request.read())
        return web.Response(status=status, text="ok" if status == 200 else "flaky")

    async def state(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(sink.state()), content_type="application/json")

    app = web.Application()
    app.router.add_get("/_state", state)
    app.router.add_post("/webhooks", webhook)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"listening {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


# -- the publisher ----------------------------------------------------------------------


def _event(i: int, users: int) -> dict[str, Any]:
    return {
        "event_id": f"flaky-{i}",
        "event_type": "order_completed",
        "user_id": f"user-{i % users}",
        "data": {"id": f"order-{i}", "seq": i // users},
    }


async def _publish(base: str, n: int, rate: float, users: int) -> dict[str, float]:
    """One event per request at a steady ``rate``, each request in its own task; a
    user's publish waits for that user's previous one to be answered, as a platform
    publishing one user's changes in order does (concurrent publishes for one user have
    no order the sink could check)."""
    sent: dict[str, float] = {}
    failures: list[int] = []
    last_of_user: dict[str, asyncio.Task[None]] = {}

    async def one(
        session: aiohttp.ClientSession, event: dict[str, Any], after: asyncio.Task[None] | None
    ) -> None:
        if after is not None:
            await after
        sent[event["event_id"]] = now()
        async with session.post(f"{base}/api/v1/events", data=orjson.dumps(event)) as response:
            if response.status != 202:
                failures.append(response.status)

    async with aiohttp.ClientSession(headers=HEADERS) as session:
        tasks = []
        started = time.perf_counter()
        for i in range(n):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            event = _event(i, users)
            user = event["user_id"]
            task = asyncio.create_task(one(session, event, last_of_user.get(user)))
            last_of_user[user] = task
            tasks.append(task)
        await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{len(failures)} publishes failed, e.g. {failures[0]}")
    return sent


def _sink_state(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_state", timeout=30) as response:
        return dict(json.loads(response.read()))


def run(args: argparse.Namespace) -> tuple[RunResult, dict[str, Any]]:
    n = int(args.rate * args.duration)
    sink, port = start_process(python_cmd("bench.flaky_endpoint", "--serve-sink", str(args.fail)))
    try:
        with HooklineServer(args.database) as server:
            users = [f"user-{i}" for i in range(args.users)]
            server.make_app("flaky", f"http://127.0.0.1:{port}/webhooks", users)
            started = now()
            sent = run_loop(lambda: _publish(server.base, n, args.rate, args.users))
            deadline = time.monotonic() + args.grace
            state = _sink_state(port)
            while len(state["arrivals"]) < n and time.monotonic() < deadline:
                time.sleep(1.0)
                state = _sink_state(port)
            finished = now()
    finally:
        stop_process(sink)
    arrivals: dict[str, float] = state["arrivals"]
    waits = [arrivals[key] - t for key, t in sent.items() if key in arrivals]
    within = sum(1 for w in waits if w <= WITHIN)
    result = RunResult(
        name=f"hookline, ordered, {args.fail:.0%} answered 500",
        requested=n,
        delivered=len(arrivals),
        seconds=finished - started,
        latency=summarize(waits),
        params={"rate": args.rate, "duration": args.duration, "users": args.users},
    )
    figures = {
        "delivered_within_30s_pct": round(100 * within / n, 2) if n else 0.0,
        "delivered_pct": round(100 * len(arrivals) / n, 2) if n else 0.0,
        "order_violations": state["violations"],
        "duplicates": state["duplicates"],
        "answered_500": state["answered_500"],
    }
    return result, figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=150.0, help="events a second")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of publishing")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--fail", type=float, default=0.2, help="share answered 500")
    parser.add_argument("--grace", type=float, default=60.0, help="seconds to wait after")
    parser.add_argument("--database", help="hookline's database URL (default: a new SQLite)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--serve-sink", type=float, metavar="FAIL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sink is not None:
        asyncio.run(_serve(args.serve_sink))
        return

    result, figures = run(args)
    print_table([result], title="a flaky endpoint, ordered")
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        write_json(args.json, [result], **figures)


if __name__ == "__main__":
    main()
