"""Deliveries as people see them: lists, one with its attempt log, counts, timelines,
metrics; sending them again; test sends."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from hookline import rules
from hookline.events import new_token
from hookline.exceptions import NotFound, ValidationError
from hookline.store.base import new_id, to_json
from hookline.store.connector import Row
from hookline.store.endpoints import Endpoints
from hookline.store.publishing import grow_lanes, lanes_of
from hookline.store.records import Attempt, Delivery, Tally

#: The user_id of test notifications: no real store, so no real user's lane waits on them.
TEST_USER = "hookline-test"


class Deliveries(Endpoints):
    """Extends ``Endpoints``: a test send starts from its endpoint."""

    async def list_deliveries(
        self,
        app_id: str,
        *,
        limit: int = 50,
        before: int | None = None,
        endpoint_id: str | None = None,
        user_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        with_attempts: bool = True,
    ) -> list[Delivery]:
        rows = await self.db.fetch(
            "list_deliveries",
            app_id=app_id,
            limit=limit,
            before=before,
            endpoint_id=endpoint_id,
            user_id=user_id,
            event_type=event_type,
            status=status,
            since=since,
            until=until,
        )
        if not with_attempts:
            return [Delivery.from_row(row) for row in rows]
        return await self._with_attempts(rows)

    async def get_delivery(self, delivery_id: int) -> Delivery:
        row = await self.db.fetchrow("get_delivery", id=delivery_id)
        if row is None:
            raise NotFound(f"no delivery with id {delivery_id}")
        (delivery,) = await self._with_attempts([row])
        return delivery

    async def _with_attempts(self, rows: list[Row]) -> list[Delivery]:
        """Each delivery with its ``attempt_log``: its first and last few attempts,
        oldest first, with ``attempts_omitted`` (how many between them are not kept) and
        ``omitted_after`` (how many of the log come before them)."""
        if not rows:
            return []
        head, tail = self.limits.attempt_log_head, self.limits.attempt_log_tail
        attempts: dict[int, list[Attempt]] = defaultdict(list)
        found = await self.db.fetch(
            "attempts_of", ids=to_json([r["id"] for r in rows]), head=head, tail=tail
        )
        for attempt in found:
            attempts[int(attempt["delivery_id"])].append(Attempt.from_row(attempt))
        return [
            Delivery.from_row(row, tuple(attempts.get(int(row["id"]), ())), head=head)
            for row in rows
        ]

    async def _delivery_of_event(self, event_seq: int, endpoint_id: str) -> Delivery:
        row = await self.db.fetchrow(
            "delivery_of_event", event_seq=event_seq, endpoint_id=endpoint_id
        )
        if row is None:
            raise NotFound(f"no delivery of event {event_seq} to {endpoint_id!r}")
        return await self.get_delivery(int(row["id"]))

    async def metrics_snapshot(self) -> Row:
        """Queue depth, when the oldest due delivery came due, endpoints by state.

        Cheap enough for every Prometheus scrape: no query here scans all deliveries.
        """
        row = await self.db.fetchrow("metrics_snapshot", now=self.clock.now())
        assert row is not None
        return row

    async def send_test(
        self, endpoint_id: str, event_type: str, data: str, *, user_id: str = TEST_USER
    ) -> Delivery:
        """Publish a sample event to one endpoint only, through the normal pipeline;
        return its one delivery.

        The event is stored like any other and gets one delivery, for this endpoint,
        whatever its subscription or the user's installations: a developer checks
        their receiver without touching any real store's webhooks.
        """
        rules.check_event_type(event_type)
        rules.USER_ID.check(user_id)
        endpoint = await self.get_endpoint(endpoint_id)
        if not endpoint.enabled:
            raise ValidationError("the endpoint is disabled; enable it to send a test")
        now = self.clock.now()
        event_id = new_id("evt_test")
        async with self.db.transaction() as tx:
            (event,) = await tx.fetch(
                "insert_events",
                rows=to_json(
                    [{"id": event_id, "event_type": event_type, "user_id": user_id, "data": data}]
                ),
                now=now,
            )
            token = new_token()
            lane = user_id if endpoint.ordered else "d:" + token
            delivery = {
                "event_seq": event["seq"],
                "endpoint_id": endpoint_id,
                "app_id": endpoint.app_id,
                "user_id": user_id,
                "event_type": event_type,
                "lane": lane,
                "token": token,
            }
            await tx.execute("insert_deliveries", rows=to_json([delivery]), now=now)
            await tx.execute(
                "grow_lanes",
                rows=to_json([{"endpoint_id": endpoint_id, "lane": lane, "count": 1}]),
                now=now,
            )
        return await self._delivery_of_event(int(event["seq"]), endpoint_id)

    async def retry_deliveries(self, delivery_ids: Sequence[int]) -> int:
        """Send finished deliveries (failed, or delivered: a replay) once more, now.

        The token and event_id stay the delivery's own, so a receiver that already has
        it treats it as a duplicate. Pending ones are left alone. Returns how many moved.
        """
        if not delivery_ids:
            return 0
        now = self.clock.now()
        async with self.db.transaction() as tx:
            moved = await tx.fetch(
                "retry_deliveries", ids=to_json([int(i) for i in delivery_ids]), now=now
            )
            await grow_lanes(tx, lanes_of(moved), now)
        return len(moved)

    async def failed_delivery_ids(
        self,
        *,
        app_id: str | None = None,
        endpoint_id: str | None = None,
        since: float | None = None,
        after: int = 0,
        limit: int = 500,
    ) -> list[int]:
        """One page (by ascending id, after ``after``) of failed deliveries."""
        rows = await self.db.fetch(
            "failed_delivery_ids",
            app_id=app_id,
            endpoint_id=endpoint_id,
            since=since,
            after=after,
            limit=limit,
        )
        return [int(r["id"]) for r in rows]

    async def count_failed_deliveries(
        self,
        *,
        app_id: str | None = None,
        endpoint_id: str | None = None,
        since: float | None = None,
    ) -> int:
        row = await self.db.fetchrow(
            "count_failed_deliveries", app_id=app_id, endpoint_id=endpoint_id, since=since
        )
        return int(row["n"]) if row else 0

    async def delivery_timeline(
        self,
        app_id: str,
        *,
        since: float,
        bucket: float,
        endpoint_id: str | None = None,
        limit: int = 10_000,
    ) -> list[Tally]:
        """Deliveries created per ``bucket`` seconds since ``since``, by their status now,
        from at most the newest ``limit`` deliveries."""
        rows = await self.db.fetch(
            "delivery_timeline",
            app_id=app_id,
            endpoint_id=endpoint_id,
            since=since,
            bucket=bucket,
            limit=limit,
        )
        return [Tally.from_row(row) for row in rows]
