"""How fast the receiver verifies, durably stores and acknowledges webhooks.

Three servers, one after the other, each in a process of its own, under the same load:

- ``bare``: answers 200 and nothing else, on the same uvicorn stack (the ceiling);
- ``hookline``: the real ``hookline receive`` on SQLite (WAL, synchronous=FULL), workers on;
- ``flask+celery``: Flask under gunicorn, verifying and enqueuing to Celery on Redis.

Two measurements each:

1. throughput: ``wrk`` (installed with apt-get if missing; otherwise an aiohttp loop)
   sends pre-signed webhooks, each with its own token, over 64 connections for
   ``--seconds``; the figure is 2xx answers per second, and for hookline the rows in the
   inbox are counted afterwards, so only what was really stored counts;
2. latency at a fixed rate (``--rate``, default 1,000/s, open loop: each request has a
   scheduled time and its latency runs from then, so a stall is not hidden).

    .venv/bin/python -m bench.receiver --json bench/results/receiver.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import (
    REPO,
    LatencySummary,
    RunResult,
    percentile,
    print_table,
    python_env,
    stop_process,
    summarize,
    write_json,
)
from bench.receiver_peers import BROKER, KEY, QUEUE
from hookline.events import encode_envelope, format_timestamp, new_token
from hookline.receiver.stages import STAGES, STAGES_ENV
from hookline.signing import sign_headers

LUA = Path(__file__).with_name("receiver_load.lua")
PACED_LUA = Path(__file__).with_name("receiver_paced.lua")
PACED_CONNECTIONS = 8
BIN = Path(sys.executable).parent
CONNECTIONS = 64


@dataclass
class Server:
    name: str
    command: list[str]
    database: Path | None = None

    @property
    def is_hookline(self) -> bool:
        return self.name.startswith("hookline")


def servers(port: int, workdir: Path, gunicorn_workers: int) -> list[Server]:
    db = workdir / "inbox.db"
    return [
        Server(
            "bare",
            [str(BIN / "uvicorn"), "bench.receiver_peers:bare_app", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
        ),
        Server(
            "hookline",
            [str(BIN / "hookline"), "receive", "bench.receiver_peers:receiver",
             "--database", f"sqlite:///{db}", "--port", str(port)],
            database=db,
        ),
        # The same, with its workers in another process: what accepting alone costs.
        Server(
            "hookline-accept-only",
            [str(BIN / "hookline"), "receive", "bench.receiver_peers:receiver",
             "--database", f"sqlite:///{workdir / 'inbox2.db'}", "--port", str(port),
             "--no-workers"],
            database=workdir / "inbox2.db",
        ),
        Server(
            "flask+celery",
            [str(BIN / "gunicorn"), "bench.receiver_peers:flask_app", "-b", f"127.0.0.1:{port}",
             "-w", str(gunicorn_workers), "-k", "gthread", "--threads", "4",
             "--log-level", "warning"],
        ),
    ]  # fmt: skip


# -- requests ----------------------------------------------------------------------------


def signed_requests(n: int, users: int = 1000) -> list[tuple[dict[str, str], bytes]]:
    """``n`` webhooks as the sender makes them, each with its own token and event id."""
    unix_ts = int(time.time())
    timestamp = format_timestamp(float(unix_ts))
    out = []
    for i in range(n):
        token = new_token()
        event_id = f"evt_{i}_{token[:8]}"
        body = encode_envelope(
            webhook_id="ep_bench",
            event_type="order_completed",
            timestamp=timestamp,
            token=token,
            event_id=event_id,
            user_id=f"user_{i % users}",
            data_json=b'{"id":"ord_%d","total":"9.99","currency":"USD"}' % i,
        )
        headers = sign_headers(
            [KEY], timestamp=timestamp, token=token, msg_id=event_id, unix_ts=unix_ts, body=body
        )
        out.append(({**headers, "Content-Type": "application/json"}, body))
    return out


def write_wrk_file(requests: Sequence[tuple[dict[str, str], bytes]], path: Path) -> None:
    with path.open("wb") as out:
        for headers, body in requests:
            fields = (
                headers["X-Selz-Signature"],
                headers["webhook-id"],
                headers["webhook-timestamp"],
                headers["webhook-signature"],
            )
            out.write("\t".join(fields).encode() + b"\t" + body + b"\n")


# -- load generators -------------------------------------------------------------------------


def ensure_wrk() -> str | None:
    """wrk's path, installing it with apt-get when we may; None to fall back to aiohttp."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("installing wrk with apt-get ...", file=sys.stderr)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet)  # type: ignore[call-overload]
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet)  # type: ignore[call-overload]
    return shutil.which("wrk")


def run_wrk(wrk: str, url: str, request_file: Path, seconds: float) -> tuple[int, float]:
    """(2xx answers, seconds) from one wrk run."""
    threads = 1  # one thread outruns any of the servers and leaves them the other core
    out = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(CONNECTIONS), "-d", f"{seconds:.0f}s",
         "--timeout", "10s", "-s", str(LUA), url, "--", str(request_file), str(threads)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    total = int(re.search(r"(\d+) requests in ([\d.]+)(m?s)", out).group(1))  # type: ignore[union-attr]
    took = re.search(r"requests in ([\d.]+)(m?s)", out)
    assert took is not None
    elapsed = float(took.group(1)) * (60 if took.group(2) == "m" else 1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if bad or errors:
        print(f"  wrk: {bad.group(0) if bad else ''} {errors.group(0) if errors else ''}")
    return total - (int(bad.group(1)) if bad else 0), elapsed


async def run_aiohttp(
    url: str, requests: Sequence[tuple[dict[str, str], bytes]], seconds: float
) -> tuple[int, float]:
    """The fallback: ``CONNECTIONS`` loops sending as fast as answers come back."""
    ok = 0
    deadline = time.monotonic() + seconds
    queue = iter(requests)

    async def loop(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for headers, body in queue:
            if time.monotonic() > deadline:
                return
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                ok += 200 <= response.status < 300

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(loop(session) for _ in range(CONNECTIONS)))
    return ok, time.monotonic() - started


def wrk_latency(
    wrk: str, url: str, request_file: Path, seconds: float, rate: float
) -> tuple[dict[str, float], int, float]:
    """wrk, each connection pausing between requests: (percentiles in ms, 2xx, seconds).

    wrk measures each request from its own send, in C, so the client adds next to
    nothing; the pauses keep the rate near ``rate`` while the server keeps up.
    """
    out = subprocess.run(
        [wrk, "-t", "1", "-c", str(PACED_CONNECTIONS), "-d", f"{seconds:.0f}s", "--latency",
         "-s", str(PACED_LUA), url, "--", str(request_file), "1", str(rate),
         str(PACED_CONNECTIONS)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    percentiles = {
        f"p{m.group(1)}": int(m.group(2)) / 1000  # microseconds, from receiver_paced.lua
        for m in re.finditer(r"^percentile ([\d.]+) (\d+)$", out, re.MULTILINE)
    }
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return percentiles, total - (int(bad.group(1)) if bad else 0), seconds


async def paced_latency(
    url: str, requests: Sequence[tuple[dict[str, str], bytes]], rate: float
) -> tuple[LatencySummary | None, int, float]:
    """Open loop at ``rate``/s: (latency from each request's scheduled time, non-2xx, p99.9)."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=512)
    failures = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        start = loop.time() + 0.5

        async def one(k: int, headers: dict[str, str], body: bytes) -> float:
            nonlocal failures
            scheduled = start + k / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    failures += not 200 <= response.status < 300
            except aiohttp.ClientError:  # an overwhelmed server drops connections
                failures += 1
            return loop.time() - scheduled

        took = await asyncio.gather(*(one(k, h, b) for k, (h, b) in enumerate(requests)))
    return summarize(took), failures, percentile(sorted(took), 99.9)


# -- one contender ---------------------------------------------------------------------------


def start(server: Server, port: int, stages_file: Path | None) -> subprocess.Popen[bytes]:
    env = python_env()
    if stages_file is not None:
        env[STAGES_ENV] = str(stages_file)
    proc = subprocess.Popen(server.command, cwd=REPO, env=env)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not start: {' '.join(server.command)}")
        time.sleep(0.1)


def profile(
    proc: subprocess.Popen[bytes], svg: str | None, seconds: float
) -> subprocess.Popen[bytes] | None:
    """py-spy (the bench extra) samples the server for the throughput run: a flame graph."""
    if not svg:
        return None
    duration = str(max(1, int(seconds) - 1))
    command = [str(BIN / "py-spy"), "record", "--pid", str(proc.pid), "--duration", duration,
               "--rate", "100", "--nonblocking", "--output", svg]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def stage_lines(stages_file: Path) -> list[dict[str, Any]]:
    if not stages_file.exists():
        return []
    return [json.loads(line) for line in stages_file.read_text().splitlines() if line]


def dump_stages(proc: subprocess.Popen[bytes], stages_file: Path) -> None:
    """Ask the receiver for its stage histograms so far (one JSON line each time)."""
    before = len(stage_lines(stages_file))
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while len(stage_lines(stages_file)) == before and time.monotonic() < deadline:
        time.sleep(0.05)


def stored_rows(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM inbox_webhooks").fetchone()[0])


def measure(
    server: Server, port: int, wrk: str | None, args: argparse.Namespace, workdir: Path
) -> list[RunResult]:
    url = f"http://127.0.0.1:{port}/webhooks"
    n = int(args.seconds * args.max_rate)
    print(f"{server.name}: signing {n:,} webhooks ...", file=sys.stderr)
    load = signed_requests(n)
    stages_file = workdir / f"{server.name}-stages.jsonl" if server.is_hookline else None
    proc = start(server, port, stages_file)
    try:
        profiler = profile(proc, args.profile, args.seconds) if server.name == "hookline" else None
        if wrk:
            request_file = workdir / f"{server.name}.tsv"
            write_wrk_file(load, request_file)
            acked, seconds = run_wrk(wrk, url, request_file, args.seconds)
        else:
            acked, seconds = asyncio.run(run_aiohttp(url, load, args.seconds))
        del load
        if profiler is not None:
            profiler.wait()
        if stages_file is not None:
            dump_stages(proc, stages_file)
        time.sleep(2)  # let the workers catch up before the latency run
        paced = signed_requests(int(args.rate * args.latency_seconds))
        if wrk:
            paced_file = workdir / f"{server.name}-paced.tsv"
            write_wrk_file(paced, paced_file)
            wrk_percentiles, wrk_ok, _ = wrk_latency(
                wrk, url, paced_file, args.latency_seconds, args.rate
            )
            if stages_file is not None:
                dump_stages(proc, stages_file)
            paced = signed_requests(int(args.rate * args.latency_seconds))
        # A full collection of this process's garbage mid-run would show up as server
        # latency: collect now, and not again until the run is over.
        gc.collect()
        gc.disable()
        try:
            latency, failures, aiohttp_p999 = asyncio.run(paced_latency(url, paced, args.rate))
        finally:
            gc.enable()
    finally:
        stop_process(proc)
    # One line per phase: throughput, paced wrk (if wrk), paced aiohttp.
    phases = ["max", *(["wrk"] if wrk else []), "aiohttp"]
    stage_summaries = [line["stages"] for line in stage_lines(stages_file)] if stages_file else []
    counted = acked
    params: dict[str, Any] = {"load": "wrk" if wrk else "aiohttp", "connections": CONNECTIONS}
    if server.database is not None:
        # What counts is what was stored: every acknowledged webhook must be a row.
        stored = stored_rows(server.database) - (len(paced) - failures) - (wrk_ok if wrk else 0)
        params["stored"] = stored
        counted = min(acked, stored)
    stages_of = dict(zip(phases, stage_summaries, strict=False))
    if "max" in stages_of:
        params["stages"] = stages_of["max"]
    throughput = RunResult(f"{server.name} (max)", n, counted, seconds, None, params)
    at_rate = RunResult(
        f"{server.name} @ {args.rate:,.0f}/s aiohttp",
        len(paced),
        len(paced) - failures,
        args.latency_seconds,
        latency,
        {"rate": args.rate, "non_2xx": failures, "generator": "aiohttp, open loop",
         "p99.9_ms": round(aiohttp_p999 * 1000, 2),
         **({"stages": stages_of["aiohttp"]} if "aiohttp" in stages_of else {})},
    )  # fmt: skip
    runs = [throughput, at_rate]
    if wrk:
        runs.append(
            RunResult(
                f"{server.name} @ {args.rate:,.0f}/s wrk",
                wrk_ok,
                wrk_ok,
                args.latency_seconds,
                _summary_from(wrk_percentiles),
                {
                    "rate": args.rate,
                    "generator": f"wrk, {PACED_CONNECTIONS} paced connections",
                    "p99.9_ms": wrk_percentiles.get("p99.9"),
                    **({"stages": stages_of["wrk"]} if "wrk" in stages_of else {}),
                },
            )
        )
    return runs


def _summary_from(percentiles: dict[str, float]) -> LatencySummary | None:
    if "p50" not in percentiles or "p99" not in percentiles:
        return None
    seconds = {k: v / 1000 for k, v in percentiles.items()}
    return LatencySummary(
        count=0,
        mean=seconds["p50"],
        p50=seconds["p50"],
        p90=seconds.get("p90", seconds["p99"]),
        p99=seconds["p99"],
        max=seconds["p99"],
    )


# -- PostgreSQL: two processes on one database ------------------------------------------------

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "hookline_bench_receiver"


async def _pg(dsn: str, *statements: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return [await conn.fetch(statement) for statement in statements]
    finally:
        await conn.close()


def measure_postgres(wrk: str, args: argparse.Namespace, workdir: Path) -> list[RunResult]:
    """Two ``hookline receive`` on one fresh database, each loaded by its own wrk at once."""
    admin = args.postgres
    url = admin.rsplit("/", 1)[0] + "/" + PG_DATABASE
    asyncio.run(_pg(admin, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
    asyncio.run(_pg(admin, f"CREATE DATABASE {PG_DATABASE}"))
    ports = [_free_port(), _free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    half = CONNECTIONS // 2
    try:
        for port in ports:
            command = [str(BIN / "hookline"), "receive", "bench.receiver_peers:receiver",
                       "--database", url, "--port", str(port)]  # fmt: skip
            procs.append(start(Server("hookline-postgres", command), port, None))
        files = []
        for k in range(2):
            print(f"postgres: signing {int(args.seconds * 6000):,} webhooks ...", file=sys.stderr)
            files.append(workdir / f"postgres-{k}.tsv")
            write_wrk_file(signed_requests(int(args.seconds * 6000)), files[-1])
        loads = [
            _start_wrk(wrk, port, f, half, args.seconds)
            for port, f in zip(ports, files, strict=True)
        ]
        outs = [load.communicate()[0] for load in loads]
        acked = sum(_wrk_ok(out) for out in outs)
        time.sleep(5)  # workers finish; the statistics collector catches up
        rows, stats = asyncio.run(
            _pg(
                url,
                "SELECT count(*) AS n FROM inbox_webhooks",
                "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count FROM pg_stat_user_tables"
                " WHERE relname IN ('inbox_webhooks', 'inbox_lanes')",
            )
        )
    finally:
        for proc in procs:
            stop_process(proc)
        asyncio.run(_pg(admin, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
    stored = int(rows[0]["n"])
    tables = {r["relname"]: {k: r[k] for k in ("n_live_tup", "n_dead_tup", "autovacuum_count")}
              for r in stats}  # fmt: skip
    params = {"processes": 2, "connections": CONNECTIONS, "stored": stored, "tables": tables}
    return [RunResult("hookline-postgres x2 (max)", stored, min(acked, stored), args.seconds,
                      None, params)]  # fmt: skip


def _start_wrk(
    wrk: str, port: int, request_file: Path, connections: int, seconds: float
) -> subprocess.Popen[str]:
    url = f"http://127.0.0.1:{port}/webhooks"
    command = [wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds:.0f}s",
               "--timeout", "10s", "-s", str(LUA), url, "--", str(request_file), "1"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _wrk_ok(out: str) -> int:
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total - (int(bad.group(1)) if bad else 0)


def purge_celery_queue() -> None:
    import redis

    redis.Redis.from_url(BROKER).delete(QUEUE)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="throughput run length")
    parser.add_argument("--max-rate", type=float, default=12_000, help="webhooks signed per s")
    parser.add_argument("--rate", type=float, default=1000.0, help="rate of the latency run")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--only", nargs="*", help="run only these servers (bare, hookline, ...)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--profile", metavar="SVG", help="py-spy flame graph of hookline here")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_ADMIN,
        help=f"also two processes on one PostgreSQL database (admin URL, default {PG_ADMIN})",
    )
    args = parser.parse_args(argv)

    wrk = ensure_wrk()
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
        workdir = Path(tmp)
        port = _free_port()
        for server in servers(port, workdir, args.gunicorn_workers):
            if args.only and server.name not in args.only:
                continue
            results.extend(measure(server, port, wrk, args, workdir))
            if server.name == "flask+celery":
                purge_celery_queue()
        if args.postgres and wrk:
            results.extend(measure_postgres(wrk, args, workdir))
    print_table(results, title="receiver: verified, stored, acknowledged")
    print_tails(results)
    print_stages(results)
    targets = check_targets(results)
    print_targets(targets)
    if args.json:
        write_json(args.json, results, benchmark="receiver", targets=targets)


# -- what the run says -----------------------------------------------------------------------


def print_tails(results: Sequence[RunResult]) -> None:
    print("\nlatency at a steady rate (ms): p50 / p99 / p99.9")
    for r in results:
        if r.latency is not None and "p99.9_ms" in r.params:
            ms = r.latency.ms()
            print(
                f"  {r.name:<40} {ms['p50']:7.2f} / {ms['p99']:7.2f} / {r.params['p99.9_ms']:7.2f}"
            )


def print_stages(results: Sequence[RunResult]) -> None:
    """Each hookline run's per-stage histogram, as the receiver recorded it."""
    for r in results:
        stages = r.params.get("stages")
        if not stages:
            continue
        print(f"\nstages of {r.name} (ms; accepted webhooks only)")
        print(
            f"  {'stage':<8} {'count':>8} {'mean':>8} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>8}"
        )
        for name in STAGES:
            h = stages[name]
            print(
                f"  {name:<8} {h['count']:>8} {h['mean_ms']:>8.3f} {h['p50_ms']:>8.3f} "
                f"{h['p99_ms']:>8.3f} {h['p99.9_ms']:>8.3f} {h['max_ms']:>8.3f}"
            )


def check_targets(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """The receiver's targets, each with its figure from this run and whether it is met."""
    by_name = {r.name: r for r in results}
    rates = {r.name.split(" ")[0]: r.rate for r in results if r.name.endswith("(max)")}
    out: list[dict[str, Any]] = []

    def target(name: str, figure: float | None, goal: float, *, at_most: bool = False) -> None:
        met = figure is not None and (figure <= goal if at_most else figure >= goal)
        out.append({"target": name, "figure": figure, "goal": goal, "met": met})

    hookline, bare, peer = rates.get("hookline"), rates.get("bare"), rates.get("flask+celery")
    postgres = by_name.get("hookline-postgres x2 (max)")
    if postgres is not None:
        target("acknowledged/s, two processes on PostgreSQL", round(postgres.rate), 5000)
    if hookline is not None:
        target("acknowledged/s, durable (hookline max)", round(hookline), 7000)
        if bare:
            target("share of the bare server in the same run", round(hookline / bare, 3), 0.25)
        if peer:
            target("times Flask + gunicorn + Celery", round(hookline / peer, 2), 8)
    paced = next((r for n, r in by_name.items() if n.startswith("hookline @") and "wrk" in n), None)
    paced = paced or by_name.get(next((n for n in by_name if n.startswith("hookline @")), ""))
    if paced is not None and paced.latency is not None:
        target(f"p99 ms, {paced.name}", round(paced.latency.p99 * 1000, 2), 5, at_most=True)
        p999 = paced.params.get("p99.9_ms")
        target(f"p99.9 ms, {paced.name}", p999, 20, at_most=True)
    return out


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    print("\ntargets")
    for t in targets:
        mark = "met    " if t["met"] else "NOT met"
        print(f"  {mark} {t['target']}: {t['figure']} (goal {t['goal']})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
