"""Helpers every benchmark shares: results, latency summaries, output, child processes.

A benchmark is "start a sink, run X against it, collect the count and the latencies";
each X returns a ``RunResult`` so that peers and hookline print and save the same way.
"""

from __future__ import annotations

import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
READY_PREFIX = "listening "


def now() -> float:
    """The clock send and arrival times are taken with, in every process.

    Wall-clock seconds, because the sender and the sink are different processes and
    the times are compared across them; a run lasts seconds, so clock steps are moot.
    """
    return time.time()


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Seconds from "sent" (or enqueued, or published) to "arrived at the sink"."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    def ms(self) -> dict[str, float]:
        return {k: round(v * 1000, 2) for k, v in asdict(self).items() if k != "count"}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without float surprises
    return sorted_values[int(rank) - 1]


def summarize(samples: Iterable[float]) -> LatencySummary | None:
    values = sorted(samples)
    if not values:
        return None
    return LatencySummary(
        count=len(values),
        mean=statistics.fmean(values),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        max=values[-1],
    )


def latencies(sent: Mapping[str, float], arrived: Mapping[str, float]) -> list[float]:
    """Arrival minus send time for every key seen on both sides."""
    return [arrived[key] - t for key, t in sent.items() if key in arrived]


@dataclass(frozen=True, slots=True)
class RunResult:
    """One measured run of one contender."""

    name: str
    requested: int
    delivered: int  # as counted by the sink, not as believed by the sender
    seconds: float
    latency: LatencySummary | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rate"] = round(self.rate, 1)
        out["latency_ms"] = self.latency.ms() if self.latency else None
        del out["latency"]
        return out


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
    }


def write_json(path: str | Path, results: Sequence[RunResult], **extra: Any) -> None:
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "results": [r.to_dict() for r in results],
        **extra,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


_COLUMNS = ("name", "requested", "delivered", "seconds", "req/s", "p50 ms", "p99 ms")


def _row(r: RunResult) -> tuple[str, ...]:
    ms = r.latency.ms() if r.latency else {}
    return (
        r.name,
        str(r.requested),
        str(r.delivered),
        f"{r.seconds:.2f}",
        f"{r.rate:,.0f}",
        f"{ms['p50']:.1f}" if ms else "-",
        f"{ms['p99']:.1f}" if ms else "-",
    )


def print_table(results: Sequence[RunResult], title: str = "results") -> None:
    """A rich table when rich is installed (it is a hookline dependency), plain otherwise."""
    rows = [_row(r) for r in results]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print("  ".join(f"{c:>12}" for c in _COLUMNS))
        for row in rows:
            print("  ".join(f"{c:>12}" for c in row))
        return
    table = Table(title=title)
    for i, column in enumerate(_COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


@dataclass(frozen=True, slots=True)
class Target:
    """One target: hookline's figure beside the peer it is measured against.

    ``ratio`` is hookline's figure over the peer's (or the figure itself, where there
    is no peer); ``goal`` is what the ratio must reach (``at_most``: not exceed).
    """

    name: str
    hookline: str
    peer: str
    ratio: float
    goal: float
    at_most: bool = False
    #: The absolute figure the target names, shown beside the ratio (not judged: the
    #: machine's speed changes within a day, the ratio is what counts).
    absolute: str = ""

    @property
    def met(self) -> bool:
        return self.ratio <= self.goal if self.at_most else self.ratio >= self.goal

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["met"] = self.met
        return out


_TARGET_COLUMNS = ("target", "hookline", "peer", "ratio", "goal", "absolute goal", "met")


def _target_row(t: Target) -> tuple[str, ...]:
    goal = f"{'<=' if t.at_most else '>='} {t.goal:g}"
    return (
        t.name,
        t.hookline,
        t.peer,
        f"{t.ratio:.3f}",
        goal,
        t.absolute,
        "met" if t.met else "NOT met",
    )


def print_targets(targets: Sequence[Target], title: str = "targets") -> None:
    """The targets as one table (rich when installed, plain otherwise)."""
    rows = [_target_row(t) for t in targets]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        for row in rows:
            print("  ".join(row))
        return
    table = Table(title=title)
    for i, column in enumerate(_TARGET_COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def python_env() -> dict[str, str]:
    """Environment for a child Python that must import ``bench`` from this checkout."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), path) if p)}


def start_process(
    cmd: Sequence[str], *, timeout: float = 15.0
) -> tuple[subprocess.Popen[str], int]:
    """Start a server that prints ``listening <port>`` when ready; return it and the port.

    Its stderr passes through to ours, so a crash explains itself in the bench output.
    """
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, text=True, env=python_env(), cwd=REPO
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            if line.startswith(READY_PREFIX):
                return proc, int(line.split()[1])
    stop_process(proc)
    why = f"exited with {proc.returncode}" if proc.returncode else f"timed out after {timeout} s"
    raise RuntimeError(f"{' '.join(cmd)} never printed {READY_PREFIX!r}: {why}")


def stop_process(proc: subprocess.Popen[Any], *, timeout: float = 10.0) -> None:
    """Ask politely (SIGTERM), then insist; always reap, so no zombie outlives a run."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def python_cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
