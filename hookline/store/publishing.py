"""Publishing: events stored with their fan-out (one delivery per matching endpoint of
every app the event's user installed), duplicates told apart from conflicts, and the
engines woken.

The writing is done by functions that take the transaction to write in (``tx``), not
by the store's methods: ``Store.publish`` runs them in a transaction of its own, and any
other caller holding a connection to the same database can run them in its own.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import orjson

from hookline import rules
from hookline.events import matches, new_token
from hookline.exceptions import EventConflict, NotFound, TooLarge
from hookline.store.base import StoreBase, to_json
from hookline.store.connector import Connection, Row, Subscription
from hookline.store.operational import Notice
from hookline.store.records import Event, NewEvent, Published

#: Notified by every publish that made deliveries (``notify_published``).
PUBLISHED_CHANNEL = "hookline_published"


class Publishing(StoreBase):
    async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
        """Store events and their fan-out in one transaction.

        An event whose id is already stored publishes nothing new and comes back marked
        ``duplicate``; the same id with a different type, user or data is an ``EventConflict``
        and nothing of the batch is stored.
        """
        check_events(events)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            return await write_events(
                tx, events, now, max_deliveries=self.limits.max_deliveries_per_publish
            )

    async def on_published(self, callback: Callable[[], None]) -> Subscription:
        """Call ``callback`` when any process publishes deliveries or makes one due now
        (``wake_engines``): PostgreSQL's NOTIFY, a datagram beside a SQLite file."""
        return await self.db.listen(PUBLISHED_CHANNEL, callback)

    async def wake_engines(self) -> None:
        """Tell the engines of every process that a delivery may be due now."""
        await self.db.execute("notify_published")

    async def get_event(self, event_id: str) -> Event:
        row = await self.db.fetchrow("get_event", id=event_id)
        if row is None:
            raise NotFound(f"no event with id {event_id!r}")
        return Event.from_row(row)


def check_events(events: Sequence[NewEvent]) -> None:
    """Refuse a batch with a malformed id, user or type, or one id twice with different
    contents, before anything is written."""
    for event in events:
        rules.EVENT_ID.check(event.id)
        rules.USER_ID.check(event.user_id)
        rules.check_event_type(event.event_type)
    _check_repeats(events)


async def write_events(
    tx: Connection, events: Sequence[NewEvent], now: float, *, max_deliveries: int
) -> list[Published]:
    """Write ``events`` (checked with ``check_events``) and their deliveries in ``tx``;
    a publish that would make more than ``max_deliveries`` writes nothing."""
    # Read first: a publish that would make too many deliveries writes nothing.
    targets = await fan_out_targets(tx, {e.user_id for e in events})
    check_fan_out(events, targets, max_deliveries)
    inserted = await tx.fetch(
        "insert_events",
        rows=to_json(
            [
                {
                    "id": e.id,
                    "event_type": e.event_type,
                    "user_id": e.user_id,
                    "data": e.data,
                    "traceparent": e.traceparent,
                }
                for e in events
            ]
        ),
        now=now,
    )
    fresh = {row["id"]: row for row in inserted}
    await _check_duplicates(tx, [e for e in events if e.id not in fresh])
    counts = await fan_out(tx, sorted(inserted, key=lambda r: r["seq"]), targets, now)
    existing = {}
    if len(fresh) < len(events):
        existing = {
            row["id"]: row
            for row in await tx.fetch(
                "get_events_by_ids", ids=to_json([e.id for e in events if e.id not in fresh])
            )
        }
    # The first occurrence of a new id is the event; a repeat in the same call is a
    # duplicate of it, as a repeat in a later call would be.
    firsts = {e.id: i for i, e in reversed(list(enumerate(events))) if e.id in fresh}
    return [
        Published(
            id=e.id,
            event_type=e.event_type,
            user_id=e.user_id,
            created_at=(fresh.get(e.id) or existing[e.id])["created_at"],
            duplicate=firsts.get(e.id) != i,
            deliveries=counts.get(e.id, 0) if firsts.get(e.id) == i else 0,
        )
        for i, e in enumerate(events)
    ]


async def _check_duplicates(tx: Connection, repeats: list[NewEvent]) -> None:
    if not repeats:
        return
    stored = {
        row["id"]: row
        for row in await tx.fetch("get_full_events_by_ids", ids=to_json([e.id for e in repeats]))
    }
    for event in repeats:
        row = stored.get(event.id)
        if row is None:  # repeated within this very batch (checked before)
            continue
        if not _same_event(row, event):
            raise EventConflict(
                f"event_id {event.id!r} was already published with another type, user "
                "or data; use a new event_id for a new event"
            )


async def fan_out_targets(tx: Connection, users: set[str]) -> dict[str, list[Row]]:
    """Each user's endpoints: the enabled ones of every app the user installed."""
    targets: dict[str, list[Row]] = defaultdict(list)
    if not users:
        return targets
    for target in await tx.fetch("fanout_targets", users=to_json(sorted(users))):
        target["event_types"] = orjson.loads(target["event_types"])
        targets[target["user_id"]].append(target)
    return targets


def check_fan_out(events: Sequence[NewEvent], targets: dict[str, list[Row]], most: int) -> None:
    """Refuse a publish whose deliveries would hold the database too long (counted
    over every event sent, repeats too: they are not known yet)."""
    count = sum(matches(t["event_types"], e.event_type) for e in events for t in targets[e.user_id])
    if count > most:
        raise TooLarge(
            f"these {len(events)} event(s) would make {count} deliveries; one publish may "
            f"make at most {most} (HOOKLINE_MAX_DELIVERIES_PER_PUBLISH): send fewer "
            "events at once"
        )


async def fan_out(
    tx: Connection, inserted: list[Row], targets: dict[str, list[Row]], now: float
) -> dict[str, int]:
    """One delivery per matching endpoint of every app the event's user installed."""
    if not inserted:
        return {}
    deliveries, lanes, counts = [], Counter[tuple[str, str]](), Counter[str]()
    for event in inserted:
        for target in targets.get(event["user_id"], ()):
            if not matches(target["event_types"], event["event_type"]):
                continue
            token_text = new_token()
            lane = event["user_id"] if target["ordered"] else "d:" + token_text
            deliveries.append(
                {
                    "event_seq": event["seq"],
                    "endpoint_id": target["endpoint_id"],
                    "app_id": target["app_id"],
                    "user_id": event["user_id"],
                    "event_type": event["event_type"],
                    "lane": lane,
                    "token": token_text,
                }
            )
            lanes[(target["endpoint_id"], lane)] += 1
            counts[event["id"]] += 1
    if deliveries:
        # Lanes first: where several processes publish, holding the lane rows makes
        # a later transaction's deliveries take later ids (event order in the lane).
        await grow_lanes(tx, lanes, now)
        await tx.execute("insert_deliveries", rows=to_json(deliveries), now=now)
        await tx.execute("notify_published")
    return dict(counts)


async def announce(tx: Connection, notices: Sequence[Notice], now: float) -> None:
    """Write operational events, each with one delivery to its app's operational
    endpoint, in the caller's transaction: an app without one (or with it disabled)
    gets none, and nothing is said about the operational endpoint itself. An event
    id already stored (the same change written again) makes nothing new."""
    if not notices:
        return
    sinks = {
        row["app_id"]: row
        for row in await tx.fetch(
            "operational_endpoints", ids=to_json(sorted({n.app_id for n in notices}))
        )
    }
    wanted = [n for n in notices if n.app_id in sinks and sinks[n.app_id]["id"] != n.endpoint_id]
    if not wanted:
        return
    inserted = await tx.fetch(
        "insert_events",
        rows=to_json(
            [
                {
                    "id": n.event_id,
                    "event_type": n.event_type,
                    "user_id": n.endpoint_id,
                    "data": to_json(n.data),
                }
                for n in wanted
            ]
        ),
        now=now,
    )
    seqs = {row["id"]: row["seq"] for row in inserted}
    deliveries, lanes = [], Counter[tuple[str, str]]()
    for n in wanted:
        if n.event_id not in seqs:
            continue
        sink = sinks[n.app_id]
        token = new_token()
        lane = n.endpoint_id if sink["ordered"] else "d:" + token
        deliveries.append(
            {
                "event_seq": seqs[n.event_id],
                "endpoint_id": sink["id"],
                "app_id": n.app_id,
                "user_id": n.endpoint_id,
                "event_type": n.event_type,
                "lane": lane,
                "token": token,
            }
        )
        lanes[(sink["id"], lane)] += 1
    if deliveries:
        await grow_lanes(tx, lanes, now)
        await tx.execute("insert_deliveries", rows=to_json(deliveries), now=now)
        await tx.execute("notify_published")


def _same_event(row: Row | NewEvent, event: NewEvent) -> bool:
    if isinstance(row, NewEvent):
        row = {"event_type": row.event_type, "user_id": row.user_id, "data": row.data}
    return bool(
        row["event_type"] == event.event_type
        and row["user_id"] == event.user_id
        and (row["data"] == event.data or orjson.loads(row["data"]) == orjson.loads(event.data))
    )


def _check_repeats(events: Sequence[NewEvent]) -> None:
    """The same event_id twice in one batch is one event if both say the same, and a
    ``EventConflict`` (nothing of the batch stored) if they differ."""
    first: dict[str, NewEvent] = {}
    for event in events:
        seen = first.setdefault(event.id, event)
        if seen is not event and not _same_event(seen, event):
            raise EventConflict(
                f"event_id {event.id!r} appears twice in the batch with another type, user "
                "or data; use a new event_id for a new event"
            )


def lanes_of(rows: list[Row]) -> Counter[tuple[str, str]]:
    """How many of ``rows`` (deliveries) fall in each (endpoint_id, lane)."""
    return Counter((row["endpoint_id"], row["lane"]) for row in rows)


async def grow_lanes(tx: Connection, lanes: Counter[tuple[str, str]], now: float) -> None:
    """Add pending deliveries to their lanes (creating them), in one statement.

    Lanes are taken in sorted order so that concurrent transactions lock lane rows in
    the same order and never deadlock.
    """
    if lanes:
        await tx.execute(
            "grow_lanes",
            rows=to_json(
                [
                    {"endpoint_id": ep, "lane": lane, "count": n}
                    for (ep, lane), n in sorted(lanes.items())
                ]
            ),
            now=now,
        )
