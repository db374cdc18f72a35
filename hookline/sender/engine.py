"""The delivery engine: claim due lanes, send their heads, record what happened.

Three parts run side by side in one event loop:

* the **claimer** leases due lanes from the store in batches, as many as there is room
  for (in this engine's slots, per endpoint, and per app: no app gets more than its cap
  or its fair share of the slots, so one app's dead endpoints never starve the others),
  and starts one task per claimed delivery;
* each **send task** makes one attempt and queues its result;
* the **recorder** writes every queued result in one transaction (group commit). A lane
  whose head was answered and that has more to send keeps its lease in that same
  transaction, and its next delivery goes out at once, with no claim in between (while
  its endpoint and app stay within what a claim would allow); the other lanes are
  freed, and the claimer woken to hand them out again.

Publishing wakes the claimer directly (``wake()``, or a database notification across
processes), so a new event costs no polling delay; polling only finds retries that
have come due. A crash loses nothing: a lane stays leased until its lease runs out,
then any engine sends its head again, with the same token and event_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from typing import TYPE_CHECKING

from hookline.clock import Clock
from hookline.config import EngineSettings
from hookline.exceptions import StorageError
from hookline.sender.attempt import attempt
from hookline.sender.health import HealthMonitor
from hookline.sender.transport import Transport, new_transport
from hookline.store import AttemptResult, Disabled, Job, Probe, Store
from hookline.store.connector import Subscription

if TYPE_CHECKING:
    from hookline.sender.tracing import SenderTracing

log = logging.getLogger("hookline.engine")

RECORD_BATCH = 1000

#: Seconds between two vacuums of the lanes table by one engine (on average).
LANES_VACUUM_INTERVAL = 10.0

#: How late a rate-limited delivery may still go out after the moment its claim set.
SEND_LATE = 0.05


class Engine:
    def __init__(
        self,
        store: Store,
        settings: EngineSettings,
        *,
        transport: Transport | None = None,
        observers: list[EngineObserver] | None = None,
        tracing: SenderTracing | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        #: What every lease, retry and wait of this engine is timed by: the store's clock
        #: unless told otherwise, since leases are compared with the times it keeps.
        self.clock = clock if clock is not None else store.clock
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._transport = transport
        self._own_transport = transport is None
        self._observers = observers or []
        self._tracing = tracing
        self._wakeup = asyncio.Event()
        self._results: asyncio.Queue[AttemptResult] = asyncio.Queue()
        self._sending: set[asyncio.Task[None]] = set()
        # Attempts made but not yet recorded. Each keeps its slot until its record, which
        # may hand the slot straight to its lane's next delivery: so the claimer and the
        # recorder, which both start sends, together stay within the concurrency.
        self._unrecorded = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._transport is None:
            self._transport = new_transport(
                allow_private=self.settings.allow_private_targets,
                ca_bundle=self.settings.ca_bundle,
                kind=self.settings.transport,
            )
        # Publishes in other processes (other API servers) wake this engine too.
        self._subscription = await self.store.on_published(self.wake)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="hookline-claimer"),
            asyncio.create_task(self._record_loop(), name="hookline-recorder"),
        ]
        if self.settings.retention_days > 0:
            self._tasks.append(asyncio.create_task(self._prune_loop(), name="hookline-pruner"))
        self._tasks.append(asyncio.create_task(self._vacuum_loop(), name="hookline-vacuum"))
        health = HealthMonitor(
            self.store,
            self.settings,
            self._transport,
            self._observers,
            self.wake,
            clock=self.clock,
        )
        self._tasks += [
            asyncio.create_task(health.run_checks(), name="hookline-health"),
            asyncio.create_task(health.run_probes(), name="hookline-probes"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let sends in flight finish (up to ``grace`` s), record them,
        and hand back whatever is left so another engine sends it.

        A send that is cancelled ends when the transport says its request can no longer
        reach the endpoint: at once with aiohttp, at the endpoint's timeout with reqwest
        (see ``transport.reqwest_client``), so a lane is never handed back while its
        request may still go out."""
        self._stopping = True
        self._wakeup.set()
        if self._sending:
            _, pending = await asyncio.wait(self._sending, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # The recorder may be writing the last results right now; cancelling that write
        # would lose attempts that were made, and their deliveries would go out again.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._results.join(), grace)
        await self._drain_results()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._subscription is not None:
            await self._subscription.close()
        with contextlib.suppress(StorageError):
            await self.store.release(self.owner)
        if self._own_transport and self._transport is not None:
            await self._transport.close()

    def wake(self) -> None:
        """Something may be due now (a publish, a notification): claim at once."""
        self._wakeup.set()

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    # -- claiming -----------------------------------------------------------------------

    def _room(self) -> int:
        return self.settings.concurrency - len(self._sending) - self._unrecorded

    async def _claim_loop(self) -> None:
        while not self._stopping:
            room = self._room()
            if room <= 0:
                await self._sleep(self.settings.poll_interval)
                continue
            # Cleared before claiming: a wake-up that arrives while the claim runs is kept
            # and makes the next sleep return at once.
            self._wakeup.clear()
            claimed_at = self.clock.now()
            try:
                jobs = await self.store.claim(
                    self.owner,
                    limit=room,
                    default_cap=self.settings.endpoint_max_in_flight,
                    app_cap=self.settings.app_cap,
                    slots=self.settings.concurrency,
                    lease_margin=self.settings.lease_margin,
                )
            except StorageError as exc:
                log.warning("claiming failed, will try again: %s", exc)
                await self._sleep(1.0)
                continue
            self._start(jobs, claimed_at)
            if len(jobs) < room:
                # An endpoint held back by its rate limit or pace may open before the
                # next poll: claim again then, so that it gets its whole rate.
                wait = self.settings.poll_interval
                if jobs.opens_at is not None:
                    wait = min(wait, max(jobs.opens_at - self.clock.now(), 0.001))
                await self._sleep(wait)

    def _start(self, jobs: list[Job], leased_at: float) -> None:
        for job in jobs:
            # The store read its clock after ours, so each lease lasts at least this long.
            lease_ends = leased_at + job.timeout + self.settings.lease_margin
            task = asyncio.create_task(self._send(job, lease_ends))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _sleep(self, seconds: float) -> None:
        await self.clock.wait(self._wakeup, seconds)

    # -- sending ------------------------------------------------------------------------

    async def _send(self, job: Job, lease_ends: float) -> None:
        assert self._transport is not None
        if job.send_at is not None:
            # A rate-limited endpoint's: sent at the moment its claim set, or not at all.
            if job.send_at > self.clock.now():
                await self.clock.sleep(job.send_at - self.clock.now())
            if self.clock.now() > job.send_at + SEND_LATE:
                # This process stalled: sent now, it could reach the endpoint together
                # with deliveries claimed after it, past the limit. Another claim, which
                # counts it against the limit again, sends it instead.
                log.info("delivery %d missed its moment; handing it back", job.delivery_id)
                with contextlib.suppress(StorageError):
                    await self.store.hand_back(self.owner, [job])
                self.wake()
                return
        if self.clock.now() + job.timeout > lease_ends:
            # Too late to finish within the lease (this process stalled): another worker
            # may take the lane over before the answer is in. Send nothing; the lane goes
            # out again when the lease ends, so no delivery is ever in flight twice.
            log.warning("delivery %d claimed too long ago; leaving it", job.delivery_id)
            return
        for observer in self._observers:
            _safely(observer.before_attempt, job)
        if self._tracing is None:
            result = await attempt(self._transport, job, self.settings.retry, self.clock)
        else:
            job, span = self._tracing.start_attempt(job)
            result = await attempt(self._transport, job, self.settings.retry, self.clock)
            self._tracing.end_attempt(span, result)
        self._unrecorded += 1
        self._results.put_nowait(result)

    # -- recording ----------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            first = await self._results.get()
            batch = [first]
            while not self._results.empty() and len(batch) < RECORD_BATCH:
                batch.append(self._results.get_nowait())
            try:
                await self._record(batch)
            finally:
                for _ in batch:
                    self._results.task_done()

    async def _drain_results(self) -> None:
        batch: list[AttemptResult] = []
        while not self._results.empty():
            batch.append(self._results.get_nowait())
        if batch:
            await self._record(batch)

    async def _record(self, batch: list[AttemptResult]) -> None:
        try:
            await self._record_batch(batch)
        finally:
            self._unrecorded -= len(batch)

    async def _record_batch(self, batch: list[AttemptResult]) -> None:
        while True:
            # The batch's slots go to the lanes kept for their next delivery. A stopping
            # engine keeps none: what it does not send, another engine will.
            keep = 0 if self._stopping else len(batch)
            recorded_at = self.clock.now()
            try:
                jobs = await self.store.record(
                    self.owner,
                    batch,
                    recovering_after=self.settings.recovering_after,
                    keep=keep,
                    default_cap=self.settings.endpoint_max_in_flight,
                    app_cap=self.settings.app_cap,
                    slots=self.settings.concurrency,
                    lease_margin=self.settings.lease_margin,
                )
                break
            except StorageError as exc:
                # The attempts happened; keep them until the database takes them. If this
                # process dies first, the leases run out and the deliveries go out again.
                log.warning("recording %d attempt(s) failed, retrying: %s", len(batch), exc)
                if self._stopping:
                    return
                await self.clock.sleep(1.0)
        if not self._stopping:
            self._start(jobs, recorded_at)
        # Else the lanes kept stay leased to this engine until stop() gives them back.
        for result in batch:
            if result.outcome in ("failed", "gone"):
                log_final(result)
        for observer in self._observers:
            for result in batch:
                _safely(observer.after_attempt, result)
        self._wakeup.set()

    # -- retention ----------------------------------------------------------------------

    async def _vacuum_loop(self) -> None:
        # Every lease taken or given back leaves a dead lane row on PostgreSQL; at
        # thousands a second they outgrow the few live rows within seconds, and a bloated
        # table slows every claim. A vacuum of so small a table takes milliseconds.
        while True:
            await self.clock.sleep(random.uniform(0.5, 1.5) * LANES_VACUUM_INTERVAL)
            try:
                await self.store.vacuum_lanes()
            except StorageError as exc:
                log.warning("vacuuming the lanes failed, will try again: %s", exc)

    async def _prune_loop(self) -> None:
        interval = self.settings.prune_interval
        # A random start: workers started together do not all prune at the same moment.
        await self.clock.sleep(random.uniform(0, min(interval, 60.0)))
        while True:
            try:
                pruned = await self.store.prune(self.settings.retention_days * 86400)
            except StorageError as exc:
                log.warning("pruning old events failed, will try again: %s", exc)
            else:
                if pruned:
                    log.info(
                        "pruned %d event(s) older than %g days",
                        pruned,
                        self.settings.retention_days,
                    )
            await self.clock.sleep(interval)


def log_final(result: AttemptResult) -> None:
    """Log a delivery the engine gave up on, and an endpoint it disabled.

    Only these are logged, not every attempt: they need an operator (a retry, a fixed
    endpoint), and at thousands of attempts a second a line per attempt would drown
    them. The ``fields`` become top-level keys of a ``--json-logs`` line.
    """
    job = result.job
    fields = {
        "event": "delivery_failed" if result.outcome == "failed" else "endpoint_disabled",
        "delivery_id": job.delivery_id,
        "event_id": job.event_id,
        "event_type": job.event_type,
        "app_id": job.app_id,
        "endpoint_id": job.endpoint_id,
        "user_id": job.user_id,
        "url": job.url,
        "attempts": job.attempts + 1,
        "status_code": result.status_code,
        "error": result.error,
    }
    if result.outcome == "gone":
        log.warning(
            "endpoint %s answered 410 Gone and is disabled; delivery %d ends as failed",
            job.endpoint_id,
            job.delivery_id,
            extra={"fields": fields},
        )
    else:
        log.warning(
            "delivery %d to %s failed after %d attempt(s): %s",
            job.delivery_id,
            job.endpoint_id,
            job.attempts + 1,
            result.error or f"answered {result.status_code}",
            extra={"fields": fields},
        )


class EngineObserver:
    """Hooks for cross-cutting concerns (metrics, logs); each one is a no-op by default.

    A faulty observer is logged and never stops delivery.
    """

    def before_attempt(self, job: Job) -> None:
        """Called when an attempt starts."""

    def after_attempt(self, result: AttemptResult) -> None:
        """Called once the attempt is recorded."""

    def endpoint_disabled(self, endpoint: Disabled) -> None:
        """Called when the health check disables an endpoint that kept failing."""

    def endpoint_enabled(self, endpoint: Probe) -> None:
        """Called when a disabled endpoint answered its probe and is enabled again."""


def _safely(hook: object, arg: object) -> None:
    try:
        hook(arg)  # type: ignore[operator]
    except Exception:
        log.exception("an engine observer failed; delivery goes on")
