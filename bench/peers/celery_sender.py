"""The usual Python way: a Celery task per webhook, sent with requests.

This is how webhook sending is commonly built in Python, in its best usual form: Redis
as the broker, no result backend, one module-level ``requests.Session`` per worker so
connections are kept alive, ``--pool=solo`` workers (one process each, no prefork
overhead). The task signs the Selz webhook per SPEC.md and treats anything but a 2xx as
a failure to retry.

The driver starts the workers, waits until each answers a ping, then enqueues N tasks and
stops the clock when the sink has counted N arrivals::

    python -m bench.peers.celery_sender -n 5000 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import requests
from celery import Celery

from bench._common import RunResult, now, print_table, python_env, stop_process
from bench.peers._wire import build_webhook
from bench.peers.sink import SinkProcess

BROKER_ENV = "BENCH_CELERY_BROKER"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"
QUEUE = "hookline-bench-webhooks"  # our own queue, so a purge touches nothing else
DEFAULT_KEY = "bench-verification-key"
APP_MODULE = "bench.peers.celery_sender"  # not __name__: that is "__main__" under -m

app = Celery("bench_celery_peer", broker=os.environ.get(BROKER_ENV, DEFAULT_BROKER))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

# One per worker process: keep-alive to the endpoint is what makes requests fast.
SESSION = requests.Session()


class Rejected(requests.RequestException):
    """A non-2xx answer (3xx included: redirects are not followed)."""


@app.task(  # type: ignore[untyped-decorator]  # celery ships no type hints
    name="bench.deliver_webhook",
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    max_retries=8,
)
def deliver_webhook(url: str, key: str, event_id: str, user_id: str) -> int:
    headers, body = build_webhook(key, event_id=event_id, user_id=user_id)
    response = SESSION.post(url, data=body, headers=headers, timeout=10, allow_redirects=False)
    if not 200 <= response.status_code < 300:
        raise Rejected(f"HTTP {response.status_code} from {url}")
    return response.status_code


# -- driver -----------------------------------------------------------------------------


def start_workers(count: int, broker: str) -> list[subprocess.Popen[str]]:
    # Root in a container makes every worker print a long SecurityWarning; it is noise.
    quiet = "ignore:You're running the worker with superuser privileges"
    env = {**python_env(), BROKER_ENV: broker, "PYTHONWARNINGS": quiet}
    return [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", APP_MODULE, "--quiet", "worker"),
                *("--pool=solo", f"--hostname=bench{i}@%h", "--loglevel=WARNING", "-Q", QUEUE),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        for i in range(count)
    ]


def wait_until_ready(count: int, timeout: float = 60.0) -> None:
    """Return once ``count`` workers answer a ping: the clock must not time imports."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=0.5)) >= count:
            return
    raise TimeoutError(f"fewer than {count} Celery worker(s) answered within {timeout} s")


def _enqueue(url: str, n: int, key: str) -> dict[str, float]:
    sent: dict[str, float] = {}
    for i in range(n):
        event_id = f"celery-{i}"
        sent[event_id] = now()
        deliver_webhook.delay(url, key, event_id, f"usr_{i % 100}")
    return sent


def run_celery(
    sink: SinkProcess,
    n: int,
    *,
    workers: int = 1,
    key: str = DEFAULT_KEY,
    broker: str = DEFAULT_BROKER,
) -> RunResult:
    """Measure ``workers`` solo Celery workers sending ``n`` webhooks to the sink."""
    app.conf.broker_url = broker  # read when the first connection is made; set it before
    app.control.purge()  # leftovers of an aborted run would inflate the count
    procs = start_workers(workers, broker)
    try:
        wait_until_ready(workers)
        params = {"workers": workers, "pool": "solo", "broker": broker}
        return sink.measure(
            f"celery+requests ({workers} solo)", n, lambda: _enqueue(sink.url, n, key), params
        )
    finally:
        for proc in procs:
            stop_process(proc)
        app.control.purge()


def run_celery_best(
    sink: SinkProcess, n: int, *, worker_counts: Sequence[int] = (1, 2), **kwargs: Any
) -> list[RunResult]:
    """One run per worker count; the caller reports ``max(results, key=rate)``."""
    return [run_celery(sink, n, workers=count, **kwargs) for count in worker_counts]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Celery + requests, the usual Python way")
    parser.add_argument("-n", type=int, default=5_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    args = parser.parse_args(argv)
    with SinkProcess() as sink:
        results = run_celery_best(sink, args.n, worker_counts=args.workers, broker=args.broker)
    print_table(results, title="Celery + requests")


if __name__ == "__main__":
    main()
