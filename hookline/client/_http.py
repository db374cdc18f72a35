"""What the sync and async clients share: a call, errors from answers, the retry rule.

Neither client decides anything on its own: ``Call`` says what to send and whether it
may be sent twice, ``error_for`` turns an error answer into the exception of
``hookline.exceptions`` it stands for, and ``Retries`` says whether and how long to wait
before sending again. The clients only move bytes and sleep.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from hookline import exceptions as exc

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request of the API and how to read its answer.

    ``idempotent``: sending it twice does what sending it once does, so it is sent
    again after a dropped connection, a timeout or a 503 (a request that surely never
    left, such as a refused connection, is sent again whatever it is).
    """

    method: str
    path: str
    parse: Callable[[bytes], T]
    idempotent: bool
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def done_already(self, attempt: int, status: int) -> bool:
        """A DELETE sent again that finds nothing: the first one went through."""
        return attempt > 0 and status == 404 and self.method == "DELETE"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its items and the cursor of the next page (None: the last)."""

    data: list[T]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)


@dataclass(frozen=True, slots=True)
class Retries:
    """How often and how patiently an idempotent call is sent again.

    ``attempts`` counts every try, the first included (1: never retry). Before retry
    ``n`` (from 0) the client waits a random time up to ``backoff * 2**n`` seconds,
    capped at ``max_backoff`` ("full jitter", so many clients that failed together do
    not come back together), and at least the server's ``Retry-After``, capped too.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < 0:
            raise exc.ConfigError("Retries: attempts >= 1, backoff and max_backoff >= 0")

    def allows(self, call: Call[Any], failure: exc.Unavailable, attempt: int) -> bool:
        return attempt + 1 < self.attempts and (call.idempotent or not failure.sent)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        wait = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
        if retry_after:
            wait = max(wait, min(retry_after, self.max_backoff))
        return wait


#: The exception an error answer stands for, by status; the ``code`` of the body then
#: picks the subclass with that code, if one has it (409 ``event_conflict``).
BY_STATUS: dict[int, type[exc.HooklineError]] = {
    400: exc.ValidationError,
    401: exc.Unauthorized,
    403: exc.Forbidden,
    404: exc.NotFound,
    409: exc.Conflict,
    413: exc.ValidationError,
    415: exc.ValidationError,
    422: exc.ValidationError,
    429: exc.RateLimited,
    502: exc.Unavailable,
    503: exc.Unavailable,
    504: exc.Unavailable,
}


def _with_code(base: type[exc.HooklineError], code: str) -> type[exc.HooklineError]:
    """``base`` or the one of its subclasses whose ``code`` is ``code``."""
    found = [base]
    for cls in found:
        if cls.code == code:
            return cls
        found.extend(cls.__subclasses__())
    return base


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:  # an HTTP date: hookline never sends one
        return None


def error_for(status: int, retry_after: str | None, body: bytes) -> exc.HooklineError:
    """The exception for an error answer: ``{"error": {"code", "message"}}`` from hookline,
    or anything else (a proxy's 502 page) with the status alone."""
    code, message = None, f"HTTP {status}: {body[:200].decode(errors='replace')}"
    try:
        error = orjson.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    base = BY_STATUS.get(status, exc.HooklineError)
    cls = _with_code(base, code) if code else base
    wait = _seconds(retry_after)
    failure: exc.HooklineError
    if issubclass(cls, exc.RateLimited):
        failure = cls(message, retry_after=wait or 1.0)
    elif issubclass(cls, exc.Unavailable):
        failure = cls(message, retry_after=wait)
    else:
        failure = cls(message)
    failure.status = status
    failure.code = code or cls.code
    return failure


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None  # the header, as sent
    body: bytes


def result(call: Call[T], attempt: int, answer: Answer) -> T:
    """The call's result from an answer, or the error it stands for, raised."""
    if 200 <= answer.status < 300 or call.done_already(attempt, answer.status):
        return call.parse(answer.body)
    raise error_for(answer.status, answer.retry_after, answer.body)


def transport_error(error: Exception, call: Call[Any], timeout: float) -> exc.Unavailable:
    """A failure below HTTP (pyreqwest's), as ``Unavailable`` or ``Timeout``; ``sent`` is
    False when the request surely never reached the server."""
    from pyreqwest import exceptions as px

    where = f"{call.method} {call.path}"
    sent = not _never_sent(error)
    if isinstance(error, px.RequestTimeoutError):
        return exc.Timeout(f"{where}: no answer within {timeout:g} s", sent=sent)
    return exc.Unavailable(f"{where}: {_cause(error)}", sent=sent)


def _never_sent(error: Exception) -> bool:
    """No connection was made, so not a byte of the request left.

    pyreqwest's classes do not tell: it raises ``ConnectError`` also for a connection
    that closed after the request was written ("connection closed before message
    completed"), and ``ConnectTimeoutError`` also when the answer is late. A connection
    that could not be made has hyper's ``client error (Connect)`` among its causes; a
    wait for a free connection of the pool (pyreqwest's own) sent nothing either.
    """
    from pyreqwest import exceptions as px

    return isinstance(error, px.PoolTimeoutError) or "client error (Connect)" in _causes(error)


def _causes(error: Exception) -> list[str]:
    """The chain of causes pyreqwest gives, outermost first."""
    details = getattr(error, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    return [str(c.get("message")) for c in causes or () if isinstance(c, dict)]


def _cause(error: Exception) -> str:
    """The innermost cause ("Connection refused (os error 111)"), else the error."""
    causes = _causes(error)
    return causes[-1] if causes else str(error)
