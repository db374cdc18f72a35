"""The outbox: publishing inside the platform's transaction when hookline's database is
another one.

``hookline outbox install --database postgresql://platform`` creates one table,
``hookline.outbox``, in the platform's database. ``hookline.publish(conn, ...)`` on a
connection to that database then writes the event there, inside the platform's own
transaction: a rollback leaves no trace, a commit leaves a row. ``hookline relay``
moves the committed rows to hookline, oldest first, and deletes each only once hookline
has stored it; a row sent again after a crash carries the event_id it was given at
write, so hookline takes it as the duplicate it is.

Every statement that touches the outbox is a named block of ``postgres.sql`` beside
this file; this module and ``relay`` are the only code that reads them.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hookline.sql.named import load_queries
from hookline.store.records import NewEvent, Published

#: Notified (on commit) by every write, listened to by the relay.
CHANNEL = "hookline_outbox"


def queries() -> dict[str, str]:
    """The named SQL blocks of ``postgres.sql`` (``:name`` parameters)."""
    return load_queries("hookline.outbox", "postgres.sql")


class Runs(Protocol):
    """A platform connection as ``hookline.transactional`` links it: runs one ``:name``
    statement (``what`` names it in errors) in the caller's transaction, returns dict
    rows, and raises hookline's errors only."""

    async def run(self, what: str, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


#: Whether a database holds the outbox, by the driver connection that found out: a
#: connection stays on one database all its life, and the outbox is installed or dropped
#: by an operator's command, not by the platform's code, so one look per connection is
#: enough (a connection made after `hookline outbox install` or `uninstall` looks again).
_HOLDS_OUTBOX: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


async def holds_outbox(link: Runs, connection: Any) -> bool:
    """Whether ``publish`` on ``link`` goes to the outbox (the table ``hookline.outbox``
    is in its database) rather than to hookline's own tables; ``connection``, the
    driver's connection under ``link``, is what the answer is remembered for."""
    try:
        return _HOLDS_OUTBOX[connection]
    except KeyError:
        pass
    except TypeError:  # a connection that cannot be weakly referenced: no memory
        connection = None
    (row,) = await link.run("looking for the outbox", queries()["where"], {})
    found = bool(row["outbox"])
    if connection is not None:
        _HOLDS_OUTBOX[connection] = found
    return found


async def write(link: Runs, events: Sequence[NewEvent]) -> list[Published]:
    """Write validated events into the outbox through ``link``, in the caller's
    transaction. What comes back is what can be known before the relay publishes them:
    not yet whether hookline holds the event_id already, nor its deliveries."""
    sql = queries()["write"]
    now = time.time()
    published = []
    for event in events:
        await link.run("writing into the outbox", sql, write_params(event))
        published.append(
            Published(
                id=event.id,
                event_type=event.event_type,
                user_id=event.user_id,
                created_at=now,
                duplicate=False,
                deliveries=0,
            )
        )
    return published


def write_params(event: NewEvent) -> dict[str, Any]:
    """The parameters of the ``write`` query for one validated event."""
    return {
        "event_id": event.id,
        "event_type": event.event_type,
        "user_id": event.user_id,
        "data": event.data,
        "traceparent": event.traceparent,
    }


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A committed row the relay has read: its position in the outbox and its event."""

    id: int
    event: NewEvent

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboxRow:
        return cls(
            id=int(row["id"]),
            event=NewEvent(
                id=row["event_id"],
                event_type=row["event_type"],
                user_id=row["user_id"],
                data=row["data"],
                traceparent=row["traceparent"],
            ),
        )


__all__ = ["CHANNEL", "OutboxRow", "Runs", "holds_outbox", "queries", "write", "write_params"]
