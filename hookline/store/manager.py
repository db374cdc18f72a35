"""Everything hookline keeps, as operations: the only module that knows query names.

The API, the delivery engine and the CLI call these methods; the connector below runs
the named SQL of whichever dialect the database URL chose. Batches are passed to SQL as
one JSON array, so publishing 1,000 events or recording 1,000 attempts costs a handful
of statements, in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from hookline import rules
from hookline.config import PACE_MAX, PACE_MIN, Limits, redact_url
from hookline.events import OPERATIONAL_EVENT_TYPES, matches, new_token
from hookline.exceptions import (
    ConfigError,
    Conflict,
    EventConflict,
    LimitReached,
    NotFound,
    TooLarge,
    ValidationError,
)
from hookline.ratelimit import EndpointRate
from hookline.store import operational
from hookline.store.connector import Connection, Connector, Row, Subscription, connector_for
from hookline.store.operational import Notice
from hookline.store.records import AttemptResult, Claimed, Job, NewEvent, Published
from hookline.store.sealing import KeyBox, masked_header

#: Notified by every publish that made deliveries (``notify_published``).
PUBLISHED_CHANNEL = "hookline_published"

#: The user_id of test notifications: no real store, so no real user's lane waits on them.
TEST_USER = "hookline-test"


#: Where a page of a list starts: just after the row with this (created_at, id), in the
#: list's own order (the id is the user id for installations).
PageKey = tuple[float, str]

#: A lane: (endpoint_id, lane).
Lane = tuple[str, str]


def _page(after: PageKey | None, limit: int | None) -> dict[str, Any]:
    at, key = after if after is not None else (None, None)
    return {"after_at": at, "after_key": key, "limit": limit}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def new_api_key() -> str:
    return "hk_" + secrets.token_urlsafe(32)


def new_verification_key() -> str:
    return secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    # API keys carry 256 random bits, so a fast hash is enough: there is nothing to
    # brute-force, and the lookup by hash runs on every API request.
    return hashlib.sha256(api_key.encode()).hexdigest()


def signing_keys(app: Row, now: float) -> tuple[str, ...]:
    """The keys that sign a request now, the signing one first.

    During a rotation both keys sign the Standard Webhooks header; ``X-Selz-Signature``
    (one signature only) switches to the new key at ``key_switch_at``.
    """
    current, upcoming = app["verification_key"], app.get("next_verification_key")
    if not upcoming:
        return (current,)
    switch_at = app.get("key_switch_at")
    if switch_at is not None and now >= switch_at:
        return (upcoming, current)
    return (current, upcoming)


class Store:
    """``keys`` seals verification keys at rest (``KeyBox.from_env()`` when not given:
    sealed when ``HOOKLINE_MASTER_KEY`` is set, in the clear otherwise). ``limits`` bound
    what one app may ask for (``Limits.from_env()`` when not given)."""

    def __init__(
        self, connector: Connector, keys: KeyBox | None = None, limits: Limits | None = None
    ) -> None:
        self.db = connector
        self.keys = keys if keys is not None else KeyBox.from_env()
        self.limits = limits if limits is not None else Limits.from_env()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        keys: KeyBox | None = None,
        limits: Limits | None = None,
        create: bool = True,
    ) -> Store:
        """Open the database at ``url``, bringing its schema up to date.

        ``create=False`` opens only an existing hookline database: a missing SQLite file,
        or a database without hookline's tables (the wrong PostgreSQL database, say), is
        a ``ConfigError`` instead of a new, empty hookline database.
        """
        connector = connector_for(url, create=create)
        await connector.open()
        try:
            if not create and await connector.schema_version() == 0:
                raise ConfigError(
                    f"{redact_url(url)} holds no hookline database; correct the URL, "
                    "or create one there with `hookline migrate`"
                )
            if migrate:
                await connector.migrate()
        except BaseException:
            await connector.close()
            raise
        return cls(connector, keys, limits)

    async def close(self) -> None:
        await self.db.close()

    # -- apps, installations, endpoints -------------------------------------------------

    async def create_app(self, name: str, operator_url: str | None = None) -> tuple[Row, str]:
        """Create an app; return its row and its API key (shown once, stored hashed).
        With ``operator_url``, hookline's operational webhooks about the app's endpoints
        go there (``set_operator_url``)."""
        rules.APP_NAME.check(name)
        if operator_url is not None:
            rules.check_url_shape(operator_url)
        api_key = new_api_key()
        now = time.time()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "create_app",
                id=new_id("app"),
                name=name,
                api_key_hash=hash_api_key(api_key),
                verification_key=self.keys.seal(new_verification_key()),
                now=now,
            )
            assert row is not None
            if operator_url is not None:
                row = await self._set_operator_url(tx, row["id"], operator_url, now)
        return self._opened(row), api_key

    async def set_operator_url(self, app_id: str, operator_url: str | None) -> Row:
        """Send hookline's operational webhooks about the app's endpoints to
        ``operator_url`` (None: nowhere).

        The URL is kept as the app's *operational endpoint*, subscribed to the operational
        event types only: made with the first URL, its URL changed with the next ones
        (its other settings, its log and its backlog stay), deleted with its deliveries
        when the URL is removed."""
        if operator_url is not None:
            rules.check_url_shape(operator_url)
        async with self.db.transaction() as tx:
            await tx.execute("lock_app", id=app_id)
            if await tx.fetchrow("get_app", id=app_id) is None:
                raise NotFound(f"no app with id {app_id!r}")
            row = await self._set_operator_url(tx, app_id, operator_url, time.time())
        return self._opened(row)

    async def _set_operator_url(
        self, tx: Connection, app_id: str, url: str | None, now: float
    ) -> Row:
        current = await tx.fetchrow("operational_endpoint", app_id=app_id)
        if current is not None and url is None:
            await tx.execute("lock_lanes_of_endpoint", id=current["id"])
            await tx.execute("delete_endpoint", id=current["id"])
        elif current is not None:
            await tx.execute("set_operational_url", id=current["id"], url=url, now=now)
        elif url is not None:
            await tx.execute(
                "create_endpoint",
                id=new_id("ep"),
                app_id=app_id,
                url=url,
                event_types=_json(list(OPERATIONAL_EVENT_TYPES)),
                timeout=min(10.0, self.limits.max_timeout),
                ordered=1,
                max_in_flight=None,
                headers=None,
                client_cert=None,
                client_key=None,
                verification_key=None,
                operational=1,
                rate_limit=None,
                rate_limit_burst=1,
                now=now,
            )
        row = await tx.fetchrow("set_operator_url", id=app_id, operator_url=url)
        assert row is not None
        return row

    async def get_app(self, app_id: str) -> Row:
        row = await self.db.fetchrow("get_app", id=app_id)
        if row is None:
            raise NotFound(f"no app with id {app_id!r}")
        return self._opened(row)

    def _opened(self, row: Row) -> Row:
        """The row with its verification keys opened (they may be sealed at rest)."""
        row["verification_key"] = self.keys.open(row["verification_key"])
        row["next_verification_key"] = self.keys.open_optional(row.get("next_verification_key"))
        return row

    async def app_for_api_key(self, api_key: str) -> Row | None:
        return await self.db.fetchrow("get_app_by_key_hash", api_key_hash=hash_api_key(api_key))

    async def list_apps(
        self, *, after: PageKey | None = None, limit: int | None = None
    ) -> list[Row]:
        """Apps oldest first; with ``after`` and ``limit``, one page (``PageKey``)."""
        rows = await self.db.fetch("list_apps", **_page(after, limit))
        return [self._opened(row) for row in rows]

    async def install(self, app_id: str, user_id: str) -> tuple[Row, bool]:
        """Record that ``user_id`` installed the app; return the row and whether it is new."""
        rules.USER_ID.check(user_id)
        await self.get_app(app_id)
        async with self.db.transaction() as tx:
            existing = await tx.fetchrow("get_installation", app_id=app_id, user_id=user_id)
            if existing is not None:
                return existing, False
            await tx.execute("create_installation", app_id=app_id, user_id=user_id, now=time.time())
            row = await tx.fetchrow("get_installation", app_id=app_id, user_id=user_id)
        assert row is not None
        return row, True

    async def count_installations(self, app_id: str) -> int:
        row = await self.db.fetchrow("count_installations", app_id=app_id)
        return int(row["n"]) if row else 0

    async def list_installations(
        self, app_id: str, *, after: PageKey | None = None, limit: int | None = None
    ) -> list[Row]:
        return await self.db.fetch("list_installations", app_id=app_id, **_page(after, limit))

    async def create_endpoint(
        self,
        app_id: str,
        *,
        url: str,
        event_types: list[str],
        timeout: float,
        ordered: bool = True,
        max_in_flight: int | None = None,
        headers: dict[str, str] | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        own_verification_key: bool = False,
        rate_limit: float | None = None,
        rate_limit_burst: int = 1,
    ) -> Row:
        """Register an endpoint, within the limits on its settings and on how many
        endpoints one app may have (counted under a lock on the app, so creates racing
        each other cannot pass it). ``headers`` go with every delivery to it, and
        ``client_cert`` with ``client_key`` make its TLS mutual; the secrets are sealed at
        rest, and the rows returned show header values masked and no key. ``rate_limit``
        (deliveries a second, up to ``rate_limit_burst`` at once) holds across every
        worker."""
        rules.check_url_shape(url)
        event_types = rules.check_event_filter(event_types)
        rules.check_headers(headers or {})
        rules.check_client_tls(client_cert, client_key)
        self._check_endpoint_settings(timeout, max_in_flight)
        if rate_limit is not None:
            rate_limit = rules.check_rate_limit(rate_limit)
        rules.check_rate_burst(rate_limit_burst)
        await self.get_app(app_id)
        async with self.db.transaction() as tx:
            await tx.execute("lock_app", id=app_id)
            count = await tx.fetchrow("count_endpoints", app_id=app_id)
            most = self.limits.max_endpoints_per_app
            if count is not None and int(count["n"]) >= most:
                raise LimitReached(
                    f"the app has {count['n']} endpoints, the most one app may have "
                    f"(HOOKLINE_MAX_ENDPOINTS_PER_APP={most}); delete one it no longer uses"
                )
            row = await tx.fetchrow(
                "create_endpoint",
                id=new_id("ep"),
                app_id=app_id,
                url=url,
                event_types=_json(event_types),
                timeout=timeout,
                ordered=int(ordered),
                max_in_flight=max_in_flight,
                headers=self._seal_headers(headers),
                client_cert=client_cert,
                client_key=self.keys.seal(client_key) if client_key else None,
                verification_key=(
                    self.keys.seal(new_verification_key()) if own_verification_key else None
                ),
                operational=0,
                rate_limit=rate_limit,
                rate_limit_burst=rate_limit_burst,
                now=time.time(),
            )
        assert row is not None
        return self._shown(row)

    def _seal_headers(self, headers: dict[str, str] | None) -> str | None:
        return self.keys.seal(_json(headers)) if headers else None

    def _open_headers(self, stored: str | None) -> dict[str, str]:
        found: dict[str, str] = orjson.loads(self.keys.open(stored)) if stored else {}
        return found

    def _shown(self, row: Row) -> Row:
        """An endpoint as it leaves the store for people (API, dashboard, CLI): the
        values of its headers masked. Only the engine's jobs carry them in full."""
        row["headers"] = {
            name: masked_header(name, value)
            for name, value in self._open_headers(row["headers"]).items()
        }
        row.pop("client_key", None)
        # Its own verification keys are the app's to see, as the app's keys are.
        row["verification_key"] = self.keys.open_optional(row["verification_key"])
        row["next_verification_key"] = self.keys.open_optional(row["next_verification_key"])
        # Its pause, only while it lasts (a claim moves it on for a paced endpoint).
        paused = row.get("pause_until")
        row["paused_until"] = paused if paused is not None and paused > time.time() else None
        return row

    def _check_endpoint_settings(self, timeout: float | None, max_in_flight: int | None) -> None:
        if timeout is not None and timeout > self.limits.max_timeout:
            raise ValidationError(
                f"timeout {timeout:g} s is above the longest allowed, "
                f"{self.limits.max_timeout:g} s (HOOKLINE_MAX_TIMEOUT)"
            )
        if max_in_flight is not None and max_in_flight > self.limits.max_in_flight:
            raise ValidationError(
                f"max_in_flight {max_in_flight} is above the most allowed, "
                f"{self.limits.max_in_flight} (HOOKLINE_MAX_IN_FLIGHT)"
            )

    async def get_endpoint(self, endpoint_id: str) -> Row:
        row = await self.db.fetchrow("get_endpoint", id=endpoint_id)
        if row is None:
            raise NotFound(f"no endpoint with id {endpoint_id!r}")
        return self._shown(row)

    async def list_endpoints(
        self, app_id: str, *, after: PageKey | None = None, limit: int | None = None
    ) -> list[Row]:
        rows = await self.db.fetch("list_endpoints", app_id=app_id, **_page(after, limit))
        return [self._shown(row) for row in rows]

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, events: Sequence[NewEvent]) -> list[Published]:
        """Store events and their fan-out in one transaction.

        An event whose id is already stored publishes nothing new and comes back marked
        ``duplicate``; the same id with a different type, user or data is an ``EventConflict``
        and nothing of the batch is stored.
        """
        for event in events:
            rules.EVENT_ID.check(event.id)
            rules.USER_ID.check(event.user_id)
            rules.check_event_type(event.event_type)
        _check_repeats(events)
        now = time.time()
        async with self.db.transaction() as tx:
            # Read first: a publish that would make too many deliveries writes nothing.
            targets = await self._fan_out_targets(tx, {e.user_id for e in events})
            self._check_fan_out(events, targets)
            inserted = await tx.fetch(
                "insert_events",
                rows=_json(
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
            await self._check_duplicates(tx, [e for e in events if e.id not in fresh])
            counts = await self._fan_out(tx, sorted(inserted, key=lambda r: r["seq"]), targets, now)
            existing = {}
            if len(fresh) < len(events):
                existing = {
                    row["id"]: row
                    for row in await tx.fetch(
                        "get_events_by_ids", ids=_json([e.id for e in events if e.id not in fresh])
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

    async def _check_duplicates(self, tx: Any, repeats: list[NewEvent]) -> None:
        if not repeats:
            return
        stored = {
            row["id"]: row
            for row in await tx.fetch("get_full_events_by_ids", ids=_json([e.id for e in repeats]))
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

    async def _fan_out_targets(self, tx: Any, users: set[str]) -> dict[str, list[Row]]:
        """Each user's endpoints: the enabled ones of every app the user installed."""
        targets: dict[str, list[Row]] = defaultdict(list)
        if not users:
            return targets
        for target in await tx.fetch("fanout_targets", users=_json(sorted(users))):
            target["event_types"] = orjson.loads(target["event_types"])
            targets[target["user_id"]].append(target)
        return targets

    def _check_fan_out(self, events: Sequence[NewEvent], targets: dict[str, list[Row]]) -> None:
        """Refuse a publish whose deliveries would hold the database too long (counted
        over every event sent, repeats too: they are not known yet)."""
        most = self.limits.max_deliveries_per_publish
        count = sum(
            matches(t["event_types"], e.event_type) for e in events for t in targets[e.user_id]
        )
        if count > most:
            raise TooLarge(
                f"these {len(events)} event(s) would make {count} deliveries; one publish may "
                f"make at most {most} (HOOKLINE_MAX_DELIVERIES_PER_PUBLISH): send fewer "
                "events at once"
            )

    async def _fan_out(
        self, tx: Any, inserted: list[Row], targets: dict[str, list[Row]], now: float
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
            await _grow_lanes(tx, lanes, now)
            await tx.execute("insert_deliveries", rows=_json(deliveries), now=now)
            await tx.execute("notify_published")
        return dict(counts)

    async def on_published(self, callback: Callable[[], None]) -> Subscription:
        """Call ``callback`` when any process publishes deliveries or makes one due now
        (``wake_engines``): PostgreSQL's NOTIFY, a datagram beside a SQLite file."""
        return await self.db.listen(PUBLISHED_CHANNEL, callback)

    async def wake_engines(self) -> None:
        """Tell the engines of every process that a delivery may be due now."""
        await self.db.execute("notify_published")

    async def get_event(self, event_id: str) -> Row:
        row = await self.db.fetchrow("get_event", id=event_id)
        if row is None:
            raise NotFound(f"no event with id {event_id!r}")
        return row

    # -- delivery -----------------------------------------------------------------------

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
            now = time.time()
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
                rates=_json(
                    [{"endpoint_id": ep, "allowed": r.allowance(now)} for ep, r in rates.items()]
                ),
            )
            if not due:
                return _held_back(Claimed(), limited, rates, {}, now)
            rows = _json(
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
                await tx.execute("pace_endpoints", ids=_json(paced), now=now)
            taken = Counter(r["endpoint_id"] for r in leased if r["endpoint_id"] in rates)
            if taken:
                for ep, n in taken.items():
                    rates[ep] = rates[ep].take(now, n)
                await tx.execute(
                    "take_rates",
                    rows=_json([{"id": ep, "tat": rates[ep].tat} for ep in sorted(taken)]),
                )
            heads = await tx.fetch("lane_heads", rows=_json(leased))
            if len(heads) < len(leased):
                # A lane with no pending delivery left: its count drifted; drop it.
                found = {(h["endpoint_id"], h["lane"]) for h in heads}
                empty = [r for r in leased if (r["endpoint_id"], r["lane"]) not in found]
                await tx.execute("clear_lanes", rows=_json(empty))
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
                rows=_json(
                    [
                        {"endpoint_id": ep, "lane": lane, "count": 0, "retry_at": None}
                        for ep, lane in rows
                    ]
                ),
                owner=owner,
                now=time.time(),
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
        now = time.time()
        final = [r for r in results if r.outcome != "retry"]
        lanes = _json([{"endpoint_id": r.job.endpoint_id, "lane": r.job.lane} for r in results])
        async with self.db.transaction(durable=False) as tx:
            await tx.execute("lock_lanes", rows=lanes)
            await tx.execute("insert_attempts", rows=_json([_attempt_row(r) for r in results]))
            await self._trim_attempt_logs(tx, results)
            finished: Counter[Lane] = Counter()
            notices: list[Notice] = []
            if final:
                finished, notices = await self._finish(tx, final, now)
            if recovering_after is not None:
                notices += await self._recovering(tx, results, now - recovering_after)
            await self._announce(tx, notices, now)
            # The endpoints first: whether a failed delivery goes out again within seconds
            # depends on what every engine has seen of its endpoint, this batch included.
            await self._track_endpoints(tx, results, now)
            retries = await self._retry_times(tx, results)
            if retries:
                await tx.execute(
                    "reschedule_deliveries",
                    rows=_json(
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
                    rows=_json(
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
                    rows=_json(
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
            await tx.execute("settle_lanes", rows=_json(settled), owner=owner, now=now)
            heads = await tx.fetch("lane_heads", rows=_json(kept)) if kept else []
        return self._jobs(heads, now, runs)

    async def _finish(
        self, tx: Connection, final: Sequence[AttemptResult], now: float
    ) -> tuple[Counter[Lane], list[Notice]]:
        """Deliveries that ended (delivered, given up, or gone) leave their lanes; a 410
        disables its endpoint. Returns how many left each lane, and the operational
        events of what failed for good."""
        finished = await tx.fetch(
            "finish_deliveries",
            rows=_json(
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
                rows=_json(
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
        return _lanes_of(finished), notices

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
        rows = await tx.fetch("endpoints_recovering", ids=_json(sorted(answered)), before=before)
        return [operational.recovering(row, answered[row["id"]]) for row in rows]

    async def _announce(self, tx: Connection, notices: Sequence[Notice], now: float) -> None:
        """Write operational events, each with one delivery to its app's operational
        endpoint, in the caller's transaction: an app without one (or with it disabled)
        gets none, and nothing is said about the operational endpoint itself. An event
        id already stored (the same change written again) makes nothing new."""
        if not notices:
            return
        sinks = {
            row["app_id"]: row
            for row in await tx.fetch(
                "operational_endpoints", ids=_json(sorted({n.app_id for n in notices}))
            )
        }
        wanted = [
            n for n in notices if n.app_id in sinks and sinks[n.app_id]["id"] != n.endpoint_id
        ]
        if not wanted:
            return
        inserted = await tx.fetch(
            "insert_events",
            rows=_json(
                [
                    {
                        "id": n.event_id,
                        "event_type": n.event_type,
                        "user_id": n.endpoint_id,
                        "data": _json(n.data),
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
            await _grow_lanes(tx, lanes, now)
            await tx.execute("insert_deliveries", rows=_json(deliveries), now=now)
            await tx.execute("notify_published")

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
            rows = await tx.fetch("endpoints_answered", ids=_json(asking))
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
                ids=_json(long),
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
            rows=_json([state[ep] for ep in sorted(state)]),
            now=now,
            pace_min=PACE_MIN,
            pace_max=PACE_MAX,
            stamp=SUCCESS_STAMP,
        )

    async def release(self, owner: str) -> None:
        """Hand back every lane ``owner`` still holds (a clean shutdown)."""
        async with self.db.transaction(durable=False) as tx:
            await tx.execute("release_owner", owner=owner, now=time.time())

    async def vacuum_lanes(self) -> None:
        """Clear the dead rows of the lanes table (PostgreSQL; see ``vacuum_lanes``)."""
        if self.db.dialect == "postgres":
            await self.db.execute("vacuum_lanes")

    # -- retention ----------------------------------------------------------------------

    async def prune(self, older_than: float, *, batch: int = 500, pause: float = 0.05) -> int:
        """Delete events created more than ``older_than`` seconds ago whose deliveries
        all ended (delivered or failed), with their deliveries and attempts. Only the
        event's age counts: retrying or recovering its deliveries never keeps it longer.

        Each batch is its own short transaction and a pause follows it, so pruning a
        large backlog never holds up delivery. Returns how many events went.
        """
        before = time.time() - older_than
        total = 0
        while True:
            async with self.db.transaction() as tx:
                gone = await tx.fetch("prune_events", before=before, batch=batch)
            total += len(gone)
            if len(gone) < batch:
                return total
            await asyncio.sleep(pause)

    # -- apps: names, keys, removal -----------------------------------------------------

    async def rename_app(self, app_id: str, name: str) -> Row:
        rules.APP_NAME.check(name)
        row = await self.db.fetchrow("rename_app", id=app_id, name=name)
        if row is None:
            raise NotFound(f"no app with id {app_id!r}")
        return self._opened(row)

    async def delete_app(self, app_id: str) -> None:
        """Delete an app with its installations, endpoints, deliveries and attempts."""
        async with self.db.transaction() as tx:
            await tx.execute("lock_lanes_of_app", id=app_id)
            gone = await tx.fetchrow("delete_app", id=app_id)
        if gone is None:
            raise NotFound(f"no app with id {app_id!r}")

    async def rotate_api_key(self, app_id: str) -> tuple[Row, str]:
        """A new API key for the app (shown once); the old one stops working at once."""
        api_key = new_api_key()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "set_api_key_hash", id=app_id, api_key_hash=hash_api_key(api_key)
            )
        if row is None:
            raise NotFound(f"no app with id {app_id!r}")
        return self._opened(row), api_key

    async def rotate_verification_key(self, app_id: str, grace: float) -> Row:
        """Make the app's next verification key; signing switches to it after ``grace``.

        Until then ``X-Selz-Signature`` stays on the current key and ``webhook-signature``
        carries both, so the app adds the new key to its receiver in the meantime and no
        delivery is rejected. A rotation still in its grace period is a ``Conflict``; one
        whose switch has passed is completed first.
        """
        now = time.time()
        async with self.db.transaction() as tx:
            stored = await tx.fetchrow("get_app", id=app_id)
            if stored is None:
                raise NotFound(f"no app with id {app_id!r}")
            row = await tx.fetchrow(
                "set_verification_keys", id=app_id, **self._rotated(stored, now, grace)
            )
        assert row is not None
        return self._opened(row)

    async def rotate_endpoint_key(self, endpoint_id: str, grace: float) -> Row:
        """``rotate_verification_key`` for an endpoint: its next key of its own. One that
        has none yet starts from its app's key, so its receiver, which knows that key,
        rejects nothing either; from the switch on, the endpoint's own key signs."""
        now = time.time()
        async with self.db.transaction() as tx:
            stored = await tx.fetchrow("get_endpoint", id=endpoint_id)
            if stored is None:
                raise NotFound(f"no endpoint with id {endpoint_id!r}")
            if stored["verification_key"] is None:
                app = await tx.fetchrow("get_app", id=stored["app_id"])
                assert app is not None
                if app["next_verification_key"] is not None:
                    raise Conflict(
                        "the app's own key rotation is under way; give the endpoint a key "
                        "of its own once it is over"
                    )
                stored = {**stored, "verification_key": app["verification_key"]}
            row = await tx.fetchrow(
                "set_endpoint_keys", id=endpoint_id, now=now, **self._rotated(stored, now, grace)
            )
        assert row is not None
        return self._shown(row)

    def _rotated(self, stored: Row, now: float, grace: float) -> dict[str, Any]:
        """The keys of an app or an endpoint once a rotation starts: a new next key,
        signing from ``now + grace``. A rotation still in its grace period is a
        ``Conflict``; one whose switch has passed is completed first."""
        current, upcoming = stored["verification_key"], stored["next_verification_key"]
        if upcoming is not None:
            if stored["key_switch_at"] is not None and stored["key_switch_at"] > now:
                raise Conflict(
                    "a key rotation is under way; signing switches to its key at "
                    f"{stored['key_switch_at']:.0f} (seconds since the epoch)"
                )
            current = upcoming
        return {
            "verification_key": current,
            "next_verification_key": self.keys.seal(new_verification_key()),
            "key_switch_at": now + grace,
        }

    async def retire_switched_keys(self) -> int:
        """Drop the old key of every app and endpoint whose signing has switched to its
        new one."""
        now = time.time()
        async with self.db.transaction() as tx:
            apps = await tx.fetch("retire_switched_keys", now=now)
            endpoints = await tx.fetch("retire_switched_endpoint_keys", now=now)
        return len(apps) + len(endpoints)

    async def reseal_keys(
        self, keys: KeyBox, *, batch: int = 200, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Write every verification key again sealed by ``keys`` (a new master key, or
        none to store them in the clear); they are opened with this store's own box,
        which must know the old master key. Batches of ``batch`` apps, each its own
        transaction: an interrupted run is simply run again. Returns how many apps."""
        count = await self.db.fetchrow("count_apps")
        total = int(count["n"]) if count else 0
        return await self._reseal(
            keys,
            ("app_keys_after", "store_app_keys"),
            ("verification_key", "next_verification_key"),
            batch=batch,
            progress=None if progress is None else lambda done: progress(done, max(total, done)),
        )

    async def reseal_endpoint_secrets(self, keys: KeyBox, *, batch: int = 200) -> int:
        """``reseal_keys`` for what endpoints keep sealed (headers, client keys, their
        own verification keys); returns how many endpoints. Batches are transactions of
        their own, as there."""
        return await self._reseal(
            keys,
            ("endpoint_secrets_after", "store_endpoint_secrets"),
            ("headers", "client_key", "verification_key", "next_verification_key"),
            batch=batch,
        )

    async def _reseal(
        self,
        keys: KeyBox,
        queries: tuple[str, str],
        columns: tuple[str, ...],
        *,
        batch: int,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Read rows ``batch`` at a time in id order (``queries``: the read, the write),
        open each sealed column with this store's box and seal it with ``keys``."""
        read, write = queries
        done, after = 0, ""
        while True:
            rows = await self.db.fetch(read, after=after, limit=batch)
            if not rows:
                return done
            sealed = [
                {
                    name: keys.seal(self.keys.open(row[name])) if row[name] else None
                    for name in columns
                }
                | {"id": row["id"]}
                for row in rows
            ]
            async with self.db.transaction() as tx:
                await tx.execute(write, rows=_json(sealed))
            done += len(rows)
            after = rows[-1]["id"]
            if progress is not None:
                progress(done)

    # -- endpoints: changes, recovery, tests, statistics, health ------------------------

    async def update_endpoint(self, endpoint_id: str, **changes: Any) -> Row:
        """Change the given settings (``url``, ``event_types``, ``timeout``, ``ordered``,
        ``max_in_flight``, ``enabled``, ``headers``, ``rate_limit`` (None: none),
        ``rate_limit_burst``) and keep the rest.

        ``headers`` changes the headers it names and keeps the others: a value sets one,
        None removes it (names ignore case). Their values are secrets no one can read
        back, so a change never needs the ones it leaves alone. ``client_cert`` and
        ``client_key`` change together (both None: no client certificate any more).

        Disabling (or enabling) by hand clears the health record, so the health check
        neither probes nor re-enables it. Enabled again, the endpoint sends its backlog
        at once, in order. A new ``ordered`` applies to deliveries published from now on.
        """
        if "url" in changes:
            rules.check_url_shape(changes["url"])
        if "event_types" in changes:
            changes["event_types"] = rules.check_event_filter(changes["event_types"])
        self._check_endpoint_settings(changes.get("timeout"), changes.get("max_in_flight"))
        if changes.get("rate_limit") is not None:
            changes["rate_limit"] = rules.check_rate_limit(changes["rate_limit"])
        if "rate_limit_burst" in changes:
            rules.check_rate_burst(changes["rate_limit_burst"])
        now = time.time()
        async with self.db.transaction() as tx:
            if changes.get("enabled"):
                # Enabling wakes the lanes: take them first (see lock_lanes_of_endpoint).
                await tx.execute("lock_lanes_of_endpoint", id=endpoint_id)
            row = await tx.fetchrow("get_endpoint", id=endpoint_id)
            if row is None:
                raise NotFound(f"no endpoint with id {endpoint_id!r}")
            if row["operational"] and ("url" in changes or "event_types" in changes):
                raise ValidationError(
                    "this is the app's operational endpoint: its URL is the app's "
                    "operator_url (change it there) and it gets hookline's own events only"
                )
            values = {k: row[k] for k in ENDPOINT_SETTINGS}
            # The sealed settings are merged and checked below, not taken as given.
            values.update(
                {k: v for k, v in changes.items() if k in ENDPOINT_SETTINGS and k not in SEALED}
            )
            if "headers" in changes:
                merged = _merge_headers(self._open_headers(row["headers"]), changes["headers"])
                values["headers"] = self._seal_headers(rules.check_headers(merged))
            if "client_cert" in changes or "client_key" in changes:
                cert, key = changes.get("client_cert"), changes.get("client_key")
                rules.check_client_tls(cert, key)
                values["client_cert"] = cert
                values["client_key"] = self.keys.seal(key) if key else None
            if "event_types" in changes:
                values["event_types"] = _json(changes["event_types"])
            enabled = bool(values["enabled"])
            if "enabled" in changes and enabled != bool(row["enabled"]):
                values["failing_since"] = None
                values["disabled_reason"] = None if enabled else "disabled through the API"
            else:
                values["failing_since"] = row["failing_since"]
                values["disabled_reason"] = row["disabled_reason"]
            values["enabled"] = int(enabled)
            values["ordered"] = int(bool(values["ordered"]))
            updated = await tx.fetchrow("update_endpoint", id=endpoint_id, now=now, **values)
            if enabled and not row["enabled"]:
                await tx.execute("wake_endpoint_lanes", endpoint_id=endpoint_id, now=now)
        assert updated is not None
        return self._shown(updated)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint with its deliveries, their attempts and its lanes. The app's
        operational endpoint goes only with its operator_url (``set_operator_url``)."""
        async with self.db.transaction() as tx:
            await tx.execute("lock_lanes_of_endpoint", id=endpoint_id)
            row = await tx.fetchrow("get_endpoint", id=endpoint_id)
            if row is not None and row["operational"]:
                raise Conflict(
                    "this is the app's operational endpoint: set the app's operator_url to "
                    "null to remove it"
                )
            gone = await tx.fetchrow("delete_endpoint", id=endpoint_id)
        if gone is None:
            raise NotFound(f"no endpoint with id {endpoint_id!r}")

    async def recover_endpoint(self, endpoint_id: str, since: float) -> int:
        """Make every failed delivery of an endpoint created since ``since`` pending again,
        due now, with its own token and event_id. Each lane sends them in delivery order.
        Returns how many."""
        now = time.time()
        async with self.db.transaction() as tx:
            moved = await tx.fetch(
                "recover_endpoint", endpoint_id=endpoint_id, since=since, now=now
            )
            await _grow_lanes(tx, _lanes_of(moved), now)
        return len(moved)

    async def delivery_for_event(self, event_seq: int, endpoint_id: str) -> Row:
        row = await self.db.fetchrow(
            "delivery_of_event", event_seq=event_seq, endpoint_id=endpoint_id
        )
        if row is None:
            raise NotFound(f"no delivery of event {event_seq} to {endpoint_id!r}")
        return await self.get_delivery(int(row["id"]))

    async def endpoint_stats(self, endpoint_id: str, since: float, *, limit: int = 10_000) -> Row:
        """Success rate and latency percentiles of the endpoint's latest attempts since
        ``since`` (at most ``limit`` of them, so a busy endpoint costs a bounded read)."""
        attempts = await self.db.fetch(
            "endpoint_attempts", endpoint_id=endpoint_id, since=since, limit=limit
        )
        backlog = await self.db.fetchrow("endpoint_backlog", endpoint_id=endpoint_id)
        outcomes = Counter(a["outcome"] for a in attempts)
        latencies = sorted(float(a["latency_ms"]) for a in attempts if a["latency_ms"] is not None)
        return {
            "attempts": len(attempts),
            "outcomes": dict(outcomes),
            "success_rate": outcomes["delivered"] / len(attempts) if attempts else None,
            "latency_ms": {f"p{q}": _percentile(latencies, q / 100) for q in (50, 90, 99)},
            "pending": int(backlog["pending"]) if backlog else 0,
            "truncated": len(attempts) >= limit,
        }

    async def disable_failing_endpoints(self, failing_for: float) -> list[Row]:
        """Disable every endpoint that has been failing for longer than ``failing_for``
        seconds; return them. Their pending deliveries stay, in order."""
        now = time.time()
        reason = (
            f"failing for more than {_duration(failing_for)}; hookline probes it "
            "and enables it again once it answers"
        )
        async with self.db.transaction() as tx:
            disabled = await tx.fetch(
                "disable_failing_endpoints", before=now - failing_for, now=now, reason=reason
            )
            await self._announce(
                tx, [operational.disabled_for_failing(row, reason, now) for row in disabled], now
            )
        return disabled

    async def endpoints_to_probe(self, limit: int = 100) -> list[Row]:
        """Take the next ``limit`` endpoints the health check disabled for a probe, each
        with the keys that sign it: those probed longest ago first. Taking them moves
        them to the back, so however many keep failing, every one gets its turn."""
        now = time.time()
        async with self.db.transaction() as tx:
            rows = await tx.fetch("endpoints_to_probe", limit=limit)
            if rows:
                await tx.execute("mark_probed", ids=_json([r["id"] for r in rows]), now=now)
        for row in rows:
            row["keys"] = signing_keys(self._opened(row), now)
            row["event_types"] = orjson.loads(row["event_types"])
            # In full: a probe goes out with the endpoint's headers, as deliveries do.
            row["headers"] = tuple(self._open_headers(row["headers"]).items())
            row["client_key"] = self.keys.open_optional(row["client_key"])
        return rows

    async def enable_probed_endpoint(self, endpoint_id: str) -> bool:
        """Enable an endpoint that answered its probe; its backlog goes out at once."""
        now = time.time()
        async with self.db.transaction() as tx:
            await tx.execute("lock_lanes_of_endpoint", id=endpoint_id)
            before = await tx.fetchrow("get_endpoint", id=endpoint_id)
            enabled = await tx.fetchrow("enable_probed_endpoint", id=endpoint_id, now=now)
            if enabled is not None:
                await tx.execute("wake_endpoint_lanes", endpoint_id=endpoint_id, now=now)
                if before is not None and before["failing_since"] is not None:
                    await self._announce(tx, [operational.enabled(before, now)], now)
        return enabled is not None

    # -- reading deliveries -------------------------------------------------------------

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
    ) -> list[Row]:
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
        if with_attempts and rows:
            await self._attach_attempts(rows)
        return rows

    async def get_delivery(self, delivery_id: int) -> Row:
        row = await self.db.fetchrow("get_delivery", id=delivery_id)
        if row is None:
            raise NotFound(f"no delivery with id {delivery_id}")
        await self._attach_attempts([row])
        return row

    async def _attach_attempts(self, rows: list[Row]) -> None:
        """Each delivery's ``attempt_log``: its first and last few attempts, oldest first,
        with ``attempts_omitted`` (how many between them are not kept) and
        ``omitted_after`` (how many of the log come before them)."""
        head, tail = self.limits.attempt_log_head, self.limits.attempt_log_tail
        attempts: dict[int, list[Row]] = defaultdict(list)
        found = await self.db.fetch(
            "attempts_of", ids=_json([r["id"] for r in rows]), head=head, tail=tail
        )
        for attempt in found:
            attempt.pop("from_first", None)
            attempt.pop("from_last", None)
            attempts[attempt["delivery_id"]].append(attempt)
        for row in rows:
            log = attempts.get(row["id"], [])
            row["attempt_log"] = log
            row["attempts_omitted"] = max(0, int(row["attempts"]) - len(log))
            row["omitted_after"] = min(head, len(log))

    async def delivery_counts(self) -> dict[str, int]:
        return {r["status"]: int(r["n"]) for r in await self.db.fetch("count_deliveries_by_status")}

    # -- operator surface: metrics, dashboard, CLI ---------------------------------------

    async def metrics_snapshot(self) -> Row:
        """Queue depth, when the oldest due delivery came due, endpoints by state.

        Cheap enough for every Prometheus scrape: no query here scans all deliveries.
        """
        row = await self.db.fetchrow("metrics_snapshot", now=time.time())
        assert row is not None
        return row

    async def send_test(
        self, endpoint_id: str, event_type: str, data: str, *, user_id: str = TEST_USER
    ) -> Row:
        """Publish a sample event to one endpoint only, through the normal pipeline.

        The event is stored like any other and gets one delivery, for this endpoint,
        whatever its subscription or the user's installations: a developer checks
        their receiver without touching any real store's webhooks.
        """
        rules.check_event_type(event_type)
        rules.USER_ID.check(user_id)
        endpoint = await self.get_endpoint(endpoint_id)
        if not endpoint["enabled"]:
            raise ValidationError("the endpoint is disabled; enable it to send a test")
        now = time.time()
        event_id = new_id("evt_test")
        async with self.db.transaction() as tx:
            (event,) = await tx.fetch(
                "insert_events",
                rows=_json(
                    [{"id": event_id, "event_type": event_type, "user_id": user_id, "data": data}]
                ),
                now=now,
            )
            token = new_token()
            lane = user_id if endpoint["ordered"] else "d:" + token
            delivery = {
                "event_seq": event["seq"],
                "endpoint_id": endpoint_id,
                "app_id": endpoint["app_id"],
                "user_id": user_id,
                "event_type": event_type,
                "lane": lane,
                "token": token,
            }
            await tx.execute("insert_deliveries", rows=_json([delivery]), now=now)
            await tx.execute(
                "grow_lanes",
                rows=_json([{"endpoint_id": endpoint_id, "lane": lane, "count": 1}]),
                now=now,
            )
        return {**event, "endpoint_id": endpoint_id}

    async def retry_deliveries(self, delivery_ids: Sequence[int]) -> int:
        """Send finished deliveries (failed, or delivered: a replay) once more, now.

        The token and event_id stay the delivery's own, so a receiver that already has
        it treats it as a duplicate. Pending ones are left alone. Returns how many moved.
        """
        if not delivery_ids:
            return 0
        now = time.time()
        async with self.db.transaction() as tx:
            moved = await tx.fetch(
                "retry_deliveries", ids=_json([int(i) for i in delivery_ids]), now=now
            )
            await _grow_lanes(tx, _lanes_of(moved), now)
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
    ) -> list[Row]:
        """``{bucket, status, n}`` rows: deliveries created per ``bucket`` seconds since
        ``since``, by their status now, from at most the newest ``limit`` deliveries."""
        return await self.db.fetch(
            "delivery_timeline",
            app_id=app_id,
            endpoint_id=endpoint_id,
            since=since,
            bucket=bucket,
            limit=limit,
        )


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

#: Endpoint columns ``update_endpoint`` may change.
ENDPOINT_SETTINGS = (
    "url",
    "event_types",
    "timeout",
    "ordered",
    "max_in_flight",
    "enabled",
    "headers",
    "client_cert",
    "client_key",
    "rate_limit",
    "rate_limit_burst",
)
#: Of those, the ones that hold secrets (or go with one).
SEALED = ("headers", "client_cert", "client_key")


def _merge_headers(current: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    """``current`` with ``changes`` made: a value sets a header, None removes it; a name
    replaces any other spelling of itself (HTTP header names ignore case)."""
    rules.check_headers({name: "-" for name in changes})  # names: shape, repeats, reserved
    merged = dict(current)
    for name, value in changes.items():
        for old in [k for k in merged if k.lower() == name.lower()]:
            del merged[old]
        if value is not None:
            merged[name] = value
    return merged


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


def _lanes_of(rows: list[Row]) -> Counter[tuple[str, str]]:
    """How many of ``rows`` (deliveries) fall in each (endpoint_id, lane)."""
    return Counter((row["endpoint_id"], row["lane"]) for row in rows)


async def _grow_lanes(tx: Connection, lanes: Counter[tuple[str, str]], now: float) -> None:
    """Add pending deliveries to their lanes (creating them), in one statement.

    Lanes are taken in sorted order so that concurrent transactions lock lane rows in
    the same order and never deadlock.
    """
    if lanes:
        await tx.execute(
            "grow_lanes",
            rows=_json(
                [
                    {"endpoint_id": ep, "lane": lane, "count": n}
                    for (ep, lane), n in sorted(lanes.items())
                ]
            ),
            now=now,
        )


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:g} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"
