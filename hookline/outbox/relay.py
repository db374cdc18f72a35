"""``hookline relay``: moves the outbox's committed rows to hookline, in order, once.

The loop, on one connection to the platform's database that holds the relay's lock:

1. read the oldest rows not yet relayed (``batch`` at most), in id order;
2. publish them to hookline as one batch, and wait until hookline has stored them
   (while hookline is down or answers 503, the same batch goes again after a growing
   pause, and each wait is logged);
3. delete them, in one transaction; then read again.

When nothing is left, the relay sleeps until a write's NOTIFY arrives (sent when the
platform's transaction commits) or ``poll`` seconds pass, whichever comes first: the
poll bounds the delay when a notification is lost (the listening connection dropped).

A crash anywhere (SIGKILL included) loses nothing, since a row is deleted only after
hookline stored it, and publishes nothing twice, since a row sent again carries the
event_id it was given at write, which hookline takes as a duplicate. Per user, rows go
in id order, and one user's ids follow commit order (see ``write`` in postgres.sql).

An event hookline refuses (data over its size limit, an event_id it holds with other
data) cannot be delivered however often it is sent: it is kept in the outbox with
hookline's reason (``failed_at``, ``error``), logged, and the rows after it go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from hookline.config import redact_url
from hookline.exceptions import (
    ConfigError,
    EventConflict,
    Forbidden,
    HooklineError,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from hookline.outbox import CHANNEL, OutboxRow
from hookline.outbox.source import Source
from hookline.outbox.targets import Target
from hookline.store.connector import Subscription

log = logging.getLogger("hookline.relay")

#: Errors that say one event of a batch will never be taken; every other error is
#: tried again (hookline away, a 500, a full database).
_REFUSED = (ValidationError, EventConflict)


@dataclass(frozen=True, slots=True)
class RelaySettings:
    #: Rows per publish (the API takes at most 1,000 events in one batch).
    batch: int = 500
    #: The longest wait for new rows when no notification comes, in seconds.
    poll: float = 5.0
    #: The longest pause between two tries while hookline or the outbox is away.
    max_backoff: float = 30.0
    #: The longest a statement on the outbox may take before the relay connects again.
    command_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 1000:
            raise ValueError("batch: 1 to 1000 rows")
        if self.poll <= 0 or self.max_backoff <= 0 or self.command_timeout <= 0:
            raise ValueError("poll, max_backoff and command_timeout must be positive")


class _Backoff:
    """0.5 s, doubling up to ``most``, each with up to 20 % of jitter."""

    def __init__(self, most: float) -> None:
        self.most = most
        self.delay = 0.0

    def next(self) -> float:
        self.delay = min(max(self.delay * 2, 0.5), self.most)
        return self.delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.delay = 0.0


def _hint(exc: HooklineError, most: float) -> float:
    """The server's ``Retry-After``, within the relay's longest pause."""
    wait = getattr(exc, "retry_after", None)
    return min(float(wait), most) if wait else 0.0


class Relay:
    def __init__(
        self, source_url: str, target: Target, settings: RelaySettings | None = None
    ) -> None:
        self.source_url = source_url
        self.target = target
        self.settings = settings or RelaySettings()
        #: Rows deleted after hookline stored them, and rows set aside as refused.
        self.relayed = 0
        self.refused = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Relay until ``stop()``; come back after every outage of either side."""
        await self.target.open()
        subscription: Subscription | None = None
        backoff = _Backoff(self.settings.max_backoff)
        try:
            subscription = await self._listen()
            while not self._stop.is_set():
                try:
                    await self._relay_while_connected(backoff)
                except StorageUnavailable as exc:
                    pause = backoff.next()
                    log.warning("%s; connecting again in %.1f s", exc.message, pause)
                    await self._sleep(pause)
        finally:
            if subscription is not None:
                await subscription.close()
            await self.target.close()

    async def _listen(self) -> Subscription:
        from hookline.store.postgres import Listener

        listener = Listener(self.source_url, CHANNEL, self._wake.set, connect_timeout=5.0)
        listener.start()
        return listener

    async def _relay_while_connected(self, backoff: _Backoff) -> None:
        source = Source(self.source_url, command_timeout=self.settings.command_timeout)
        await source.open()
        try:
            await self._take_the_lock(source)
            backoff.reset()
            log.info("relaying from %s to %s", redact_url(self.source_url), self.target.description)
            while not self._stop.is_set():
                # Cleared before reading: a commit notified while we read wakes the next
                # wait, so no row waits for the poll.
                self._wake.clear()
                rows = await source.pending(self.settings.batch)
                if not rows:
                    await self._sleep(self.settings.poll, wake=True)
                    continue
                sent, failed = await self._publish(rows)
                if self._stop.is_set() and not sent and not failed:
                    return
                await source.done(sent, failed)
                self.relayed += len(sent)
                self.refused += len(failed)
        finally:
            await source.close()

    async def _take_the_lock(self, source: Source) -> None:
        said = False
        while not await source.lock():
            if not said:
                log.info("another relay holds this outbox; standing by until it stops")
                said = True
            await self._sleep(self.settings.poll)
            if self._stop.is_set():
                return

    async def _publish(self, rows: Sequence[OutboxRow]) -> tuple[list[int], list[tuple[int, str]]]:
        """Publish ``rows`` until hookline took them: (ids stored, (id, reason) refused).
        Returns nothing stored if the relay was stopped meanwhile."""
        backoff = _Backoff(self.settings.max_backoff)
        while not self._stop.is_set():
            try:
                await self.target.send([row.event for row in rows])
            except _REFUSED as exc:
                if len(rows) == 1:
                    log.error(
                        "hookline refused event %s (outbox row %d), set aside: %s",
                        rows[0].event.id,
                        rows[0].id,
                        exc.message,
                    )
                    return [], [(rows[0].id, exc.message)]
                log.info(
                    "hookline refused a batch of %d row(s) (%s); sending it in halves",
                    len(rows),
                    exc.message,
                )
                return await self._in_halves(rows)
            except (Unauthorized, Forbidden) as exc:
                raise ConfigError(
                    f"{self.target.description} refused the relay's token: {exc.message}"
                ) from exc
            except ConfigError:
                raise  # a database that is not hookline's: no retry will change that
            except (Unavailable, StorageUnavailable, RateLimited) as exc:
                pause = max(backoff.next(), _hint(exc, self.settings.max_backoff))
                log.warning(
                    "hookline at %s is unavailable (%s); %d row(s) wait, trying again in %.1f s",
                    self.target.description,
                    exc.message,
                    len(rows),
                    pause,
                )
                await self._sleep(pause)
            except HooklineError as exc:
                pause = backoff.next()
                log.error(
                    "publishing %d row(s) to %s failed: %s; trying again in %.1f s",
                    len(rows),
                    self.target.description,
                    exc.message,
                    pause,
                )
                await self._sleep(pause)
            else:
                if backoff.delay:
                    log.info("hookline at %s took the waiting rows", self.target.description)
                return [row.id for row in rows], []
        return [], []

    async def _in_halves(
        self, rows: Sequence[OutboxRow]
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """A batch hookline refused as a whole: its first half, then its second, each
        halved again while refused, so that a row refused alone is set aside and the
        others go, in order; and a batch too large for one publish (its body, or its
        deliveries) goes in a few smaller ones rather than in one request a row."""
        sent: list[int] = []
        failed: list[tuple[int, str]] = []
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):
            ok, bad = await self._publish(part)
            if not ok and not bad:  # stopped
                break
            sent += ok
            failed += bad
        return sent, failed

    async def _sleep(self, seconds: float, *, wake: bool = False) -> None:
        """Sleep ``seconds``, or less if the relay is stopped (or, with ``wake``, woken)."""
        waits = [asyncio.ensure_future(self._stop.wait())]
        if wake:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waits, return_exceptions=True)
