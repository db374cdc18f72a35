"""The delivery processes of ``hookline serve``, started, watched and stopped by it.

One Python process uses one core: the API (parsing, validating, committing events)
and the engine (claiming, signing, sending, recording) in one event loop hold each
other back. ``hookline serve`` therefore runs the API in its own process and starts
``--delivery-processes`` children that only deliver (``hookline worker --supervised``),
on the same database: SQLite in WAL mode takes one writer at a time from any process,
and publishes wake the children at once (``Store.on_published``).

The children are bound to their parent:

* each child reads its stdin, a pipe from the parent; when it closes (the parent
  exited, or was killed with ``kill -9``) the child stops as on SIGTERM, so no child
  outlives ``serve``;
* a child that dies is started again at once, then after growing pauses; one that
  keeps dying (``CRASH_LIMIT`` times within ``CRASH_WINDOW`` seconds) stops the whole
  server with an error instead of delivering nothing quietly;
* each child writes a status line to its stdout a few times a second (deliveries in
  flight, attempts by outcome, their latencies), so ``/healthz`` and ``/metrics`` of
  the API process count every process's deliveries, as they did with one process.

A child killed mid-delivery loses nothing: its lanes stay leased until their leases
end, then the new child sends their heads again with the same tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from hookline.sender.engine import EngineObserver
from hookline.store import AttemptResult, Disabled, Job, Probe

if TYPE_CHECKING:
    from hookline.metrics import SenderMetrics

log = logging.getLogger("hookline.processes")

#: A child that dies this often within the window stops the server.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
#: Seconds between two status lines of a child.
REPORT_INTERVAL = 0.25
#: Seconds a child has to stop by itself (finish and record its sends) before SIGKILL.
STOP_GRACE = 20.0


def worker_command(database: str, *, allow_private_targets: bool, json_logs: bool) -> list[str]:
    """The command line of one delivery child."""
    command = [sys.executable, "-m", "hookline", "worker", "--supervised"]
    command += ["--database", database]
    if allow_private_targets:
        command.append("--allow-private-targets")
    if json_logs:
        command.append("--json-logs")
    return command


class DeliveryProcesses:
    """``count`` children running ``command``, kept alive while the server runs."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        *,
        metrics: SenderMetrics | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.command = list(command)
        self.count = count
        self._metrics = metrics
        self._on_failure = on_failure or _stop_this_process
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._in_flight: dict[int, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        #: Set when a child kept dying and the server was told to stop.
        self.failed = False

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._keep_running(slot), name=f"hookline-delivery-{slot}")
            for slot in range(self.count)
        ]

    async def stop(self) -> None:
        """SIGTERM every child (each finishes and records its sends), and wait for them."""
        self._stopping = True
        procs = [p for p in self._procs.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                log.error("delivery process %d did not stop; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _keep_running(self, slot: int) -> None:
        crashes: list[float] = []
        while not self._stopping:
            code = await self._run_once(slot)
            if self._stopping:
                return
            now = time.monotonic()
            crashes = [t for t in crashes if now - t < CRASH_WINDOW] + [now]
            if len(crashes) >= CRASH_LIMIT:
                log.critical(
                    "delivery process %d exited with code %s, %d times within %g s; "
                    "stopping hookline serve (see the errors above)",
                    slot,
                    code,
                    len(crashes),
                    CRASH_WINDOW,
                )
                self.failed = True
                self._on_failure()
                return
            pause = 0.0 if len(crashes) == 1 else min(0.25 * 2 ** len(crashes), 5.0)
            log.error(
                "delivery process %d exited with code %s; starting it again in %g s",
                slot,
                code,
                pause,
            )
            await asyncio.sleep(pause)

    async def _run_once(self, slot: int) -> int | None:
        """Run one child until it exits; return its exit code."""
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._procs[slot] = proc
        assert proc.stdout is not None
        try:
            async for line in proc.stdout:
                self._report(slot, line)
            return await proc.wait()
        finally:
            self._in_flight.pop(slot, None)
            if proc.stdin is not None:
                proc.stdin.close()

    def _report(self, slot: int, line: bytes) -> None:
        try:
            report = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("delivery process %d wrote %r", slot, line[:200])
            return
        self._in_flight[slot] = int(report.get("in_flight", 0))
        if self._metrics is not None:
            apply_report(self._metrics, report, self.in_flight)


def apply_report(metrics: SenderMetrics, report: dict[str, Any], in_flight: int) -> None:
    """Count a child's status line in the API process's metrics."""
    for outcome, count in report.get("attempts", {}).items():
        metrics.attempts.labels(outcome).inc(count)
    for latency_ms in report.get("latencies_ms", ()):
        metrics.latency.observe(latency_ms / 1000)
    if report.get("disabled"):
        metrics.endpoints_auto_disabled.inc(report["disabled"])
    if report.get("enabled"):
        metrics.endpoints_reenabled.inc(report["enabled"])
    metrics.in_flight.set(in_flight)


def _stop_this_process() -> None:
    """Stop the server as Ctrl-C would: the lifespan's shutdown stops the children.

    SIGINT, not SIGTERM: uvicorn raises the signal it stopped for again once it has
    stopped, and SIGINT then ends as a ``KeyboardInterrupt`` that ``serve`` turns into
    its error, where SIGTERM would end the process before it could say anything."""
    os.kill(os.getpid(), signal.SIGINT)


# -- the child's side -----------------------------------------------------------------


class Reporter(EngineObserver):
    """Gathers what the engine did since the last status line (the child's observer)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._attempts: Counter[str] = Counter()
        self._latencies: list[float] = []
        self._disabled = 0
        self._enabled = 0

    def before_attempt(self, job: Job) -> None:
        self.in_flight += 1

    def after_attempt(self, result: AttemptResult) -> None:
        self.in_flight -= 1
        self._attempts[result.outcome] += 1
        if result.latency_ms is not None:
            self._latencies.append(round(result.latency_ms, 2))

    def endpoint_disabled(self, endpoint: Disabled) -> None:
        self._disabled += 1

    def endpoint_enabled(self, endpoint: Probe) -> None:
        self._enabled += 1

    def line(self) -> bytes:
        """The status line, and a fresh start for the next one."""
        report: dict[str, Any] = {"in_flight": self.in_flight, "attempts": self._attempts}
        if self._latencies:
            report["latencies_ms"] = self._latencies
        if self._disabled:
            report["disabled"] = self._disabled
        if self._enabled:
            report["enabled"] = self._enabled
        self._attempts, self._latencies = Counter(), []
        self._disabled = self._enabled = 0
        return orjson.dumps(report) + b"\n"


async def report_to_parent(reporter: Reporter, stop: asyncio.Event) -> None:
    """Write a status line to stdout every ``REPORT_INTERVAL``, and set ``stop`` when
    stdin (the pipe from the parent) closes: the parent is gone."""
    loop = asyncio.get_running_loop()
    stdin = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(stdin, 4096)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(stdin)
            stop.set()

    os.set_blocking(stdin, False)
    loop.add_reader(stdin, readable)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_INTERVAL)
            if not write_report(reporter):
                stop.set()  # the parent is gone
    finally:
        loop.remove_reader(stdin)


def write_report(reporter: Reporter) -> bool:
    """Write a status line to stdout; False if the parent no longer reads it."""
    try:
        sys.stdout.buffer.write(reporter.line())
        sys.stdout.buffer.flush()
    except (BrokenPipeError, ValueError):
        return False
    return True
