"""Prometheus metrics of the sender, fed by an engine observer.

Each ``serve`` or ``worker`` process has its own registry (not the global one), so two
engines in one test process never share counters.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from hookline.sender.engine import EngineObserver
from hookline.store import AttemptResult, Disabled, Job, Probe

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class SenderMetrics(EngineObserver):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(
            "hookline_attempts",
            "Delivery attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hookline_attempt_latency_seconds",
            "Time from request to answer.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "hookline_attempts_in_flight",
            "Attempts sent and not yet answered.",
            registry=self.registry,
        )
        self.events = Counter(
            "hookline_events_published", "Events accepted by the API.", registry=self.registry
        )
        self.queue_depth = Gauge(
            "hookline_queue_depth",
            "Deliveries waiting to be sent (pending), across every endpoint.",
            registry=self.registry,
        )
        self.oldest_due_age = Gauge(
            "hookline_oldest_due_age_seconds",
            "How long the longest-waiting due delivery has been due; 0 when none is late. "
            "A rising value means the engines are not keeping up.",
            registry=self.registry,
        )
        self.endpoints = Gauge(
            "hookline_endpoints",
            "Endpoints by state.",
            ["state"],
            registry=self.registry,
        )

        self.endpoints_auto_disabled = Counter(
            "hookline_endpoints_auto_disabled",
            "Endpoints disabled because they kept failing (HOOKLINE_DISABLE_AFTER).",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "hookline_rate_limited",
            "Requests refused with 429, by limit: auth_failures (per client address), "
            "tests, recovers, new_endpoints (per app).",
            ["limit"],
            registry=self.registry,
        )
        self.endpoints_reenabled = Counter(
            "hookline_endpoints_reenabled",
            "Endpoints disabled for failing that answered a probe and were enabled again.",
            registry=self.registry,
        )

    def refused(self, limit: str) -> None:
        self.rate_limited.labels(limit=limit).inc()

    def endpoint_disabled(self, endpoint: Disabled) -> None:
        self.endpoints_auto_disabled.inc()

    def endpoint_enabled(self, endpoint: Probe) -> None:
        self.endpoints_reenabled.inc()

    def before_attempt(self, job: Job) -> None:
        self.in_flight.inc()

    def after_attempt(self, result: AttemptResult) -> None:
        self.in_flight.dec()
        self.attempts.labels(result.outcome).inc()
        if result.latency_ms is not None:
            self.latency.observe(result.latency_ms / 1000)

    def render(self, snapshot: dict[str, Any] | None = None) -> bytes:
        """The text exposition, with the store-derived gauges set from fresh readings.

        Only bounded readings (``Store.metrics_snapshot``): a count of every delivery
        by status would scan the whole table on each scrape. Delivered and failed
        totals are the ``hookline_attempts`` counters.
        """
        if snapshot is not None:
            self._set_store_gauges(snapshot, time.time())
        return generate_latest(self.registry)

    def _set_store_gauges(self, snapshot: dict[str, Any], now: float) -> None:
        self.queue_depth.set(int(snapshot["queue_depth"] or 0))
        oldest = snapshot["oldest_due_at"]
        self.oldest_due_age.set(max(0.0, now - float(oldest)) if oldest is not None else 0.0)
        self.endpoints.labels("enabled").set(int(snapshot["endpoints_enabled"] or 0))
        self.endpoints.labels("disabled").set(int(snapshot["endpoints_disabled"] or 0))
