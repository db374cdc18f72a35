"""Operational webhooks: the events hookline publishes itself about an app's endpoints.

An app with an ``operator_url`` has one *operational endpoint* (``endpoints.operational``)
subscribed to ``OPERATIONAL_EVENT_TYPES``. When hookline disables or enables one of the
app's endpoints, when one recovers, or when a delivery fails for good, the store writes
a notice in the same transaction as that change (``publishing.announce``): an event and one
delivery to the operational endpoint, sent by the same engine as every other delivery
(signed with the app's key, retried, logged, held to the address policy).

- ``user_id`` is the id of the endpoint the event is about: there is no store behind
  it, and a receiver then runs the events about one endpoint one at a time, in order.
- ``event_id`` is derived from what happened (``notice_id``), so writing the same change
  twice (a record transaction retried after a lost commit, two engines seeing the same
  recovery) still makes one event.
- Nothing is announced about the operational endpoint itself: its own failures would
  otherwise be sent to it, and fail, without end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from hookline.events import format_timestamp
from hookline.store.records import AttemptResult

DISABLED = "endpoint.disabled"
ENABLED = "endpoint.enabled"
RECOVERING = "endpoint.recovering"
DELIVERY_FAILED = "delivery.failed"


@dataclass(frozen=True, slots=True)
class Notice:
    """One operational event to write: about ``endpoint_id`` of ``app_id``."""

    app_id: str
    endpoint_id: str
    event_type: str
    event_id: str
    data: dict[str, Any]


def notice_id(event_type: str, endpoint_id: str, *what: object) -> str:
    """The event id of a change: the same change always gets the same id."""
    key = "|".join([event_type, endpoint_id, *(repr(part) for part in what)])
    return "evt_op_" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _time(moment: float | None) -> str | None:
    return None if moment is None else format_timestamp(float(moment))


def _endpoint(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "app_id": row["app_id"], "url": row["url"]}


def disabled_for_failing(row: dict[str, Any], reason: str, now: float) -> Notice:
    """The health check disabled ``row`` (failing since ``failing_since``)."""
    return Notice(
        row["app_id"],
        row["id"],
        DISABLED,
        notice_id(DISABLED, row["id"], "failing", float(row["failing_since"])),
        {
            **_endpoint(row),
            "reason": "failing",
            "message": reason,
            "failing_since": _time(row["failing_since"]),
            "disabled_at": _time(now),
        },
    )


def disabled_for_gone(row: dict[str, Any], result: AttemptResult, now: float) -> Notice:
    """``row`` answered 410 Gone to ``result``'s delivery and is disabled."""
    job = result.job
    return Notice(
        row["app_id"],
        row["id"],
        DISABLED,
        notice_id(DISABLED, row["id"], "gone", job.delivery_id, job.attempts),
        {
            **_endpoint(row),
            "reason": "gone",
            "message": "the endpoint answered 410 Gone",
            "failing_since": None,
            "disabled_at": _time(now),
        },
    )


def enabled(row: dict[str, Any], now: float) -> Notice:
    """``row``, disabled for failing since ``failing_since``, answered its probe."""
    return Notice(
        row["app_id"],
        row["id"],
        ENABLED,
        notice_id(ENABLED, row["id"], float(row["failing_since"])),
        {
            **_endpoint(row),
            "failing_since": _time(row["failing_since"]),
            "enabled_at": _time(now),
        },
    )


def recovering(row: dict[str, Any], answered_at: float) -> Notice:
    """``row``, failing since ``failing_since``, answered a delivery with a 2xx."""
    return Notice(
        row["app_id"],
        row["id"],
        RECOVERING,
        notice_id(RECOVERING, row["id"], float(row["failing_since"])),
        {
            **_endpoint(row),
            "failing_since": _time(row["failing_since"]),
            "answered_at": _time(answered_at),
        },
    )


def delivery_failed(result: AttemptResult) -> Notice:
    """``result`` ended its delivery as failed (its retries used up, or a 410)."""
    job = result.job
    return Notice(
        job.app_id,
        job.endpoint_id,
        DELIVERY_FAILED,
        notice_id(DELIVERY_FAILED, job.endpoint_id, job.delivery_id, job.attempts),
        {
            "id": job.delivery_id,
            "app_id": job.app_id,
            "endpoint_id": job.endpoint_id,
            "url": job.url,
            "event_id": job.event_id,
            "event_type": job.event_type,
            "user_id": job.user_id,
            "attempts": job.attempts + 1,
            "status_code": result.status_code,
            "error": result.error,
            "failed_at": _time(result.attempted_at),
        },
    )
