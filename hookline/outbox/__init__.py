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

from dataclasses import dataclass
from typing import Any

from hookline.sql.named import load_queries
from hookline.store.records import NewEvent

#: Notified (on commit) by every write, listened to by the relay.
CHANNEL = "hookline_outbox"


def queries() -> dict[str, str]:
    """The named SQL blocks of ``postgres.sql`` (``:name`` parameters)."""
    return load_queries("hookline.outbox", "postgres.sql")


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


__all__ = ["CHANNEL", "OutboxRow", "queries", "write_params"]
