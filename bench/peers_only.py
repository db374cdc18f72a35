"""The two reference points, in one run against one sink: the bare aiohttp ceiling and
Celery + requests (the usual Python way), so hookline's figures have a scale.

    python -m bench.peers_only [--bare-n 20000] [--celery-n 5000] [--json PATH]

Each contender is measured the same way (``SinkProcess.measure``): the clock runs from
the first send (or enqueue) until the sink has counted every arrival.
"""

from __future__ import annotations

import argparse

from bench._common import RunResult, print_table, write_json
from bench.peers.bare_sender import DEFAULT_CONCURRENCY, run_bare
from bench.peers.celery_sender import DEFAULT_BROKER, run_celery_best
from bench.peers.sink import SinkProcess


def best(results: list[RunResult]) -> RunResult:
    return max(results, key=lambda r: r.rate)


def run(args: argparse.Namespace) -> list[RunResult]:
    results: list[RunResult] = []
    with SinkProcess(impl=args.sink_impl) as sink:
        # Best of a few: on a shared machine a single run can land on a busy moment.
        bare = [
            run_bare(sink, args.bare_n, concurrency=args.concurrency)
            for _ in range(args.bare_repeat)
        ]
        results.append(best(bare))
        if not args.skip_celery:
            celery = run_celery_best(
                sink, args.celery_n, worker_counts=args.workers, broker=args.broker
            )
            results.extend(celery)
    return results


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--bare-n", type=int, default=20_000)
    parser.add_argument("--bare-repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--celery-n", type=int, default=5_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--sink-impl", choices=["raw", "aiohttp"], default="raw")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    results = run(args)
    print_table(results, title="peers: signed webhooks to a local sink")
    celery = [r for r in results if r.name.startswith("celery")]
    if celery:
        ceiling, usual = results[0], best(celery)
        print(f"ceiling {ceiling.rate:,.0f}/s; best Celery {usual.rate:,.0f}/s ({usual.name})")
    if args.json:
        write_json(args.json, results, args=vars(args))


if __name__ == "__main__":
    main()
