"""The sender on PostgreSQL with 1, 2 and 4 worker processes, beside SQLite and the ceiling.

    python -m bench.sender_postgres --json bench/results/sender_postgres.json \
        --svg docs/img/sender-postgres.svg

One sink process and, in one run, the same end-to-end throughput measurement as
``bench.sender`` (events published in batches through the API until the sink counted
every delivery):

* ``hookline serve`` on SQLite, delivering itself (the single-machine figure);
* ``hookline serve --no-deliver`` on PostgreSQL with 1, 2 and 4 ``hookline worker``
  processes, each count on a database of its own (made and dropped here);
* the bare aiohttp ceiling.

PostgreSQL must answer at ``--pg`` (default: the local server's ``postgres`` database,
used only to create and drop ``hookline_bench_*`` databases).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from bench._common import REPO, RunResult, print_table, python_env, stop_process, write_json
from bench.hookline_server import ADMIN_TOKEN, HooklineServer
from bench.peers.bare_sender import run_bare
from bench.peers.sink import SinkProcess
from bench.sender import run_throughput

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
HOOKLINE = str(Path(sys.executable).with_name("hookline"))


@contextlib.contextmanager
def pg_database(admin_dsn: str) -> Iterator[str]:
    """A new database for one measurement, dropped afterwards."""
    name = "hookline_bench_" + secrets.token_hex(4)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def workers(database: str, count: int) -> Iterator[None]:
    env = {
        **python_env(),
        "HOOKLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "HOOKLINE_ALLOW_PRIVATE_TARGETS": "1",
    }
    procs = [
        subprocess.Popen(
            [HOOKLINE, "worker", "--database", database],
            env=env,
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for proc in procs:
            stop_process(proc, timeout=30)


def run_postgres(sink: SinkProcess, admin_dsn: str, count: int, n: int, users: int) -> RunResult:
    with (
        pg_database(admin_dsn) as database,
        HooklineServer(database, args=("--no-deliver",)) as server,
    ):
        server.make_app("bench", sink.url, [f"user-{i}" for i in range(users)], max_in_flight=128)
        with workers(database, count):
            plural = "s" if count > 1 else ""
            return run_throughput(
                sink,
                server,
                n,
                name=f"hookline (PostgreSQL, {count} worker{plural})",
                users=users,
                prefix=f"pg{count}",
            )


def run_sqlite(sink: SinkProcess, n: int, users: int) -> RunResult:
    with HooklineServer() as server:
        server.make_app("bench", sink.url, [f"user-{i}" for i in range(users)], max_in_flight=128)
        return run_throughput(
            sink, server, n, name="hookline (SQLite, 1 process)", users=users, prefix="sqlite"
        )


def svg_chart(results: list[RunResult]) -> str:
    """Deliveries per second as horizontal bars: no plotting library needed."""
    width, bar, gap, left = 640, 26, 10, 250
    scale = (width - left - 90) / max(r.rate for r in results)
    rows = []
    for i, result in enumerate(results):
        y = 40 + i * (bar + gap)
        length = max(1.0, result.rate * scale)
        rows.append(
            f'<text x="{left - 8}" y="{y + 18}" text-anchor="end">{result.name}</text>'
            f'<rect x="{left}" y="{y}" width="{length:.0f}" height="{bar}" fill="#4c78a8"/>'
            f'<text x="{left + length + 6:.0f}" y="{y + 18}">{result.rate:,.0f}/s</text>'
        )
    height = 40 + len(results) * (bar + gap) + 10
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="13">'
        '<text x="10" y="22" font-weight="bold">Sender, end to end: deliveries per second</text>'
        + "".join(rows)
        + "</svg>\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="events per measurement")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pg", default=ADMIN_DSN, help="admin DSN of the PostgreSQL server")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--svg", metavar="PATH", help="write a bar chart of the rates here")
    args = parser.parse_args(argv)

    results: list[RunResult] = []
    with SinkProcess() as sink:
        if not args.skip_sqlite:
            results.append(run_sqlite(sink, args.n, args.users))
        for count in args.workers:
            results.append(run_postgres(sink, args.pg, count, args.n, args.users))
        if not args.skip_ceiling:
            results.append(run_bare(sink, args.n))
    print_table(results, title="sender on PostgreSQL, end to end")
    pg = {int(r.name.split(", ")[1].split()[0]): r.rate for r in results if "PostgreSQL" in r.name}
    extra: dict[str, Any] = {}
    if 1 in pg:
        extra["scaling_vs_1_worker"] = {k: round(v / pg[1], 2) for k, v in sorted(pg.items())}
        print("scaling vs 1 worker:", extra["scaling_vs_1_worker"])
    if args.json:
        write_json(args.json, results, **extra)
    if args.svg:
        Path(args.svg).parent.mkdir(parents=True, exist_ok=True)
        Path(args.svg).write_text(svg_chart(results))


if __name__ == "__main__":
    main()
