"""``Receiver``: the keys, the handlers, and the lifecycle of inbox and workers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.config import RetryPolicy
from hookline.events import WILDCARD, check_receivable_type
from hookline.exceptions import ConfigError
from hookline.receiver import stages
from hookline.receiver._config import ReceiverSettings, inbox_url
from hookline.receiver.inbox import Inbox, open_inbox
from hookline.receiver.intake import Intake, Receipt
from hookline.receiver.workers import Handler, Workers
from hookline.signing import DEFAULT_TOLERANCE_SECONDS, Verifier

if TYPE_CHECKING:
    from hookline.receiver.asgi import ReceiverApp

H = TypeVar("H", bound=Handler)

log = logging.getLogger("hookline.receiver")

SELZ_ONLY_WARNING = (
    "this receiver accepts webhooks signed only with X-Selz-Signature "
    "(require_standard=False). That signature covers timestamp and token, not the body: "
    "a request captured anywhere (a staging endpoint, a request bin) can be replayed here "
    "within the %d s window with other data, and its handlers will run. Use it only for "
    "senders that cannot send webhook-signature, such as Selz itself."
)


class Receiver:
    """Takes Selz-style webhooks: verifies them, stores them, and runs your handlers.

    ``keys`` are the verification keys accepted right now (give two during a rotation).
    ``database`` is the inbox (default ``sqlite:///./hookline-inbox.db``, or
    ``HOOKLINE_INBOX_URL``). A request must carry a valid ``webhook-signature`` (which
    covers the body); ``require_standard=False`` also accepts requests signed only with
    ``X-Selz-Signature``, for senders such as Selz itself, and warns at start about the
    risk (see docs/receiver.md, "Modes"). Register handlers with ``@receiver.on("order_completed")``
    or ``@receiver.on("*")``; they may be plain or ``async`` functions. ``clock`` times
    what is stored, the retries and the leases (tests pass a ``ManualClock``); signature
    timestamps are always checked against the real time, the sender's.
    """

    def __init__(
        self,
        keys: Sequence[str],
        database: str | None = None,
        *,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        require_standard: bool = True,
        retry: RetryPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        **settings: Any,
    ) -> None:
        self.clock = clock
        self.verifier = Verifier(tuple(keys), tolerance_seconds, require_standard)
        extra: dict[str, Any] = {"retry": retry} if retry is not None else {}
        self.settings = ReceiverSettings(
            database=inbox_url(database),
            tolerance_seconds=tolerance_seconds,
            require_standard=require_standard,
            **extra,
            **settings,
        )
        self._handlers: dict[str, list[Handler]] = {}
        self._inbox: Inbox | None = None
        self._inbox_lock = asyncio.Lock()
        self._workers: Workers | None = None
        self.intake = Intake(
            self.verifier,
            self.open_inbox,
            max_body_bytes=self.settings.max_body_bytes,
            on_accept=self._wake_workers,
            clock=clock,
        )

    # -- handlers -------------------------------------------------------------------------

    def on(self, event_type: str) -> Callable[[H], H]:
        """Register the decorated function for ``event_type`` (or ``"*"`` for every type)."""
        if event_type != WILDCARD:
            check_receivable_type(event_type)

        def register(handler: H) -> H:
            self._handlers.setdefault(event_type, []).append(handler)
            return handler

        return register

    def handlers_for(self, event_type: str) -> list[Handler]:
        """Handlers for ``event_type`` first, then the ``"*"`` ones, each in registration order."""
        return [*self._handlers.get(event_type, ()), *self._handlers.get(WILDCARD, ())]

    def configure(self, **changes: Any) -> None:
        """Change settings (``database``, ``concurrency``, ...) before the receiver starts."""
        if self._inbox is not None:
            raise ConfigError("configure() must be called before the receiver starts")
        self.settings = dataclasses.replace(self.settings, **changes)
        self.intake.max_body_bytes = self.settings.max_body_bytes

    # -- lifecycle ------------------------------------------------------------------------

    async def open_inbox(self) -> Inbox:
        """The open inbox, opened on first use (so a mounted endpoint works without a lifespan)."""
        if self._inbox is None:
            async with self._inbox_lock:
                if self._inbox is None:
                    inbox = open_inbox(self.settings.database)
                    await inbox.open()
                    self._inbox = inbox
        return self._inbox

    async def start(self, *, workers: bool = True) -> None:
        if not self.verifier.require_standard:
            log.warning(SELZ_ONLY_WARNING, self.verifier.tolerance_seconds)
        stages.install_from_env()
        inbox = await self.open_inbox()
        if workers and self._workers is None:
            self._workers = Workers(inbox, self.handlers_for, self.settings, clock=self.clock)
            await self._workers.start()

    async def stop(self) -> None:
        """Graceful: running handlers finish (up to ``shutdown_grace``), lanes are released."""
        if self._workers is not None:
            await self._workers.stop()
            self._workers = None
        if self._inbox is not None:
            await self._inbox.close()
            self._inbox = None
        stages.finish()

    @asynccontextmanager
    async def running(self, *, workers: bool = True) -> AsyncIterator[Receiver]:
        """Open the inbox and run the workers for the duration of the block."""
        await self.start(workers=workers)
        try:
            yield self
        finally:
            await self.stop()

    def _wake_workers(self) -> None:
        if self._workers is not None:
            self._workers.wake()

    # -- requests -------------------------------------------------------------------------

    async def receive(
        self, headers: Mapping[str, str], body: bytes, marks: stages.Marks | None = None
    ) -> Receipt:
        """Verify and store one webhook request; the receipt is the HTTP answer to send."""
        return await self.intake.receive(headers, body, marks)

    def asgi_app(self, path: str = "/webhooks", *, workers: bool = True) -> ReceiverApp:
        """An ASGI app serving ``POST path`` whose lifespan runs the workers."""
        from hookline.receiver.asgi import create_app

        return create_app(self, path, workers=workers)
