"""Workers: run handlers one user at a time, in timestamp order, users in parallel.

Each user is a *lane*. A process leases lanes that have due work (up to ``concurrency`` at
once), runs the lane's webhooks one after the other, oldest timestamp first, and gives the
lane back when it is empty or its head is waiting for a retry. Only the lease holder runs
a lane's handlers, so one user's handlers never overlap, also across processes sharing a
PostgreSQL inbox. Leases are renewed while the process lives, by a ``LeaseKeeper`` that the
handlers' work cannot starve; when the process dies they run out and another process takes
over, running the interrupted webhook again (at least once). Before each run the worker
checks that the lane's lease was renewed recently, and the run's result is recorded only
while this process still owns the lane: a process that finds it lost a lane while a
handler ran logs an error and records nothing.

Every write of the worker path is retried on a storage error (a deadlock victim, a dropped
connection, the database restarting) until it succeeds: a handler that already finished
never runs again because its result could not be written at the first try.

A head that fails is retried with backoff and holds its lane meanwhile: a later webhook of
that user never overtakes an earlier one. After the last retry it becomes a dead letter
and the lane moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import os
import secrets
import socket
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.events import parse_envelope
from hookline.exceptions import ConfigError, StorageError
from hookline.receiver._config import ReceiverSettings
from hookline.receiver.event import Event, OnceGuard
from hookline.receiver.inbox import Finish, Inbox, LeaseLost, Result, Stored, open_inbox
from hookline.receiver.leases import LeaseKeeper
from hookline.receiver.tracing import handler_span, handler_tracer

log = logging.getLogger("hookline.receiver.workers")

Handler = Callable[[Event], Any]
HandlerLookup = Callable[[str], Sequence[Handler]]
MAX_ERROR_CHARS = 4000
#: Backoff of a worker write that failed on a storage error: doubling, up to the maximum.
WRITE_RETRY_FIRST, WRITE_RETRY_MAX = 0.05, 5.0
T = TypeVar("T")


def new_owner_id() -> str:
    """Names this process in lane leases: host, pid and a nonce (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Workers:
    def __init__(
        self,
        inbox: Inbox,
        handlers: HandlerLookup,
        settings: ReceiverSettings,
        *,
        lease_inbox: Callable[[], Inbox] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``lease_inbox`` opens the leases' own connection (default: the same database);
        ``clock`` times the leases, retries and waits."""
        if lease_inbox is None and inbox.url.endswith((":memory:", ":///")):
            raise ConfigError("workers need an inbox in a file or on PostgreSQL, not :memory:")
        self._inbox = inbox
        self._handlers = handlers
        self._settings = settings
        self.owner = new_owner_id()
        self._clock = clock
        self._keeper = LeaseKeeper(
            lease_inbox or (lambda: open_inbox(inbox.url)),
            self.owner,
            settings.lease_seconds,
            clock=clock,
        )
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._threads = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="hookline-handler"
        )
        #: None unless the app (or ``hookline receive``) set up OpenTelemetry.
        self._tracer = handler_tracer()

    def wake(self) -> None:
        """Something is due now (a webhook was just accepted): look without waiting."""
        self._wakeup.set()

    async def start(self) -> None:
        await asyncio.to_thread(self._keeper.start)
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="hookline-dispatch"),
            asyncio.create_task(self._purge(), name="hookline-purge"),
        ]

    async def stop(self) -> None:
        """Finish running handlers (up to ``shutdown_grace``), then give every lane back."""
        self._stopping = True
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running = list(self._lanes.values())
        if running:
            _, late = await asyncio.wait(running, timeout=self._settings.shutdown_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await asyncio.to_thread(self._keeper.stop)
        with contextlib.suppress(StorageError):
            await self._inbox.release_all(self.owner)
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- claiming lanes -------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            free = self._settings.concurrency - len(self._lanes)
            if free > 0:
                try:
                    await self._claim(free)
                except StorageError as exc:
                    log.warning("could not claim work: %s", exc)
            await self._clock.wait(self._wakeup, self._settings.poll_interval)

    async def _claim(self, limit: int) -> None:
        now, lease = self._clock.now(), self._settings.lease_seconds
        # Lanes still running here (or being given back) are never claimed again meanwhile:
        # one task per lane in this process, whatever the lease says.
        running = list(self._lanes)
        for user_id in await self._inbox.claim_lanes(self.owner, limit, now, lease, running):
            self._keeper.hold(user_id, now + lease)
            task = asyncio.create_task(self._run_lane(user_id))
            self._lanes[user_id] = task
            task.add_done_callback(functools.partial(self._lane_done, user_id))

    def _lane_done(self, user_id: str, _task: asyncio.Task[None]) -> None:
        self._lanes.pop(user_id, None)
        self._keeper.drop(user_id)
        self._wakeup.set()

    async def _purge(self) -> None:
        """Now and then forget long-finished webhooks, and lanes with nothing pending that
        were not deleted when given back (left by a stop, or by earlier versions)."""
        while True:
            now = self._clock.now()
            try:
                await self._inbox.purge_finished(now - self._settings.retention_seconds)
                await self._inbox.prune_lanes()
            except StorageError as exc:
                log.warning("could not purge finished webhooks: %s", exc)
            await self._clock.sleep(3600)

    async def _write(self, what: str, write: Callable[[], Awaitable[T]]) -> T:
        """``write()`` until it succeeds; a storage error is retried with backoff.

        ``LeaseLost`` is not a storage error: it goes to the caller at once.
        """
        delay = WRITE_RETRY_FIRST
        while True:
            try:
                return await write()
            except StorageError as exc:
                log.warning("%s failed (retrying in %.2f s): %s", what, delay, exc)
            await self._clock.sleep(delay)
            delay = min(delay * 2, WRITE_RETRY_MAX)

    # -- one lane -----------------------------------------------------------------------

    async def _run_lane(self, user_id: str) -> None:
        # Half the lease: renewals (every tenth of it) have failed five times in a row.
        margin = self._settings.lease_seconds / 2
        head = await self._write("reading a lane", lambda: self._inbox.lane_head(user_id))
        while head is not None and head.next_attempt_at <= self._clock.now() and not self._stopping:
            if not self._keeper.confirmed(user_id, margin):
                log.warning("the lease of user %r is not confirmed; giving the lane back", user_id)
                break
            stored = head
            finish = await self._process(stored)
            try:
                head = await self._write(
                    f"recording the run of webhook {stored.id}",
                    functools.partial(self._inbox.finish, self.owner, user_id, finish),
                )
            except LeaseLost:
                log.error(
                    "lost the lease of user %r while webhook %d ran: this process was paused "
                    "or cut off from the inbox for longer than lease_seconds (%g s), and "
                    "another process took the user over and runs the webhook again; this "
                    "run (%s) is not recorded",
                    user_id,
                    stored.id,
                    self._settings.lease_seconds,
                    finish.result.value,
                )
                return
        await self._write(
            f"giving back the lane of user {user_id!r}",
            lambda: self._inbox.release_lane(self.owner, user_id),
        )

    async def _process(self, stored: Stored) -> Finish:
        envelope = parse_envelope(stored.body)
        guard = OnceGuard(self._inbox, asyncio.get_running_loop(), stored.id, self._clock)
        event = Event.from_envelope(
            envelope, attempt=stored.attempts + 1, inbox_id=stored.id, guard=guard
        )
        try:
            if self._tracer is None:
                await self._run_handlers(event)
            else:
                with handler_span(self._tracer, stored.traceparent, event):
                    await self._run_handlers(event)
        except Exception as exc:
            return self._failed(stored, event, exc)
        return Finish(stored.id, Result.DONE, self._clock.now(), stored.attempts)

    async def _run_handlers(self, event: Event) -> None:
        for handler in self._handlers(event.event_type):
            await self._call(handler, event)

    async def _call(self, handler: Handler, event: Event) -> None:
        if inspect.iscoroutinefunction(handler):
            await handler(event)
            return
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        result = await loop.run_in_executor(self._threads, context.run, handler, event)
        if inspect.isawaitable(result):
            await _as_awaitable(result)

    def _failed(self, stored: Stored, event: Event, exc: Exception) -> Finish:
        now = self._clock.now()
        error = "".join(traceback.format_exception(exc))[-MAX_ERROR_CHARS:]
        delay = self._settings.retry.next_delay(stored.attempts + 1)
        if delay is None:
            log.error("webhook %d (%s) is a dead letter: %r", stored.id, event.event_type, exc)
            return Finish(stored.id, Result.DEAD, now, stored.attempts, error=error)
        log.warning("handler failed on webhook %d, retry in %.1f s: %r", stored.id, delay, exc)
        return Finish(
            stored.id, Result.RETRY, now, stored.attempts, next_attempt_at=now + delay, error=error
        )


async def _as_awaitable(value: Awaitable[Any]) -> Any:
    return await value
