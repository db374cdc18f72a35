"""What every inbox backend offers, and the pieces they share.

The inbox is the receiver's durable memory: every webhook acknowledged, every token and
``event_id`` seen (so duplicates are recognised), the per-user lanes that keep handlers of
one user one at a time, the dead letters and the ``once`` keys. Only the backends know
query names; the workers, the HTTP layer and the CLI call the methods below.
"""

from __future__ import annotations

import abc
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hookline.config import redact_url
from hookline.events import Envelope
from hookline.exceptions import ConfigError
from hookline.receiver.stages import Marks, clock
from hookline.sql import named


def load_queries(dialect: str) -> dict[str, str]:
    """The inbox's named queries of ``dialect`` (``receiver/sql/<dialect>.sql``)."""
    return named.load_queries("hookline.receiver", f"sql/{dialect}.sql")


def no_inbox(url: str) -> ConfigError:
    """The error of a command that reads an inbox (``create=False``) at ``url`` when the
    database there has no inbox tables: it refuses to make them in the wrong database."""
    return ConfigError(
        f"{redact_url(url)} holds no hookline inbox; correct the URL, "
        "or start `hookline receive` to create it"
    )


class Outcome(enum.Enum):
    """What the inbox did with one incoming webhook."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A verified webhook on its way into the inbox."""

    token: str
    event_id: str | None
    content_hash: str
    user_id: str
    event_type: str
    ts: str
    body: bytes
    #: The request's stage times, when they are recorded: the inbox notes when the
    #: webhook's commit starts and ends.
    marks: Marks | None = field(default=None, compare=False, repr=False)
    #: The request's valid W3C ``traceparent`` (hookline.traceparent), if any.
    traceparent: str | None = None

    @classmethod
    def from_envelope(
        cls,
        envelope: Envelope,
        body: bytes,
        marks: Marks | None = None,
        traceparent: str | None = None,
    ) -> Incoming:
        incoming = cls(
            token=envelope.token,
            event_id=envelope.event_id,
            content_hash=content_hash(envelope),
            user_id=lane_of(envelope),
            event_type=envelope.event_type,
            ts=envelope.timestamp,
            body=body,
            marks=marks,
            traceparent=traceparent,
        )
        if marks is not None:
            marks.queued = clock()
        return incoming

    def params(self, now: float) -> dict[str, Any]:
        return {
            "token": self.token,
            "event_id": self.event_id,
            "content_hash": self.content_hash,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "ts": self.ts,
            "body": self.body,
            "now": now,
            "traceparent": self.traceparent,
        }


def note_started(marks: Sequence[Marks | None]) -> None:
    """A group with these webhooks' marks starts committing (the first try, if split)."""
    now = clock()
    for m in marks:
        if m is not None and not m.started:
            m.started = now


def note_committed(marks: Sequence[Marks | None]) -> None:
    now = clock()
    for m in marks:
        if m is not None:
            m.committed = now


def lane_of(envelope: Envelope) -> str:
    """The user whose handlers run one at a time.

    A webhook without hookline's ``user_id`` (one from Selz itself) has no known user, so
    all of them share one lane: slower, never wrong.
    """
    return envelope.user_id or ""


def content_hash(envelope: Envelope) -> str:
    """Fingerprint of everything the sender means, leaving out the attempt's timestamp.

    A retry keeps ``token`` and ``event_id`` but carries a new ``timestamp`` (and so a new,
    valid ``X-Selz-Signature``): it must count as the same webhook. An attacker who
    captured a request can only reuse its ``timestamp``/``token``/signature and change
    ``data``, which changes this hash: that is the replay the receiver refuses.
    """
    doc = {
        "webhook_id": envelope.webhook_id,
        "event_type": envelope.event_type,
        "token": envelope.token,
        "event_id": envelope.event_id,
        "user_id": envelope.user_id,
        "data": envelope.data,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def classify(incoming: Incoming, existing: dict[str, Any] | None) -> Outcome:
    """Decide what a request that stored nothing was, from the row it collided with."""
    if existing is None:
        # The conflicting row vanished between insert and look-up (purged): treat as seen.
        return Outcome.DUPLICATE
    if existing["token"] == incoming.token and existing["content_hash"] != incoming.content_hash:
        return Outcome.REPLAYED
    return Outcome.DUPLICATE


@dataclass(frozen=True, slots=True)
class Stored:
    """A pending webhook at the head of its lane."""

    id: int
    body: bytes
    attempts: int
    next_attempt_at: float
    #: The trace context it came with: its handlers' span is a child of it.
    traceparent: str | None = None


class Result(enum.Enum):
    """How one run of a webhook's handlers ended."""

    DONE = "done"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Finish:
    """The worker's verdict on one run, written by ``Inbox.finish``."""

    webhook_id: int
    result: Result
    now: float
    #: The webhook's runs recorded before this one: the write applies only if that is
    #: still so, which makes writing the same verdict twice harmless.
    attempts: int
    next_attempt_at: float | None = None
    error: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "id": self.webhook_id,
            "now": self.now,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "error": self.error,
        }


def head_from_row(row: Any) -> Stored | None:
    if row is None:
        return None
    return Stored(
        id=int(row["id"]),
        body=bytes(row["body"]),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        traceparent=row["traceparent"],
    )


class Inbox(abc.ABC):
    """The storage interface; one implementation per database."""

    url: str

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def accept(self, incoming: Incoming, now: float) -> Outcome:
        """Store ``incoming`` durably (committed on return) unless it was seen before."""

    @abc.abstractmethod
    async def claim_lanes(
        self, owner: str, limit: int, now: float, lease: float, running: Sequence[str] = ()
    ) -> list[str]:
        """Lease up to ``limit`` users with due work to ``owner``, none of ``running``."""

    @abc.abstractmethod
    async def lane_head(self, user_id: str) -> Stored | None: ...

    @abc.abstractmethod
    async def finish(self, owner: str, user_id: str, finish: Finish) -> Stored | None:
        """Record a run's result and return the lane's next head; ``LeaseLost`` if not ours."""

    @abc.abstractmethod
    async def release_lane(self, owner: str, user_id: str) -> None:
        """Give the lane back, noting when its head is next due; with nothing pending,
        delete it (a webhook stored later makes it again)."""

    @abc.abstractmethod
    async def renew_leases(
        self, owner: str, user_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        """Extend ``owner``'s leases of ``user_ids``; return those it still held."""

    @abc.abstractmethod
    async def release_all(self, owner: str) -> None: ...

    @abc.abstractmethod
    async def claim_once(self, key: str, webhook_id: int, now: float) -> bool: ...

    @abc.abstractmethod
    async def forget_once(self, key: str) -> None: ...

    @abc.abstractmethod
    async def list_webhooks(self, status: str, limit: int) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def get_webhook(self, webhook_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def replay_dead(self, webhook_id: int | None, now: float) -> list[int]:
        """Make dead letters pending again (one, or all with ``None``); return their ids."""

    @abc.abstractmethod
    async def purge_finished(self, before: float) -> int: ...

    @abc.abstractmethod
    async def prune_lanes(self) -> int:
        """Delete lanes nobody holds that have nothing pending; return how many."""
