"""What tracing costs the sender: the throughput run of bench/sender.py with tracing off,
off with a ``traceparent`` at publish (stored and passed on), on (OpenTelemetry spans
for every publish, fan-out and attempt, exported over OTLP/HTTP to a loopback collector),
and on with a tenth of the traces sampled, beside the bare aiohttp loop of the same run.

    python -m bench.tracing [-n 20000] [--rounds 2] [--json bench/results/tracing.json]

The variants take turns, ``--rounds`` times, each on a fresh ``hookline serve``; the
machine is shared and noisy, so compare the ratios of one run, not figures across runs.
With tracing on, the batch processor's queue is made large enough to export every span
(the SDK's default of 2,048 would drop most of them at these rates, and cost less); the
collector decodes nothing, it counts requests and bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import orjson

from bench._common import RunResult, now, print_table, write_json
from bench.hookline_server import HooklineServer
from bench.peers.bare_sender import run_bare, run_loop
from bench.peers.sink import SinkProcess
from bench.sender import HEADERS, _event

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Collector:
    """Takes OTLP/HTTP exports and counts them; answers an empty success."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(size)
                collector.requests += 1
                collector.bytes += size
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def collector() -> Iterator[_Collector]:
    running = _Collector()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


async def _publish(
    base: str, n: int, prefix: str, users: int, traceparent: bool
) -> dict[str, float]:
    """As bench/sender.py: batches of 500, four at once; with a traceparent if asked."""
    sent: dict[str, float] = {}
    chunks = iter(range(0, n, 500))
    headers = {**HEADERS, **({"traceparent": TRACEPARENT} if traceparent else {})}

    async def publisher(session: aiohttp.ClientSession) -> None:
        for start in chunks:
            events = [_event(i, prefix, users) for i in range(start, min(start + 500, n))]
            moment = now()
            for e in events:
                sent[e["event_id"]] = moment
            body = orjson.dumps({"events": events})
            async with session.post(f"{base}/api/v1/events/batch", data=body) as response:
                if response.status != 202:
                    text = await response.text()
                    raise RuntimeError(f"publish failed: {response.status} {text}")

    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(publisher(session) for _ in range(4)))
    return sent


def run_variant(
    sink: SinkProcess, name: str, n: int, users: int, *, traceparent: bool, env: dict[str, str]
) -> RunResult:
    with HooklineServer(**env) as server:
        server.make_app("bench", sink.url, [f"user-{i}" for i in range(users)], max_in_flight=128)
        prefix = "".join(c if c.isalnum() else "-" for c in name)

        def send() -> dict[str, float]:
            return run_loop(lambda: _publish(server.base, n, prefix, users, traceparent))

        return sink.measure(name, n, send, {"users": users, "batch": 500})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="events in each run")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    results: list[RunResult] = []
    rates: dict[str, list[float]] = {}
    with SinkProcess() as sink, collector() as otlp:
        traced_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_MAX_QUEUE_SIZE": "200000",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
        }
        sampled_env = {
            **traced_env,
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        variants = [
            ("tracing off", False, {}),
            ("tracing off, traceparent given", True, {}),
            ("tracing on (OTLP), traceparent given", True, traced_env),
            ("tracing on, 10 % of traces sampled", False, sampled_env),
        ]
        for _ in range(args.rounds):
            for name, traceparent, env in variants:
                result = run_variant(
                    sink, name, args.n, args.users, traceparent=traceparent, env=env
                )
                results.append(result)
                rates.setdefault(name, []).append(result.rate)
            bare = run_bare(sink, args.n)
            results.append(bare)
            rates.setdefault("bare", []).append(bare.rate)
        exported = {"otlp_requests": otlp.requests, "otlp_bytes": otlp.bytes}
    print_table(results, title="sender with and without tracing")
    median = {name: statistics.median(values) for name, values in rates.items()}
    extra: dict[str, Any] = {**exported}
    off = median["tracing off"]
    for name, _, _ in variants:
        extra[f"{name} / off"] = round(median[name] / off, 3)
        extra[f"{name} / bare"] = round(median[name] / median["bare"], 3)
    for key, value in extra.items():
        print(f"{key}: {value}")
    if args.json:
        write_json(args.json, results, **extra)


if __name__ == "__main__":
    main()
