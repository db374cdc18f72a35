"""hookline's throughput with each HTTP transport, beside the bare aiohttp loop, in one run.

    python -m bench.sender_transport --rounds 3 --json bench/results/transport.json

Each round runs the batch-published throughput run of ``bench.sender`` (one endpoint,
``--users`` users, SQLite) once per transport (``HOOKLINE_TRANSPORT``), then the bare
aiohttp loop into the same sink, so every figure has its ceiling from the same minutes
of a shared, noisy machine. Besides deliveries/s it reports the CPU time of the
``hookline serve`` process per delivery (user + system, from /proc), which is what a
cheaper transport saves. Then each transport alone (no store, no API) sends the same
number of signed attempts at 64 in flight, with the CPU per request of the event loop's
thread and of the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import replace
from typing import Any

from bench._common import RunResult, now, print_table, write_json
from bench.hookline_server import HooklineServer
from bench.peers.bare_sender import run_bare, run_loop
from bench.peers.sink import SinkProcess
from bench.sender import run_throughput
from hookline.sender.attempt import build_request
from hookline.sender.transport import new_transport
from hookline.store.records import Job

TRANSPORTS = ("aiohttp", "reqwest")
JOB = Job(
    delivery_id=1, token="t" * 48, attempts=0, endpoint_id="ep_bench", lane="user-1",
    user_id="user-1", app_id="app_bench", event_type="order_completed", event_id="",
    data='{"id":"order-1","reference_id":"XZHQ59WA","total":19.99}', url="", timeout=10.0,
    keys=("bench-key",),
)  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (``serve`` starts a delivery
    process), all their threads (reqwest's included)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/task/{pid}/children") as file:
        return total + sum(_cpu_seconds(int(child)) for child in file.read().split())


def run_transport(sink: SinkProcess, kind: str, n: int, users: int) -> RunResult:
    with HooklineServer(HOOKLINE_TRANSPORT=kind) as server:
        server.make_app("bench", sink.url, [f"user-{i}" for i in range(users)], max_in_flight=128)
        pid = server._proc.pid  # type: ignore[union-attr]
        before = _cpu_seconds(pid)
        result = run_throughput(
            sink, server, n, name=f"hookline, {kind}", users=users, prefix=f"{kind}-"
        )
        cpu = _cpu_seconds(pid) - before
    # The serve process also runs the API that takes the publishes: this is the CPU of
    # the whole server per delivery, of which the transport is one part.
    result.params["serve_cpu_us_per_delivery"] = round(cpu / max(result.delivered, 1) * 1e6, 1)
    return result


async def _post_all(kind: str, url: str, n: int, concurrency: int) -> dict[str, float]:
    """``n`` signed attempts through one transport, as the engine makes them."""
    transport = new_transport(allow_private=True, kind=kind)
    ids = iter(range(n))
    sent: dict[str, float] = {}

    async def worker() -> None:
        for i in ids:
            job = replace(JOB, url=url, event_id=f"{kind}-{i}")
            body, headers = build_request(job, time.time())
            sent[job.event_id] = now()
            reply = await transport.post(job, body, headers)
            if reply.status != 200:
                raise RuntimeError(f"{kind}: {reply}")

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await transport.close()
    return sent


def run_alone(sink: SinkProcess, kind: str, n: int, concurrency: int = 64) -> RunResult:
    """The transport alone (no store, no API): deliveries/s, and the CPU per request of
    the event loop's thread (what the engine's loop pays) and of the whole process
    (reqwest's own thread included)."""
    cpu: dict[str, float] = {}

    def send() -> dict[str, float]:
        thread, process = time.thread_time(), time.process_time()
        sent = run_loop(lambda: _post_all(kind, sink.url, n, concurrency))
        cpu["loop"], cpu["process"] = time.thread_time() - thread, time.process_time() - process
        return sent

    result = sink.measure(f"{kind} transport alone (c={concurrency})", n, send)
    result.params["loop_cpu_us_per_request"] = round(cpu["loop"] / n * 1e6, 1)
    result.params["process_cpu_us_per_request"] = round(cpu["process"] / n * 1e6, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    kinds = args.transports.split(",")

    results: list[RunResult] = []
    ratios: dict[str, list[float]] = {}
    with SinkProcess() as sink:
        for number in range(args.rounds):
            # In turns, so that neither always runs first (or last) in a round.
            order = kinds if number % 2 == 0 else kinds[::-1]
            round_results = [run_transport(sink, kind, args.n, args.users) for kind in order]
            bare = run_bare(sink, args.n)
            round_results += [run_alone(sink, kind, args.n) for kind in order]
            for result in round_results:
                ratio = round(result.rate / bare.rate, 3)
                result.params["vs_bare_loop"] = ratio
                ratios.setdefault(result.name, []).append(ratio)
            results += [*round_results, bare]
    print_table(results, title="sender throughput by transport")
    for result in results:
        cpu = {k: v for k, v in result.params.items() if k.endswith(("_delivery", "_request"))}
        if cpu:
            ratio = result.params["vs_bare_loop"]
            print(f"{result.name}: {result.rate:,.0f}/s, {ratio:.0%} of the bare loop, {cpu}")
    extra: dict[str, Any] = {"vs_bare_loop": ratios}
    print(extra)
    if args.json:
        write_json(args.json, results, **extra)


if __name__ == "__main__":
    main()
