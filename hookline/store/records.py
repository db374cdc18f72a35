"""The values that cross the store's boundary: what it is given and what it answers.

Rows become records here, once: JSON columns decoded, 0/1 flags made booleans, sealed
secrets opened (and kept out of ``repr``, so a log line or a traceback never shows one).
The layers above read attributes and never decode a column. Frozen dataclasses with
slots: no record is built on the engine's claim-and-record path (that path has ``Job``),
so they need no faster kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from hookline.store.connector import Row


@dataclass(frozen=True, slots=True)
class App:
    """An app, with its verification keys opened: they are the app's to see."""

    id: str
    name: str
    created_at: float
    #: Where hookline's operational webhooks about its endpoints go (None: nowhere).
    operator_url: str | None
    verification_key: str = field(repr=False)
    #: During a rotation: the key that signs from ``key_switch_at`` on.
    next_verification_key: str | None = field(repr=False)
    key_switch_at: float | None
    #: What a dashboard session is bound to: a new API key ends its sessions.
    api_key_hash: str = field(repr=False)

    @classmethod
    def from_row(cls, row: Row, verification_key: str, next_key: str | None) -> App:
        return cls(
            id=row["id"],
            name=row["name"],
            created_at=float(row["created_at"]),
            operator_url=row["operator_url"],
            verification_key=verification_key,
            next_verification_key=next_key,
            key_switch_at=_float_or_none(row["key_switch_at"]),
            api_key_hash=row["api_key_hash"],
        )


@dataclass(frozen=True, slots=True)
class Installation:
    """``user_id`` installed the app ``app_id``: its events fan out to the app."""

    app_id: str
    user_id: str
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> Installation:
        return cls(row["app_id"], row["user_id"], float(row["created_at"]))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as people see it (API, dashboard, CLI): the values of its headers
    masked and no client key (only the engine's jobs carry them in full); its own
    verification keys opened, as they are the app's to see."""

    id: str
    app_id: str
    url: str
    #: The event types it is subscribed to, or ``("*",)``.
    event_types: tuple[str, ...]
    timeout: float
    ordered: bool
    max_in_flight: int | None
    enabled: bool
    disabled_reason: str | None
    #: Since when it fails (None: it does not), as the health check counts it.
    failing_since: float | None
    #: The app's operational endpoint (its operator_url): hookline's own events only.
    operational: bool
    #: Header name -> masked value.
    headers: dict[str, str]
    client_cert: str | None
    verification_key: str | None = field(repr=False)
    next_verification_key: str | None = field(repr=False)
    key_switch_at: float | None
    rate_limit: float | None
    rate_limit_burst: int
    #: Seconds between two requests while a "slow down" answer paces it (0: unpaced).
    pace: float
    #: Its pause, only while it lasts.
    paused_until: float | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(
        cls,
        row: Row,
        *,
        headers: dict[str, str],
        verification_key: str | None,
        next_key: str | None,
        now: float,
    ) -> Endpoint:
        paused = _float_or_none(row["pause_until"])
        return cls(
            id=row["id"],
            app_id=row["app_id"],
            url=row["url"],
            event_types=tuple(orjson.loads(row["event_types"])),
            timeout=float(row["timeout"]),
            ordered=bool(row["ordered"]),
            max_in_flight=row["max_in_flight"],
            enabled=bool(row["enabled"]),
            disabled_reason=row["disabled_reason"],
            failing_since=_float_or_none(row["failing_since"]),
            operational=bool(row["operational"]),
            headers=headers,
            client_cert=row["client_cert"],
            verification_key=verification_key,
            next_verification_key=next_key,
            key_switch_at=_float_or_none(row["key_switch_at"]),
            rate_limit=_float_or_none(row["rate_limit"]),
            rate_limit_burst=int(row["rate_limit_burst"]),
            pace=float(row["pace"]),
            paused_until=paused if paused is not None and paused > now else None,
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """An event as stored, its data decoded."""

    #: Its place in the order of publication.
    seq: int
    id: str
    event_type: str
    user_id: str
    data: dict[str, Any]
    created_at: float
    #: The W3C trace context its deliveries carry (None: none).
    traceparent: str | None

    @classmethod
    def from_row(cls, row: Row) -> Event:
        return cls(
            seq=int(row["seq"]),
            id=row["id"],
            event_type=row["event_type"],
            user_id=row["user_id"],
            data=orjson.loads(row["data"]),
            created_at=float(row["created_at"]),
            traceparent=row["traceparent"],
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at a delivery, as its log keeps it."""

    id: int
    delivery_id: int
    attempted_at: float
    #: ``delivered``, ``retry``, ``failed`` or ``gone`` (see ``OUTCOMES``).
    outcome: str
    status_code: int | None
    latency_ms: float | None
    #: The first bytes of the answer's body.
    response_excerpt: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: Row) -> Attempt:
        return cls(
            id=int(row["id"]),
            delivery_id=int(row["delivery_id"]),
            attempted_at=float(row["attempted_at"]),
            outcome=row["outcome"],
            status_code=row["status_code"],
            latency_ms=_float_or_none(row["latency_ms"]),
            response_excerpt=row["response_excerpt"],
            error=row["error"],
        )


@dataclass(frozen=True, slots=True)
class Tally:
    """How many deliveries created in one bucket of a timeline have ``status`` now (the
    dashboard's chart); ``bucket`` counts buckets from the timeline's start."""

    bucket: int
    status: str
    count: int

    @classmethod
    def from_row(cls, row: Row) -> Tally:
        return cls(bucket=int(row["bucket"]), status=str(row["status"]), count=int(row["n"]))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one endpoint, with its attempt log: its first and last
    few attempts, oldest first (empty when listed without them)."""

    id: int
    event_id: str
    app_id: str
    endpoint_id: str
    user_id: str
    event_type: str
    #: Sent as webhook-id: the same on every attempt, so receivers drop repeats.
    token: str
    #: ``pending``, ``delivered`` or ``failed``.
    status: str
    attempts: int
    next_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    updated_at: float
    #: The endpoint's URL (for one delivery read on its own; None in lists).
    url: str | None = None
    attempt_log: tuple[Attempt, ...] = ()
    #: How many attempts between the first and the last few are not kept...
    attempts_omitted: int = 0
    #: ... and how many of ``attempt_log`` come before them.
    omitted_after: int = 0

    @classmethod
    def from_row(
        cls, row: Row, attempt_log: tuple[Attempt, ...] | None = None, *, head: int = 0
    ) -> Delivery:
        """``attempt_log`` None: not read. ``head``: how many first attempts a log keeps,
        to place the ones omitted."""
        attempts = int(row["attempts"])
        log = attempt_log or ()
        return cls(
            id=int(row["id"]),
            event_id=row["event_id"],
            app_id=row["app_id"],
            endpoint_id=row["endpoint_id"],
            user_id=row["user_id"],
            event_type=row["event_type"],
            token=row["token"],
            status=row["status"],
            attempts=attempts,
            next_attempt_at=_float_or_none(row["next_attempt_at"]),
            last_status_code=row["last_status_code"],
            last_error=row["last_error"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            url=row.get("url"),
            attempt_log=log,
            attempts_omitted=0 if attempt_log is None else max(0, attempts - len(log)),
            omitted_after=min(head, len(log)),
        )


@dataclass(frozen=True, slots=True)
class Disabled:
    """An endpoint the health check has just disabled for failing since ``failing_since``."""

    id: str
    app_id: str
    url: str
    failing_since: float

    @classmethod
    def from_row(cls, row: Row) -> Disabled:
        return cls(row["id"], row["app_id"], row["url"], float(row["failing_since"]))


@dataclass(frozen=True, slots=True)
class Probe:
    """An endpoint disabled for failing, taken for a probe: all it takes to send it a
    signed sample event as its deliveries go out (its secrets out of ``repr``)."""

    id: str
    app_id: str
    url: str
    timeout: float
    event_types: tuple[str, ...]
    #: The keys that sign it now, the signing one first.
    keys: tuple[str, ...] = field(repr=False)
    #: Its own headers, in full.
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    client_cert: str | None
    client_key: str | None = field(repr=False)
    #: When the endpoint last changed (see ``Job.endpoint_version``).
    version: float


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as published: validated, with its data already serialised."""

    id: str
    event_type: str
    user_id: str
    data: str  # JSON text
    #: The W3C trace context to carry to its deliveries (checked: see hookline.traceparent).
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Published:
    id: str
    event_type: str
    user_id: str
    created_at: float
    duplicate: bool
    deliveries: int


class Claimed(list["Job"]):
    """The jobs one claim took. ``opens_at``: the earliest moment an endpoint held back by
    its rate limit or its pace may be given a delivery again (None: none is held back),
    so that an engine with room claims again then rather than at its next poll."""

    opens_at: float | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery: everything needed to send it without asking the store again."""

    delivery_id: int
    token: str
    attempts: int
    endpoint_id: str
    lane: str
    user_id: str
    app_id: str
    event_type: str
    event_id: str
    data: str
    url: str
    timeout: float
    keys: tuple[str, ...] = field(repr=False)
    #: When the delivery was last attempted (None before its first attempt).
    last_attempt_at: float | None = None
    #: The endpoint's own headers (custom, basic or bearer auth), in full.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    #: The endpoint's client certificate and its private key (PEM), for mutual TLS.
    client_cert: str | None = None
    client_key: str | None = field(default=None, repr=False)
    #: When the endpoint last changed: what its TLS context is cached under.
    endpoint_version: float = 0.0
    #: The event's W3C trace context, sent on as the ``traceparent`` header.
    traceparent: str | None = None
    #: How many deliveries of this lane went before this one under the same lease (see
    #: ``Store.record``): 0 for a claimed delivery.
    run: int = 0
    #: For a rate-limited endpoint: when to send it (its claim's moment plus a short
    #: fixed delay, see ``Store.claim``); None: at once.
    send_at: float | None = None

    @classmethod
    def from_row(
        cls,
        row: dict[str, Any],
        keys: tuple[str, ...],
        headers: dict[str, str] | None = None,
        client_key: str | None = None,
        run: int = 0,
    ) -> Job:
        return cls(
            delivery_id=int(row["id"]),
            token=row["token"],
            attempts=int(row["attempts"]),
            endpoint_id=row["endpoint_id"],
            lane=row["lane"],
            user_id=row["user_id"],
            app_id=row["app_id"],
            event_type=row["event_type"],
            event_id=row["event_id"],
            data=row["data"],
            url=row["url"],
            timeout=float(row["timeout"]),
            keys=keys,
            last_attempt_at=float(row["updated_at"]) if int(row["attempts"]) else None,
            headers=tuple((headers or {}).items()),
            client_cert=row.get("client_cert"),
            client_key=client_key,
            endpoint_version=float(row.get("endpoint_updated_at") or 0.0),
            traceparent=row.get("traceparent"),
            run=run,
        )


#: What one attempt came to. ``retry``: try again at ``retry_at``; ``failed``: given up;
#: ``gone``: the endpoint answered 410 and is disabled.
OUTCOMES = ("delivered", "retry", "failed", "gone")


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One attempt, judged. A retry has two times: ``retry_at`` on the schedule, for an
    endpoint failing as a whole, and ``quick_retry_at``, used instead when the endpoint
    answered another request with a 2xx at or after ``answered_since`` (the store knows,
    across every engine). A ``throttle_for`` (the answer said "slow down": seconds asked
    for, 0 without ``Retry-After``) paces the endpoint and is not counted as an attempt.
    """

    job: Job
    outcome: str
    attempted_at: float
    status_code: int | None = None
    latency_ms: float | None = None
    response_excerpt: str | None = None
    error: str | None = None
    retry_at: float | None = None
    quick_retry_at: float | None = None
    answered_since: float | None = None
    throttle_for: float | None = None

    @property
    def counted(self) -> bool:
        """Whether this attempt uses up one of the delivery's attempts."""
        return self.throttle_for is None
