"""The deliveries-over-time chart, laid out here and drawn as inline SVG by a template.

Server-side layout keeps the dashboard free of chart libraries and scripts: the page
is complete as sent, and the numbers are in ``<title>`` tooltips for every bar.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hookline.events import format_timestamp
from hookline.store import Tally

WIDTH, HEIGHT, AXIS = 720.0, 150.0, 18.0
STATUSES = ("delivered", "failed", "pending")


@dataclass(frozen=True, slots=True)
class Segment:
    status: str
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    label: str
    counts: dict[str, int]
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    totals: dict[str, int]
    peak: int
    hours: int
    width: float = WIDTH
    height: float = HEIGHT
    axis: float = AXIS


def window(hours: int = 24, buckets: int = 48, now: float | None = None) -> tuple[float, float]:
    """``(since, bucket seconds)``, aligned to whole buckets so bars do not shift about."""
    bucket = hours * 3600 / buckets
    now = time.time() if now is None else now
    end = (now // bucket + 1) * bucket
    return end - hours * 3600, bucket


def build(tallies: list[Tally], since: float, bucket: float, buckets: int = 48) -> Chart:
    counts = [dict.fromkeys(STATUSES, 0) for _ in range(buckets)]
    for tally in tallies:
        if 0 <= tally.bucket < buckets and tally.status in STATUSES:
            counts[tally.bucket][tally.status] += tally.count
    peak = max((sum(c.values()) for c in counts), default=0)
    slot = WIDTH / buckets
    scale = (HEIGHT - AXIS - 4) / peak if peak else 0.0
    bars = []
    for index, bucket_counts in enumerate(counts):
        base = HEIGHT - AXIS
        segments = []
        for status in STATUSES:
            height = bucket_counts[status] * scale
            if height:
                base -= height
                segments.append(Segment(status, round(base, 2), round(height, 2)))
        start = since + index * bucket
        bars.append(
            Bar(
                x=round(index * slot + 1, 2),
                width=round(slot - 2, 2),
                label=f"{_clock(start)} to {_clock(start + bucket)} UTC",
                counts=bucket_counts,
                segments=tuple(segments),
            )
        )
    per_tick = max(1, buckets // 6)
    ticks = tuple(
        Tick(round(i * slot, 2), _clock(since + i * bucket)) for i in range(0, buckets, per_tick)
    )
    totals = {s: sum(c[s] for c in counts) for s in STATUSES}
    return Chart(tuple(bars), ticks, totals, peak, round(buckets * bucket / 3600))


def _clock(moment: float) -> str:
    return format_timestamp(moment)[11:16]
