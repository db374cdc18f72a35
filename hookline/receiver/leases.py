"""Keeping this process's lane leases alive, whatever its handlers are doing.

A lease that runs out while its holder still runs a handler lets another process run
the same user's webhooks at the same time, so renewing must not depend on the event
loop the handlers share: an async handler that computes for a while, a burst of
requests, or a full connection pool would delay it. The keeper renews from a thread of
its own, over a database connection of its own, every ``lease_seconds / 10``, so a lease
is renewed about ten times before it could run out. The one thing it cannot outlast is
the whole process being stopped (SIGSTOP, a frozen VM, swap) for longer than the lease:
see docs/receiver.md, "Leases and their limit".

The workers tell the keeper which lanes they hold (``hold``/``drop``) and ask it, before
each handler run, whether a lane's lease was confirmed recently (``confirmed``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.exceptions import HooklineError
from hookline.receiver.inbox import Inbox

log = logging.getLogger("hookline.receiver.workers")

#: Renewals per lease: the lease survives this many failed or late renewals in a row.
RENEWALS_PER_LEASE = 10


class LeaseKeeper:
    def __init__(
        self,
        open_inbox: Callable[[], Inbox],
        owner: str,
        lease_seconds: float,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._open_inbox = open_inbox
        self._clock = clock
        self._owner = owner
        self._lease = lease_seconds
        self.interval = lease_seconds / RENEWALS_PER_LEASE
        self._lock = threading.Lock()
        #: Lane -> until when its lease is known to hold (from the claim or a renewal).
        self._until: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    # -- what the workers call (from the event loop's thread) ----------------------------

    def hold(self, user_id: str, lease_until: float) -> None:
        with self._lock:
            self._until[user_id] = lease_until

    def drop(self, user_id: str) -> None:
        with self._lock:
            self._until.pop(user_id, None)

    def confirmed(self, user_id: str, margin: float) -> bool:
        """Whether the lease of ``user_id`` is known to hold for ``margin`` seconds more."""
        with self._lock:
            return self._until.get(user_id, 0.0) - self._clock.now() >= margin

    def start(self) -> None:
        """Open the keeper's own connection and start renewing (raises if it cannot open)."""
        self._thread = threading.Thread(target=self._run, name="hookline-leases", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- the keeper's thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), or logged once running
            if not self._started.is_set():
                self._failure = exc
                self._started.set()
            else:
                log.exception("the lease keeper stopped")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        inbox = self._open_inbox()
        await inbox.open()
        self._started.set()
        try:
            while not self._stop.is_set():
                await self._renew(inbox)
                await self._clock.wait(self._stop, self.interval)
        finally:
            await inbox.close()

    async def _renew(self, inbox: Inbox) -> None:
        with self._lock:
            before = dict(self._until)
        lanes = list(before)
        if not lanes:
            return
        lease_until = self._clock.now() + self._lease  # taken before the write: conservative
        try:
            held = await inbox.renew_leases(self._owner, lanes, lease_until)
        except HooklineError as exc:
            log.warning("could not renew leases (retrying in %.1f s): %s", self.interval, exc)
            return
        with self._lock:
            for user_id in lanes:
                # Only lanes unchanged meanwhile (not dropped, not claimed again). A lane
                # not held any more (given back, or taken over) is never confirmed again:
                # its worker starts no further handler on it.
                if self._until.get(user_id) == before[user_id]:
                    self._until[user_id] = lease_until if user_id in held else 0.0
