"""Publishing: events into the store in group commits, then a wake-up for the engine.

Many API requests arrive at once, each with one event. Each would cost a transaction
(and an fsync); the publisher instead gathers whatever arrived while the previous
transaction was committing and stores it all in the next one (``hookline.sql.group``,
at most ``MAX_GROUP`` events a transaction). Every caller still gets its answer only after
its events are durable, and a request whose events cannot be stored (a conflict, too many
deliveries) fails alone: the others that shared its commit are stored without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from hookline.exceptions import HooklineError
from hookline.sql.group import GroupCommit
from hookline.store import NewEvent, Published, Store

log = logging.getLogger("hookline.publisher")

MAX_GROUP = 2000


class Publisher:
    def __init__(self, store: Store, on_published: Callable[[], None] | None = None) -> None:
        self.store = store
        self._on_published = on_published or (lambda: None)
        self._group: GroupCommit[Sequence[NewEvent], list[Published]] = GroupCommit(
            self._commit, max_group=MAX_GROUP, weight=len
        )

    async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
        try:
            return await self._group.submit(events)
        except HooklineError:
            raise
        except Exception:
            # Not one of ours: a bug, or a driver error nobody translated. This caller
            # gets a 500; the commits queued behind it go on.
            log.exception("publishing %d event(s) failed", len(events))
            raise

    async def _commit(self, requests: list[Sequence[NewEvent]]) -> list[list[Published]]:
        """One transaction for several requests' events; each request's share of the
        results."""
        published = await self.store.publish([e for events in requests for e in events])
        self._on_published()
        shares = []
        offset = 0
        for events in requests:
            shares.append(published[offset : offset + len(events)])
            offset += len(events)
        return shares
