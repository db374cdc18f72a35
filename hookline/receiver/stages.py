"""Where a webhook's time goes between arriving and being answered: one histogram per stage.

Off unless ``HOOKLINE_RECEIVER_STAGES`` names a file when the receiver starts (then each
request costs a few clock reads more). The stages of an accepted webhook, in order:

- ``read``: from the request reaching the app to its body in hand (headers, body);
- ``verify``: header checks and both HMACs;
- ``parse``: the JSON envelope and the row to store (content hash);
- ``queue``: waiting for a group commit to start (the previous one is still running);
- ``commit``: the batch's statements and its fsync;
- ``answer``: from the commit to the answer handed to the HTTP server (the loop's delay
  in waking the request up, and the send);
- ``total``: all of the above.

``SIGUSR1`` appends the histograms so far to the file as one JSON line and starts new
ones (a benchmark takes one line per phase); stopping the receiver appends the rest.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

STAGES_ENV = "HOOKLINE_RECEIVER_STAGES"
STAGES = ("read", "verify", "parse", "queue", "commit", "answer", "total")
#: Buckets per doubling of microseconds: each bucket is about 9 % wide.
_PER_DOUBLING = 8

clock = time.perf_counter


class Histogram:
    """Log-bucketed durations: constant memory, percentiles to within a bucket's width."""

    __slots__ = ("counts", "max", "n", "sum")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.sum = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        us = seconds * 1e6
        index = int(math.log2(us) * _PER_DOUBLING) + 1 if us >= 1 else 0
        self.counts[index] = self.counts.get(index, 0) + 1
        self.n += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def percentile(self, q: float) -> float:
        """Seconds below which ``q`` % of the durations fall (a bucket's upper edge)."""
        if not self.n:
            return 0.0
        rank = math.ceil(self.n * q / 100)
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(self.max, 2 ** (index / _PER_DOUBLING) / 1e6)
        return self.max

    def summary(self) -> dict[str, float]:
        ms = 1000
        return {
            "count": self.n,
            "mean_ms": round(self.sum / self.n * ms, 3) if self.n else 0.0,
            "p50_ms": round(self.percentile(50) * ms, 3),
            "p99_ms": round(self.percentile(99) * ms, 3),
            "p99.9_ms": round(self.percentile(99.9) * ms, 3),
            "max_ms": round(self.max * ms, 3),
        }


@dataclass(slots=True)
class Marks:
    """One request's clock readings; the inbox fills ``started`` and ``committed``."""

    arrived: float
    read: float = 0.0
    parse_started: float = 0.0
    parse_ended: float = 0.0
    verified: float = 0.0
    queued: float = 0.0
    started: float = 0.0
    committed: float = 0.0


class Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._histograms = {name: Histogram() for name in STAGES}

    def record(self, marks: Marks, answered: float) -> None:
        """Only accepted webhooks (stored, so every stage ran) are recorded."""
        if not marks.committed:
            return
        h = self._histograms
        parse = marks.parse_ended - marks.parse_started
        h["read"].add(marks.read - marks.arrived)
        h["verify"].add(marks.parse_started - marks.read + marks.verified - marks.parse_ended)
        h["parse"].add(parse + marks.queued - marks.verified)
        h["queue"].add(marks.started - marks.queued)
        h["commit"].add(marks.committed - marks.started)
        h["answer"].add(answered - marks.committed)
        h["total"].add(answered - marks.arrived)

    def dump(self) -> None:
        """Append the histograms so far as one JSON line, and start new ones."""
        line = {"stages": {name: h.summary() for name, h in self._histograms.items()}}
        self._histograms = {name: Histogram() for name in STAGES}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


#: The recorder of this process, or None (the default: nothing is timed).
recorder: Recorder | None = None


def begin() -> Marks | None:
    """Marks for a request that just arrived, or None when nothing is recorded."""
    return Marks(clock()) if recorder is not None else None


def install_from_env() -> None:
    """Start recording if ``HOOKLINE_RECEIVER_STAGES`` is set (and dump on ``SIGUSR1``)."""
    global recorder
    path = os.environ.get(STAGES_ENV)
    if not path or recorder is not None:
        return
    recorder = Recorder(Path(path))
    if hasattr(signal, "SIGUSR1"):
        import asyncio

        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, recorder.dump)


def finish() -> None:
    """Append what was recorded since the last dump, and stop recording."""
    global recorder
    if recorder is not None:
        recorder.dump()
        recorder = None
