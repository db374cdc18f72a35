"""One delivery attempt: build the signed request, send it, judge the answer."""

from __future__ import annotations

import logging
import re
import time
from email.utils import parsedate_to_datetime

from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.config import THROTTLE_STATUSES, RetryPolicy
from hookline.events import encode_envelope, format_timestamp
from hookline.sender.transport import Transport
from hookline.sender.transport.base import describe
from hookline.signing import sign_headers
from hookline.store.records import AttemptResult, Job

log = logging.getLogger("hookline.engine")

#: RFC 9110 delta-seconds: ASCII digits only (``str.isdigit`` also takes "²").
_DELTA_SECONDS = re.compile(r"[0-9]+", re.ASCII)


def build_request(job: Job, now: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an attempt made at ``now``.

    ``token`` and ``event_id`` are the delivery's own and never change; ``timestamp`` and
    the signatures belong to this attempt. The endpoint's own headers come first, so
    nothing of hookline's can be replaced by them (registration refuses those names too).
    The event's trace context goes on as ``traceparent`` (W3C), where it has one.
    """
    timestamp = format_timestamp(now)
    body = encode_envelope(
        webhook_id=job.endpoint_id,
        event_type=job.event_type,
        timestamp=timestamp,
        token=job.token,
        event_id=job.event_id,
        user_id=job.user_id,
        data_json=job.data.encode(),
    )
    headers = dict(job.headers)
    headers |= sign_headers(
        job.keys,
        timestamp=timestamp,
        token=job.token,
        msg_id=job.event_id,
        unix_ts=int(now),
        body=body,
    )
    headers["Content-Type"] = "application/json"
    if job.traceparent is not None:
        headers["traceparent"] = job.traceparent
    return body, headers


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (RFC 9110: delta-seconds or an
    HTTP date); None for anything else, which is then simply not honoured."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


async def attempt(
    transport: Transport, job: Job, retry: RetryPolicy, clock: Clock = SYSTEM_CLOCK
) -> AttemptResult:
    """Make one attempt and judge it; never raises (but for cancellation).

    Whatever goes wrong, even a bug of ours, becomes a failed attempt with a message: it
    is recorded, retried on the schedule and counts toward the attempt cap and the
    endpoint's health. An exception escaping here would record nothing, and the delivery
    would go out again at every lease, forever.
    """
    now = clock.now()
    started = time.perf_counter()  # the real time the request took, whatever the clock
    try:
        body, headers = build_request(job, now)
        reply = await transport.post(job, body, headers)
        retry_after = parse_retry_after(reply.retry_after, now)
        status, excerpt, error = reply.status, reply.excerpt, reply.error
    except Exception as exc:
        log.exception("delivery %d: the attempt failed unexpectedly", job.delivery_id)
        status, excerpt, retry_after = None, None, None
        error = f"hookline could not complete the attempt: {describe(exc)}"
    latency_ms = (time.perf_counter() - started) * 1000
    return judge(job, retry, now, status, latency_ms, excerpt, error, retry_after)


def judge(
    job: Job,
    retry: RetryPolicy,
    now: float,
    status: int | None,
    latency_ms: float,
    excerpt: str | None,
    error: str | None,
    retry_after: float | None,
) -> AttemptResult:
    """2xx delivers; 410 gives up and disables; 429 and 503 slow the endpoint down;
    anything else retries, soon or on the schedule (the store decides which)."""
    outcome, retry_at, quick_at, since, throttle = "failed", None, None, None, None
    if status is not None and 200 <= status < 300:
        outcome = "delivered"
    elif status == 410:
        outcome = "gone"
    elif status in THROTTLE_STATUSES:
        # Not this delivery's failure: the endpoint asks for less. The store paces it,
        # and the delivery goes out again once the endpoint is due, attempts unchanged.
        throttle = min(retry_after or 0.0, retry.max_retry_after)
        outcome, retry_at, error = "retry", now + throttle, error or f"answered {status}"
    else:
        if status is not None and 300 <= status < 400:
            error = f"redirects are not followed (answered {status})"
        elif status is not None and error is None:
            error = f"answered {status}"
        made = job.attempts + 1
        delay = retry.next_delay(made, retry_after)
        if delay is not None:
            outcome, retry_at = "retry", now + delay
            quick_at = now + min(delay, retry.quick_delay(made, retry_after))
            since = now - retry.answered_window
            if job.last_attempt_at is not None:
                since = max(since, job.last_attempt_at)
    return AttemptResult(
        job=job,
        outcome=outcome,
        attempted_at=now,
        status_code=status,
        latency_ms=round(latency_ms, 3),
        response_excerpt=excerpt,
        error=error,
        retry_at=retry_at,
        quick_retry_at=quick_at,
        answered_since=since,
        throttle_for=throttle,
    )


__all__ = ["attempt", "build_request", "judge", "parse_retry_after"]
