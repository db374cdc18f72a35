"""One delivery attempt: build the signed request, send it, judge the answer."""

from __future__ import annotations

import errno
import logging
import re
import ssl
import time
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp.abc import AbstractResolver

from hookline import __version__
from hookline.config import THROTTLE_STATUSES, RetryPolicy
from hookline.events import encode_envelope, format_timestamp
from hookline.sender.addresses import ForbiddenTarget, guarded_socket
from hookline.sender.tls import ClientTls, client_certificate_error
from hookline.signing import sign_headers
from hookline.store.records import AttemptResult, Job

EXCERPT_BYTES = 1024
USER_AGENT = f"hookline/{__version__}"

log = logging.getLogger("hookline.engine")

#: RFC 9110 delta-seconds: ASCII digits only (``str.isdigit`` also takes "²").
_DELTA_SECONDS = re.compile(r"[0-9]+", re.ASCII)


def new_session(
    *,
    allow_private: bool,
    resolver: AbstractResolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> aiohttp.ClientSession:
    """The one HTTP client of an engine (deliveries, test notifications and health
    probes alike): keep-alive connections, every new one checked by the address policy
    on the address it is about to connect to.

    The engine bounds concurrency itself (globally and per endpoint), so the
    connector's own limits are off. ``resolver`` replaces DNS in tests. ``ssl_context``
    is the default TLS of requests (the CAs trusted: ``ClientTls.default``).
    """
    connector = aiohttp.TCPConnector(
        limit=0,
        ttl_dns_cache=60,
        resolver=resolver,
        keepalive_timeout=30,
        socket_factory=None if allow_private else guarded_socket,
        ssl=ssl_context if ssl_context is not None else True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
    )


def build_request(job: Job, now: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an attempt made at ``now``.

    ``token`` and ``event_id`` are the delivery's own and never change; ``timestamp`` and
    the signatures belong to this attempt. The endpoint's own headers come first, so
    nothing of hookline's can be replaced by them (registration refuses those names too).
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


def connection_error(exc: aiohttp.ClientConnectorError) -> str:
    """What went wrong, without aiohttp's ``Cannot connect to host ... ssl:default``."""
    target = f"{exc.host}:{exc.port}"
    os_error = exc.os_error
    reason = os_error.strerror or str(os_error)
    if isinstance(os_error, ForbiddenTarget):
        # Named when the URL held a name: which name led to the refused address.
        return reason if os_error.address == exc.host else f"{exc.host}: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {target} is not valid: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS with {target} failed: {reason}"
    if os_error.errno == errno.ECONNREFUSED:
        return f"connection refused by {target}"
    return f"cannot connect to {target}: {reason}"


async def attempt(
    session: aiohttp.ClientSession, job: Job, retry: RetryPolicy, tls: ClientTls | None = None
) -> AttemptResult:
    """Make one attempt and judge it; never raises (but for cancellation).

    Whatever goes wrong, even a bug of ours, becomes a failed attempt with a message: it
    is recorded, retried on the schedule and counts toward the attempt cap and the
    endpoint's health. An exception escaping here would record nothing, and the delivery
    would go out again at every lease, forever.
    """
    now = time.time()
    started = time.perf_counter()
    status: int | None = None
    excerpt: str | None = None
    error: str | None = None
    retry_after: float | None = None
    try:
        body, headers = build_request(job, now)
        async with session.post(
            job.url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=job.timeout),
            ssl=tls.context(job) if tls is not None else True,
        ) as response:
            status = response.status
            excerpt = (await response.content.read(EXCERPT_BYTES)).decode("utf-8", "replace")
            # PostgreSQL text cannot hold NUL; an answer with one must still be recorded.
            excerpt = excerpt.replace("\x00", "\ufffd")
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    except TimeoutError:
        error = f"no answer within the endpoint's timeout of {job.timeout:g} s"
    except aiohttp.ClientConnectorError as exc:
        error = client_certificate_error(exc, job) or connection_error(exc)
    except (aiohttp.ClientError, OSError) as exc:
        error = _describe(exc)
    except Exception as exc:
        log.exception("delivery %d: the attempt failed unexpectedly", job.delivery_id)
        status, error = None, f"hookline could not complete the attempt: {_describe(exc)}"
    latency_ms = (time.perf_counter() - started) * 1000
    return judge(job, retry, now, status, latency_ms, excerpt, error, retry_after)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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


__all__ = [
    "attempt",
    "build_request",
    "connection_error",
    "judge",
    "new_session",
    "parse_retry_after",
]
