"""Sustained load on PostgreSQL: does the sender keep its pace, and its lanes table small?

    python -m bench.sender_sustained --minutes 10 --json bench/results/sender_sustained.json

``hookline serve --no-deliver`` on a new PostgreSQL database, ``--workers`` ``hookline
worker`` processes, and a publisher that keeps about ``--depth`` events waiting (batches
of 500 through ``POST /api/v1/events/batch``, spread over ``--users`` users) for the
whole run. Every ``--window`` seconds it prints the deliveries per second the sink
counted in that window beside the ``lanes`` table as PostgreSQL sees it: live and dead
rows, how many of its updates were HOT (no index touched), how often it was vacuumed
(by the engines, and by autovacuum), and its total size with indexes. A sender that
churns its lane rows faster than they are cleaned slows down window after window while
the table grows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench._common import write_json
from bench.hookline_server import HooklineServer
from bench.peers.sink import SinkProcess
from bench.sender import HEADERS, _event
from bench.sender_postgres import ADMIN_DSN, pg_database, workers

LANES_STATS = """
SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, autovacuum_count, vacuum_count,
       pg_total_relation_size('lanes') AS bytes
FROM pg_stat_user_tables WHERE relname = 'lanes'
"""


async def _sustain(
    sink: SinkProcess, server: HooklineServer, database: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    db = await asyncpg.connect(database)
    published = 0
    windows: list[dict[str, Any]] = []
    started = time.monotonic()
    end = started + args.minutes * 60
    next_window = started + args.window
    last_count = 0
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        while time.monotonic() < end:
            delivered = await asyncio.to_thread(sink.count)
            if published - delivered < args.depth:
                batch = range(published, published + 500)
                events = [_event(i, "sustained", args.users) for i in batch]
                async with session.post(
                    f"{server.base}/api/v1/events/batch", data=orjson.dumps({"events": events})
                ) as response:
                    if response.status != 202:
                        raise RuntimeError(f"publish failed: {response.status}")
                published += len(events)
            else:
                await asyncio.sleep(0.05)
            if time.monotonic() >= next_window:
                stats = dict(await db.fetchrow(LANES_STATS) or {})
                window = {
                    "at_s": round(next_window - started),
                    "deliveries_per_s": round((delivered - last_count) / args.window),
                    "waiting": published - delivered,
                    **stats,
                }
                windows.append(window)
                print(
                    f"{window['at_s']:>5} s  {window['deliveries_per_s']:>6,}/s  "
                    f"waiting {window['waiting']:>6,}  lanes: live {stats['n_live_tup']:>5,} "
                    f"dead {stats['n_dead_tup']:>8,}  hot {stats['n_tup_hot_upd']:>9,}/"
                    f"{stats['n_tup_upd']:<9,} vacuums {stats['vacuum_count']:>3} "
                    f"(auto {stats['autovacuum_count']:>3})  "
                    f"{stats['bytes'] / 1e6:.2f} MB",
                    flush=True,
                )
                last_count = delivered
                next_window += args.window
    await db.close()
    return windows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per line")
    parser.add_argument("--depth", type=int, default=5000, help="events kept waiting")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg", default=ADMIN_DSN, help="admin DSN of the PostgreSQL server")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    with (
        SinkProcess(record=False) as sink,
        pg_database(args.pg) as database,
        HooklineServer(database, args=("--no-deliver",)) as server,
    ):
        server.make_app("bench", sink.url, [f"user-{i}" for i in range(args.users)])
        with workers(database, args.workers):
            windows = asyncio.run(_sustain(sink, server, database, args))
    rates = [w["deliveries_per_s"] for w in windows]
    first = rates[: max(1, int(60 / args.window))]
    summary = {
        "first_minute_per_s": round(sum(first) / len(first)),
        "last_window_per_s": rates[-1],
        "last_vs_first_minute": round(rates[-1] / (sum(first) / len(first)), 3),
        "lanes_bytes_at_end": windows[-1]["bytes"],
    }
    for key, value in summary.items():
        print(f"{key}: {value}")
    if args.json:
        write_json(args.json, [], windows=windows, **summary, params=vars(args))


if __name__ == "__main__":
    main()
