"""hookline's throughput with each HTTP transport, beside the bare aiohttp loop, in one run.

    python -m bench.sender_transport --rounds 3 --json bench/results/transport.json

Each round runs the batch-published throughput run of ``bench.sender`` (one endpoint,
``--users`` users, SQLite) once per transport (``HOOKLINE_TRANSPORT``), then the bare
aiohttp loop into the same sink, so every figure has its ceiling from the same minutes
of a shared, noisy machine. Besides deliveries/s it reports the CPU time of the
``hookline serve`` process per delivery (user + system, from /proc), which is what a
cheaper transport saves.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bench._common import RunResult, print_table, write_json
from bench.hookline_server import HooklineServer
from bench.peers.bare_sender import run_bare
from bench.peers.sink import SinkProcess
from bench.sender import run_throughput

TRANSPORTS = ("aiohttp", "reqwest")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (reqwest's included)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    results: list[RunResult] = []
    ratios: dict[str, list[float]] = {}
    with SinkProcess() as sink:
        for _ in range(args.rounds):
            round_results = [
                run_transport(sink, kind, args.n, args.users)
                for kind in args.transports.split(",")
            ]
            bare = run_bare(sink, args.n)
            for result in round_results:
                ratio = round(result.rate / bare.rate, 3)
                result.params["vs_bare_loop"] = ratio
                ratios.setdefault(result.name, []).append(ratio)
            results += [*round_results, bare]
    print_table(results, title="sender throughput by transport")
    for result in results:
        if "serve_cpu_us_per_delivery" in result.params:
            print(
                f"{result.name}: {result.rate:,.0f}/s, {result.params['vs_bare_loop']:.0%} of "
                f"the bare loop, {result.params['serve_cpu_us_per_delivery']} µs CPU/delivery"
            )
    extra: dict[str, Any] = {"vs_bare_loop": ratios}
    print(extra)
    if args.json:
        write_json(args.json, results, **extra)


if __name__ == "__main__":
    main()
