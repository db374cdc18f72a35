"""From an HTTP request to an answer: verify, store durably, acknowledge.

Every integration (ASGI, Flask, Django) asks ``Intake.precheck`` about the headers before
it reads the body, then hands the raw body to ``Intake.receive``, and sends back the
``Receipt`` it gets, so the rules live in one place. The cheap checks come first: a body
over the limit, or a request whose signature headers cannot be genuine, is refused before
the body is read; the body signature is checked on the raw bytes before they are parsed.
So a request from someone without the key costs at most reading the body (up to the
limit) and one HMAC, never a JSON parse. A refusal is a 4xx with
``{"error": {"code", "message"}}`` and stores nothing; an acceptance is answered only after
the webhook's transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson

from hookline.clock import SYSTEM_CLOCK, Clock
from hookline.events import Envelope, parse_envelope
from hookline.exceptions import (
    BadSignature,
    MalformedWebhook,
    ReplayedToken,
    SignatureError,
    StaleTimestamp,
    StorageError,
)
from hookline.receiver import stages
from hookline.receiver.inbox import Inbox, Incoming, Outcome
from hookline.signing import Verifier
from hookline.traceparent import HEADER, parse

log = logging.getLogger("hookline.receiver")

_STATUS: dict[type[SignatureError], int] = {
    BadSignature: 401,
    StaleTimestamp: 401,
    ReplayedToken: 409,
    MalformedWebhook: 400,
}
_ACCEPTED = orjson.dumps({"status": "accepted"})
_DUPLICATE = orjson.dumps({"status": "duplicate"})


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to one webhook request."""

    status: int
    body: bytes
    #: "accepted", "duplicate", or the error code of a refusal.
    outcome: str

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Receipt:
        body = orjson.dumps({"error": {"code": code, "message": message}})
        return cls(status, body, code)


def too_large(limit: int) -> Receipt:
    return Receipt.error(413, "body_too_large", f"the body is larger than {limit} bytes")


class Intake:
    def __init__(
        self,
        verifier: Verifier,
        inbox: Callable[[], Awaitable[Inbox]],
        *,
        max_body_bytes: int,
        on_accept: Callable[[], None] = lambda: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._verifier = verifier
        self._clock = clock
        self._inbox = inbox
        self.max_body_bytes = max_body_bytes
        self._on_accept = on_accept

    def precheck(self, headers: Mapping[str, str]) -> Receipt | None:
        """The refusal decided by the headers alone (read the body only if None)."""
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            return too_large(self.max_body_bytes)
        try:
            self._verifier.check_headers(headers)
        except SignatureError as exc:
            return self._refuse(exc)
        return None

    async def receive(
        self, headers: Mapping[str, str], body: bytes, marks: stages.Marks | None = None
    ) -> Receipt:
        """``marks``, when given, collect the times of the stages (see ``stages``)."""
        if len(body) > self.max_body_bytes:
            return too_large(self.max_body_bytes)
        try:
            if marks is None:
                envelope = self._verifier.verify(headers, body)
            else:
                envelope = self._verifier.verify(headers, body, parse=_timed_parse(marks))
                marks.verified = stages.clock()
        except SignatureError as exc:
            return self._refuse(exc)
        incoming = Incoming.from_envelope(envelope, body, marks, _traceparent(headers))
        try:
            inbox = await self._inbox()
            outcome = await inbox.accept(incoming, self._clock.now())
        except StorageError as exc:
            log.error("could not store webhook %s: %s", envelope.token, exc)
            # 503: the sender keeps the webhook and tries again later.
            return Receipt.error(503, exc.code, "the inbox is unavailable; try again")
        if outcome is Outcome.ACCEPTED:
            self._on_accept()
            return Receipt(200, _ACCEPTED, "accepted")
        if outcome is Outcome.DUPLICATE:
            return Receipt(200, _DUPLICATE, "duplicate")
        return self._refuse(
            ReplayedToken(
                "this token was already accepted with a different body: "
                "a captured signature replayed with altered data"
            )
        )

    def _refuse(self, exc: SignatureError) -> Receipt:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        log.info("refused webhook (%s): %s", exc.code, exc.message)
        return Receipt.error(status, exc.code, exc.message)


def _timed_parse(marks: stages.Marks) -> Callable[[bytes], Envelope]:
    def parse(body: bytes) -> Envelope:
        marks.parse_started = stages.clock()
        try:
            return parse_envelope(body)
        finally:
            marks.parse_ended = stages.clock()

    return parse


def _traceparent(headers: Mapping[str, str]) -> str | None:
    """The request's W3C trace context, kept for the handlers' span; an invalid one is
    ignored (W3C), never a refusal."""
    for name, value in headers.items():
        if name.lower() == HEADER:
            return parse(value)
    return None


def _content_length(headers: Mapping[str, str]) -> int | None:
    for name, value in headers.items():
        if name.lower() == "content-length":
            return int(value) if value.isascii() and value.isdigit() else None
    return None
