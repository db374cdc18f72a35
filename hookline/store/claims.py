"""The engine's side: claiming lanes, recording attempts (retry times, endpoint health
and pace, operational events), handing lanes back, releasing them, pruning."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hookline.config import PACE_MAX, PACE_MIN
from hookline.ratelimit import EndpointRate
from hookline.store import operational
from hookline.store.base import Lane, StoreBase, signing_keys, to_json
from hookline.store.connector import Connection, Row
from hookline.store.operational import Notice
from hookline.store.publishing import announce, lanes_of
from hookline.store.records import AttemptResult, Claimed, Job

#: A cap that never binds (fits a 32-bit integer parameter).
_UNCAPPED = 2**31 - 1

#: How many deliveries in a row a lane may send under one lease (the claimed one and
#: those kept after it, see ``continue_lanes``) before it goes back to the claims. Each
#: kept lease saves a claim; the other lanes of an endpoint at its cap wait for at most
#: this many deliveries of one lane before their turn.
MAX_RUN = 16

#: How long after its claim a rate-limited delivery goes out, so that deliveries reach
#: their endpoint spaced as its limit spaced their claims, however long each claim's
#: commit took (see ``Store.claim``; the engine hands back one it could not send then).
RATE_PLAYOUT = 0.1

#: An endpoint's last 2xx is written at most once this many seconds (each write locks
#: its row against the other records of a busy endpoint), so it is that coarse.
SUCCESS_STAMP = 0.25


class Claims(StoreBase):
    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        default_cap: int,
        lease_margin: float,
        app_cap: int | None = None,
        slots: int | None = None,
    ) -> Claimed:
        """Lease up to ``limit`` due lanes and return the head delivery of each.

        Counted over the leases of every engine: no endpoint gets more than its cap (its
        own, or ``default_cap``), and no app more than ``app_cap`` nor more than its fair
        share of ``slots`` (split evenly among the apps that have work). Apps take turns
        within a claim. Without them, no app is capped.

        An endpoint with a rate limit gives no more lanes than its limit allows at this
        moment, and its GCRA state moves on by as many as it gave, in this transaction:
        claims run one at a time, so the limit holds across every engine and host. The
        answer says when the first endpoint held back by its limit or its pace opens.
        """
        max_timeout = self.limits.max_timeout
        async with self.db.transaction(durable=False) as tx:
            await tx.execute("lock_claims")
            # Read once the lock is held: the claims' clocks then run in the order they
            # decide, as a rate limit needs (and each lease counts from its own claim).
            now = self.clock.now()
            limited = await tx.fetch("rate_limits", now=now)
            rates = {
                r["id"]: EndpointRate(r["rate_limit"], r["rate_limit_burst"], r["rate_tat"])
                for r in limited
                if r["rate_limit"] is not None
            }
            due = await tx.fetch(
                "claim_lanes",
                now=now,
                limit=limit,
                default_cap=default_cap,
                app_cap=app_cap or _UNCAPPED,
                slots=slots or _UNCAPPED,
                rates=to_json(
                    [{"endpoint_id": ep, "allowed": r.allowance(now)} for ep, r in rates.items()]
                ),
            )
            if not due:
                return _held_back(Claimed(), limited, rates, {}, now)
            rows = to_json(
                [
                    {
                        "endpoint_id": r["endpoint_id"],
                        "lane": r["lane"],
                        "until": now + min(float(r["timeout"]), max_timeout) + lease_margin,
                    }
                    for r in due
                ]
            )
            leased = await tx.fetch("lease_lanes", rows=rows, owner=owner, now=now)
            if not leased:
                return _held_back(Claimed(), limited, rates, {}, now)
            pacing = {r["endpoint_id"]: float(r["pace"]) for r in due if r["pace"]}
            paced = sorted({r["endpoint_id"] for r in leased} & set(pacing))
            if paced:
                await tx.execute("pace_endpoints", ids=to_json(paced), now=now)
            taken = Counter(r["endpoint_id"] for r in leased if r["endpoint_id"] in rates)
            if taken:
                for ep, n in taken.items():
                    rates[ep] = rates[ep].take(now, n)
                await tx.execute(
                    "take_rates",
                    rows=to_json([{"id": ep, "tat": rates[ep].tat} for ep in sorted(taken)]),
                )
            heads = await tx.fetch("lane_heads", rows=to_json(leased))
            if len(heads) < len(leased):
                # A lane with no pending delivery left: its count drifted; drop it.
                found = {(h["endpoint_id"], h["lane"]) for h in heads}
                empty = [r for r in leased if (r["endpoint_id"], r["lane"]) not in found]
                await tx.execute("clear_lanes", rows=to_json(empty))
        claimed = Claimed(self._jobs(heads, now))
        if taken:
            # The claim let these go at ``now``, spaced from the others by the limit:
            # each is sent a fixed delay later, not whenever the commit and the engine
            # get to it, so they reach the endpoint with that spacing (the delay absorbs
            # how long the commit takes, which varies from one claim to the next).
            playout = {ep: now + RATE_PLAYOUT for ep in taken}
            claimed[:] = [
                replace(job, send_at=playout[job.endpoint_id])
                if job.endpoint_id in playout
                else job
                for job in claimed
            ]
        return _held_back(claimed, limited, rates, {ep: now + pacing[ep] for ep in paced}, now)

    def _jobs(self, heads: list[Row], now: float, runs: dict[Lane, int] | None = None) -> list[Job]:
        max_timeout = self.limits.max_timeout
        jobs = []
        for h in heads:
            h["timeout"] = min(float(h["timeout"]), max_timeout)
            jobs.append(
                Job.from_row(
                    h,
                    signing_keys(self._opened(h), now),
                    self._open_headers(h["headers"]),
                    self.keys.open_optional(h["client_key"]),
                    run=(runs or {}).get((h["endpoint_id"], h["lane"]), 0),
                )
            )
        return jobs

    async def hand_back(self, owner: str, jobs: Sequence[Job]) -> None:
        """Give back the lanes of claimed jobs that were not sent (a rate-limited one
        that could not go out at its moment): due again now, for any engine."""
        rows = sorted({(job.endpoint_id, job.lane) for job in jobs})
        async with self.db.transaction(durable=False) as tx:
            await tx.execute(
                "settle_lanes",
                rows=to_json(
                    [
                        {"endpoint_id": ep, "lane": lane, "count": 0, "retry_at": None}
                        for ep, lane in rows
                    ]
                ),
                owner=owner,
                now=self.clock.now(),
            )

    async def record(
        self,
        owner: str,
        results: Sequence[AttemptResult],
        *,
        recovering_after: float | None = None,
        keep: int = 0,
        default_cap: int = 0,
        lease_margin: float = 0.0,
        app_cap: int | None = None,
        slots: int | None = None,
    ) -> list[Job]:
        """Log each attempt and move its delivery, its lane and its endpoint on, all in
        one transaction, with the operational events these changes make (a delivery
        failed for good, an endpoint gone; with ``recovering_after``, an endpoint failing
        for at least that many seconds that answered again).

        With ``keep`` > 0, up to that many lanes whose head just ended and that have more
        to send keep their lease, and their next heads come back as jobs to send now: a
        lane's next delivery costs no claim. Only where a claim would hand the lane out
        (see ``continue_lanes``; the caps as in ``claim``). Each lane is written once:
        kept, dropped when empty, or given back.
        """
        now = self.clock.now()
        final = [r for r in results if r.outcome != "retry"]
        lanes = to_json([{"endpoint_id": r.job.endpoint_id, "lane": r.job.lane} for r in results])
        async with self.db.transaction(durable=False) as tx:
            await tx.execute("lock_lanes", rows=lanes)
            await tx.execute("insert_attempts", rows=to_json([_attempt_row(r) for r in results]))
            await self._trim_attempt_logs(tx, results)
            finished: Counter[Lane] = Counter()
            notices: list[Notice] = []
            if final:
                finished, notices = await self._finish(tx, final, now)
            if recovering_after is not None:
                notices += await self._recovering(tx, results, now - recovering_after)
            await announce(tx, notices, now)
            # The endpoints first: whether a failed delivery goes out again within seconds
            # depends on what every engine has seen of its endpoint, this batch included.
            await self._track_endpoints(tx, results, now)
            retries = await self._retry_times(tx, results)
            if retries:
                await tx.execute(
                    "reschedule_deliveries",
                    rows=to_json(
                        [
                            {**_attempt_row(r), "retry_at": at, "counted": int(r.counted)}
                            for r, at in retries
                        ]
                    ),
                    now=now,
                )
            retry_at = {(r.job.endpoint_id, r.job.lane): at for r, at in retries}
            runs = {(r.job.endpoint_id, r.job.lane): r.job.run + 1 for r in results}
            # A lane whose head failed waits for its retry; one whose head ended may go on.
            ended = [lane for lane in finished if lane not in retry_at]
            kept: list[Row] = []
            if keep > 0 and ended:
                kept = await tx.fetch(
                    "continue_lanes",
                    rows=to_json(
                        [
                            {
                                "endpoint_id": ep,
                                "lane": lane,
                                "count": finished[ep, lane],
                                "run": runs.get((ep, lane), MAX_RUN),
                            }
                            for ep, lane in ended
                        ]
                    ),
                    owner=owner,
                    now=now,
                    limit=keep,
                    max_run=MAX_RUN,
                    default_cap=default_cap,
                    app_cap=app_cap or _UNCAPPED,
                    slots=slots or _UNCAPPED,
                    max_timeout=self.limits.max_timeout,
                    margin=lease_margin,
                )
            kept_lanes = {(r["endpoint_id"], r["lane"]) for r in kept}
            if ended:
                await tx.execute(
                    "drop_finished_lanes",
                    rows=to_json(
                        [
                            {"endpoint_id": ep, "lane": lane, "count": finished[ep, lane]}
                            for ep, lane in ended
                            if (ep, lane) not in kept_lanes
                        ]
                    ),
                    owner=owner,
                )
            settled = [
                {
                    "endpoint_id": ep,
                    "lane": lane,
                    "count": finished[ep, lane],
                    "retry_at": retry_at.get((ep, lane)),
                }
                for ep, lane in sorted(set(runs) - kept_lanes)
            ]
            await tx.execute("settle_lanes", rows=to_json(settled), owner=owner, now=now)
            heads = await tx.fetch("lane_heads", rows=to_json(kept)) if kept else []
        return self._jobs(heads, now, runs)

    async def _finish(
        self, tx: Connection, final: Sequence[AttemptResult], now: float
    ) -> tuple[Counter[Lane], list[Notice]]:
        """Deliveries that ended (delivered, given up, or gone) leave their lanes; a 410
        disables its endpoint. Returns how many left each lane, and the operational
        events of what failed for good."""
        finished = await tx.fetch(
            "finish_deliveries",
            rows=to_json(
                [
                    {
                        **_attempt_row(r),
                        "status": "delivered" if r.outcome == "delivered" else "failed",
                    }
                    for r in final
                ]
            ),
            now=now,
        )
        ended = {int(row["id"]) for row in finished}
        notices = [
            operational.delivery_failed(r)
            for r in final
            if r.outcome != "delivered" and r.job.delivery_id in ended
        ]
        gone = [r for r in final if r.outcome == "gone"]
        if gone:
            disabled = await tx.fetch(
                "disable_endpoints",
                rows=to_json(
                    [
                        {
                            "endpoint_id": r.job.endpoint_id,
                            "reason": "the endpoint answered 410 Gone",
                        }
                        for r in gone
                    ]
                ),
                now=now,
            )
            first = {r.job.endpoint_id: r for r in reversed(gone)}
            notices += [
                operational.disabled_for_gone(row, first[row["id"]], now) for row in disabled
            ]
        return lanes_of(finished), notices

    async def _recovering(
        self, tx: Connection, results: Sequence[AttemptResult], before: float
    ) -> list[Notice]:
        """``endpoint.recovering`` for each endpoint failing since ``before`` or earlier
        that answered one of ``results`` with a 2xx (asked before ``_track_endpoints``
        clears its failing_since)."""
        answered: dict[str, float] = {}
        for r in results:
            if r.outcome == "delivered":
                ep = r.job.endpoint_id
                answered[ep] = max(answered.get(ep, 0.0), r.attempted_at)
        if not answered:
            return []
        rows = await tx.fetch("endpoints_recovering", ids=to_json(sorted(answered)), before=before)
        return [operational.recovering(row, answered[row["id"]]) for row in rows]

    async def _retry_times(
        self, tx: Connection, results: Sequence[AttemptResult]
    ) -> list[tuple[AttemptResult, float | None]]:
        """Each retry with its time: soon if its endpoint answered another request with a
        2xx since the delivery's previous attempt (the failure is the delivery's own, and
        on an ordered endpoint its whole lane waits), on the schedule otherwise. "Since"
        within ``SUCCESS_STAMP``: the endpoint's last 2xx is stamped that coarsely."""
        retries = [r for r in results if r.outcome == "retry"]
        asking = sorted({r.job.endpoint_id for r in retries if r.quick_retry_at is not None})
        answered: dict[str, float] = {}
        if asking:
            rows = await tx.fetch("endpoints_answered", ids=to_json(asking))
            answered = {r["id"]: r["last_success_at"] for r in rows if r["last_success_at"]}
        timed: list[tuple[AttemptResult, float | None]] = []
        for r in retries:
            last = answered.get(r.job.endpoint_id)
            soon = (
                last is not None
                and r.answered_since is not None
                and last + SUCCESS_STAMP >= r.answered_since
            )
            timed.append((r, r.quick_retry_at if soon else r.retry_at))
        return timed

    async def _trim_attempt_logs(self, tx: Connection, results: Sequence[AttemptResult]) -> None:
        """Keep a delivery's first and last few attempts only, however often it is retried,
        recovered or replayed: its log is bounded in storage and in every answer."""
        kept = self.limits.attempt_log_head + self.limits.attempt_log_tail
        long = sorted(
            {r.job.delivery_id for r in results if r.job.attempts + 1 > kept or not r.counted}
        )
        if long:
            await tx.execute(
                "trim_attempts",
                ids=to_json(long),
                head=self.limits.attempt_log_head,
                tail=self.limits.attempt_log_tail,
            )

    async def _track_endpoints(
        self, tx: Connection, results: Sequence[AttemptResult], now: float
    ) -> None:
        """Endpoint state, shared by every engine through the endpoint row.

        Health: an endpoint is failing from its first failed attempt after a success until
        its next success; the health check disables it once that has lasted too long.
        Pace: a "slow down" answer (429, 503) pauses the endpoint and doubles the gap
        between two requests to it; good answers shrink the gap again (AIMD on its rate).
        """
        state: dict[str, dict[str, Any]] = {}
        for r in results:
            ep = state.setdefault(
                r.job.endpoint_id,
                {
                    "endpoint_id": r.job.endpoint_id,
                    "answered_at": None,
                    "failed_at": None,
                    "throttle_for": None,
                    "sent_at": None,
                },
            )
            if r.outcome == "delivered":
                ep["answered_at"] = max(ep["answered_at"] or 0.0, r.attempted_at)
            elif r.outcome in ("retry", "failed"):
                ep["failed_at"] = min(ep["failed_at"] or r.attempted_at, r.attempted_at)
            if r.throttle_for is not None:
                ep["throttle_for"] = max(ep["throttle_for"] or 0.0, r.throttle_for)
                ep["sent_at"] = max(ep["sent_at"] or 0.0, r.attempted_at)
        await tx.execute(
            "track_endpoints",
            rows=to_json([state[ep] for ep in sorted(state)]),
            now=now,
            pace_min=PACE_MIN,
            pace_max=PACE_MAX,
            stamp=SUCCESS_STAMP,
        )

    async def release(self, owner: str) -> None:
        """Hand back every lane ``owner`` still holds (a clean shutdown)."""
        async with self.db.transaction(durable=False) as tx:
            await tx.execute("release_owner", owner=owner, now=self.clock.now())

    async def vacuum_lanes(self) -> None:
        """Clear the dead rows of the lanes table (PostgreSQL; see ``vacuum_lanes``)."""
        if self.db.dialect == "postgres":
            await self.db.execute("vacuum_lanes")

    async def prune(self, older_than: float, *, batch: int = 500, pause: float = 0.05) -> int:
        """Delete events created more than ``older_than`` seconds ago whose deliveries
        all ended (delivered or failed), with their deliveries and attempts. Only the
        event's age counts: retrying or recovering its deliveries never keeps it longer.

        Each batch is its own short transaction and a pause follows it, so pruning a
        large backlog never holds up delivery. Returns how many events went.
        """
        before = self.clock.now() - older_than
        total = 0
        while True:
            async with self.db.transaction() as tx:
                gone = await tx.fetch("prune_events", before=before, batch=batch)
            total += len(gone)
            if len(gone) < batch:
                return total
            # Real time, whatever the clock: the pause lets the engine's own writes in.
            await asyncio.sleep(pause)


def _held_back(
    claimed: Claimed,
    limited: list[Row],
    rates: dict[str, EndpointRate],
    paused: dict[str, float],
    now: float,
) -> Claimed:
    """``claimed`` with ``opens_at``: the first moment after ``now`` at which an endpoint
    held back by its rate limit (``rates``, as this claim left them) or its pause (as it
    was, or ``paused`` by this claim) takes a delivery again."""
    moments = list(paused.values())
    for row in limited:
        rate = rates.get(row["id"])
        opens = max(
            paused.get(row["id"], row["pause_until"] or 0.0),
            (rate.opens_at() or 0.0) if rate is not None else 0.0,
        )
        if opens > now:
            moments.append(opens)
    claimed.opens_at = min(moments, default=None)
    return claimed


def _attempt_row(result: AttemptResult) -> dict[str, Any]:
    return {
        "delivery_id": result.job.delivery_id,
        "attempted_at": result.attempted_at,
        "outcome": result.outcome,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "response_excerpt": result.response_excerpt,
        "error": result.error,
        "retry_at": result.retry_at,
    }
