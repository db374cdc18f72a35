"""Signatures on both sides: Selz's ``X-Selz-Signature`` and Standard Webhooks.

Selz signs ``timestamp + token`` (the exact strings of the body) with HMAC-SHA256 under the
app's verification key and sends the base64 digest in ``X-Selz-Signature``. That proves who
sent the request but not what ``data`` says, so hookline also sends the Standard Webhooks
headers, whose signature covers ``id.timestamp.body``. The sender signs here; the receiver
and ``hookline verify`` check here; both use the same functions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hookline.events import Envelope, parse_envelope, parse_timestamp
from hookline.exceptions import BadSignature, ConfigError, StaleTimestamp

SELZ_HEADER = "X-Selz-Signature"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"

DEFAULT_TOLERANCE_SECONDS = 300


def _hmac_b64(key: str, message: bytes) -> str:
    digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def selz_signature(key: str, timestamp: str, token: str) -> str:
    """The value of ``X-Selz-Signature``: exactly what the seed's PHP and Node.js compute."""
    return _hmac_b64(key, (timestamp + token).encode("utf-8"))


def standard_signature(key: str, msg_id: str, unix_ts: int, body: bytes) -> str:
    """One ``v1,<base64>`` entry of ``webhook-signature``.

    The key is used as its raw bytes, so a Standard Webhooks library verifies it with the
    secret ``whsec_`` + ``base64(key)``.
    """
    return "v1," + _hmac_b64(key, b"%s.%d.%s" % (msg_id.encode(), unix_ts, body))


def sign_headers(
    keys: Sequence[str], *, timestamp: str, token: str, msg_id: str, unix_ts: int, body: bytes
) -> dict[str, str]:
    """Headers for one attempt.

    ``keys[0]`` is the key that signs ``X-Selz-Signature`` (a header with room for one
    signature); ``webhook-signature`` carries one entry per key, so Standard Webhooks
    receivers that know any of them accept. Receivers that check ``X-Selz-Signature``
    (the seed's, and ``Verifier``) must know ``keys[0]``: in a rotation the app adds the
    new key to its receiver before the sender puts it first.
    """
    if not keys:
        raise ConfigError("at least one signing key is needed")
    return {
        SELZ_HEADER: selz_signature(keys[0], timestamp, token),
        WEBHOOK_ID_HEADER: msg_id,
        WEBHOOK_TIMESTAMP_HEADER: str(unix_ts),
        WEBHOOK_SIGNATURE_HEADER: " ".join(
            standard_signature(key, msg_id, unix_ts, body) for key in keys
        ),
    }


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks that a webhook is genuine and fresh.

    ``keys`` lists every key currently accepted (several during a rotation). By default
    the Standard Webhooks signature must be present, which proves the body itself was not
    altered; with ``require_standard=False`` (for senders that sign only timestamp + token,
    such as Selz itself) it is checked only when present.
    """

    keys: tuple[str, ...]
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    require_standard: bool = True

    def __post_init__(self) -> None:
        if not self.keys or not all(isinstance(k, str) and k for k in self.keys):
            raise ConfigError("a verifier needs at least one non-empty key")
        if self.tolerance_seconds <= 0:
            raise ConfigError("the timestamp tolerance must be a positive number of seconds")

    def check_headers(self, headers: Mapping[str, str], *, now: float | None = None) -> None:
        """The checks that need no body: the signature headers are there, well formed and
        fresh. A receiver runs them before it reads the body, so a request that cannot be
        genuine costs it neither the read nor the parse."""
        self._check_headers(_lower(headers), time.time() if now is None else now)

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float | None = None,
        parse: Callable[[bytes], Envelope] | None = None,
    ) -> Envelope:
        """Return the parsed envelope, or raise the ``SignatureError`` that says what failed.

        The body signature is checked on the raw bytes before the body is parsed: JSON from
        someone without the key is never parsed. Only a receiver that accepts Selz-only
        requests (``require_standard=False``) must parse first, to find the timestamp and
        token that ``X-Selz-Signature`` covers. ``parse`` is ``parse_envelope`` unless the
        caller times it.
        """
        lowered = _lower(headers)
        now = time.time() if now is None else now
        self._check_headers(lowered, now)
        if WEBHOOK_SIGNATURE_HEADER in lowered:
            self._check_body_signature(lowered, body)
        # Looked up here, not bound as a default: one place (this module's name) decides
        # what parses a body, so a check of when bodies are parsed sees every parse.
        envelope = (parse or parse_envelope)(body)
        self._check_selz(lowered, envelope, now)
        return envelope

    def _check_headers(self, headers: dict[str, str], now: float) -> None:
        selz = headers.get(SELZ_HEADER.lower())
        if not selz:
            raise BadSignature(f"the {SELZ_HEADER} header is missing")
        if not _is_digest(selz):
            raise BadSignature(f"{SELZ_HEADER} is not a base64 HMAC-SHA256 digest")
        if WEBHOOK_SIGNATURE_HEADER in headers:
            self._check_window(_standard_timestamp(headers), now, "webhook-timestamp")
        elif self.require_standard:
            raise BadSignature(
                "the webhook-signature header is missing and this receiver requires it"
            )

    def _check_selz(self, headers: dict[str, str], envelope: Envelope, now: float) -> None:
        received = headers[SELZ_HEADER.lower()]
        if not any(
            hmac.compare_digest(
                received.encode(), selz_signature(k, envelope.timestamp, envelope.token).encode()
            )
            for k in self.keys
        ):
            raise BadSignature(
                f"{SELZ_HEADER} does not match HMAC-SHA256(timestamp + token) under any "
                f"of the {len(self.keys)} configured key(s)"
            )
        self._check_window(parse_timestamp(envelope.timestamp).timestamp(), now, "timestamp")

    def _check_body_signature(self, headers: dict[str, str], body: bytes) -> None:
        msg_id, unix_ts = headers[WEBHOOK_ID_HEADER], _standard_timestamp(headers)
        offered = [
            part.partition(",")[2].encode()
            for part in headers[WEBHOOK_SIGNATURE_HEADER].split()
            if part.startswith("v1,")
        ]
        for key in self.keys:
            expected = standard_signature(key, msg_id, unix_ts, body).partition(",")[2].encode()
            if any(hmac.compare_digest(expected, sig) for sig in offered):
                return
        raise BadSignature(
            f"webhook-signature does not match the body under any of the {len(self.keys)} "
            "configured key(s): the body was altered or signed with another key"
        )

    def _check_window(self, moment: float, now: float, name: str) -> None:
        skew = now - moment
        if abs(skew) > self.tolerance_seconds:
            direction = "old" if skew > 0 else "in the future"
            raise StaleTimestamp(
                f"{name} is {abs(int(skew))} s {direction}; the allowed window is "
                f"±{self.tolerance_seconds} s (check the sender's clock, or replay)"
            )


def _standard_timestamp(headers: dict[str, str]) -> int:
    """``webhook-timestamp`` as Unix seconds, once ``webhook-id`` is known to be there too."""
    msg_id = headers.get(WEBHOOK_ID_HEADER)
    raw_ts = headers.get(WEBHOOK_TIMESTAMP_HEADER)
    if not msg_id or not raw_ts:
        raise BadSignature("webhook-signature needs webhook-id and webhook-timestamp too")
    if not (raw_ts.isascii() and raw_ts.isdigit()):
        raise BadSignature(f"webhook-timestamp {raw_ts[:40]!r} is not whole seconds")
    if len(raw_ts) > 12:
        # Unix seconds have 10 digits until 2286; a longer number would overflow the
        # float the time window is checked in.
        raise BadSignature(f"webhook-timestamp {raw_ts[:40]!r} is not Unix time in seconds")
    return int(raw_ts)


def _is_digest(value: str) -> bool:
    """Whether ``value`` is base64 of 32 bytes (what an HMAC-SHA256 signature header holds)."""
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (ValueError, binascii.Error):
        return False
