"""What a handler is given: one webhook, and a way to make an effect happen once."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.events import Envelope, parse_timestamp

if TYPE_CHECKING:
    from hookline.receiver.inbox import Inbox
    from hookline.receiver.models import Resource


@dataclass(frozen=True, slots=True)
class OnceGuard:
    """Claims ``once`` keys in the inbox for one run of one webhook."""

    inbox: Inbox
    loop: asyncio.AbstractEventLoop
    inbox_id: int
    clock: Clock = SYSTEM_CLOCK

    async def claim(self, key: str) -> bool:
        return await self.inbox.claim_once(key, self.inbox_id, self.clock.now())

    async def forget(self, key: str) -> None:
        await self.inbox.forget_once(key)


@dataclass(frozen=True, slots=True)
class Event:
    """One webhook, as a handler sees it.

    ``event_id`` is hookline's stable event id; a webhook from a sender that does not send
    one (Selz itself) uses its token, which is just as unique. ``user_id`` is ``""`` when
    the sender does not say whose store changed. ``timestamp`` is the wire string (UTC,
    ``YYYY-MM-DDTHH:MM:SS``); ``occurred_at`` is the same moment as a datetime.
    """

    event_id: str
    event_type: str
    user_id: str
    token: str
    timestamp: str
    data: dict[str, Any]
    webhook_id: str
    #: 1 on the first run of this webhook's handlers, 2 on the first retry, ...
    attempt: int
    #: The webhook's row in the inbox (what ``hookline dead-letters`` shows).
    inbox_id: int
    _guard: OnceGuard | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_envelope(
        cls, envelope: Envelope, *, attempt: int, inbox_id: int, guard: OnceGuard | None
    ) -> Event:
        return cls(
            event_id=envelope.event_id or envelope.token,
            event_type=envelope.event_type,
            user_id=envelope.user_id or "",
            token=envelope.token,
            timestamp=envelope.timestamp,
            data=envelope.data,
            webhook_id=envelope.webhook_id,
            attempt=attempt,
            inbox_id=inbox_id,
            _guard=guard,
        )

    @property
    def occurred_at(self) -> datetime:
        return parse_timestamp(self.timestamp)

    def model(self) -> Resource:
        """``data`` as the typed model of this event type (see ``hookline.receiver.models``)."""
        from hookline.receiver.models import parse_data

        return parse_data(self.event_type, self.data)

    async def once(self, key: str, effect: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Run ``effect(*args, **kwargs)`` unless an effect under ``key`` already ran.

        The key is recorded durably *before* the effect runs. If the effect raises, the
        key is given back so that the retry tries again; if the process dies during the
        effect, the key stays taken and the effect is not repeated. So an effect guarded
        this way happens at most once, even though handlers run at least once. Returns
        True if the effect ran now. ``effect`` may be a plain function or a coroutine
        function.
        """
        guard = self._require_guard()
        if not await guard.claim(key):
            return False
        try:
            result = effect(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
        except BaseException:
            await asyncio.shield(guard.forget(key))
            raise
        return True

    def once_sync(self, key: str, effect: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """``once`` for a sync handler (it runs in a worker thread, off the event loop)."""
        guard = self._require_guard()
        claimed = asyncio.run_coroutine_threadsafe(guard.claim(key), guard.loop).result()
        if not claimed:
            return False
        try:
            effect(*args, **kwargs)
        except BaseException:
            asyncio.run_coroutine_threadsafe(guard.forget(key), guard.loop).result()
            raise
        return True

    def _require_guard(self) -> OnceGuard:
        if self._guard is None:
            raise RuntimeError("once() needs an event given by the receiver's workers")
        return self._guard
