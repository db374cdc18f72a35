"""``hookline verify``: check a saved webhook request and say exactly what is wrong with it.

The receiver stops at the first problem; a person debugging wants every check, each with
what was expected. This runs them all, with the same signing functions the receiver uses.
"""

from __future__ import annotations

import hmac
import http.client
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hookline.events import parse_envelope, parse_timestamp
from hookline.exceptions import MalformedWebhook, ValidationError
from hookline.signing import (
    SELZ_HEADER,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    selz_signature,
    standard_signature,
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    message: str
    #: A failed check that makes the receiver refuse the request (not just a warning).
    fatal: bool = True


@dataclass(slots=True)
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return all(c.ok or not c.fatal for c in self.checks)

    def add(self, name: str, ok: bool, message: str, *, fatal: bool = True) -> None:
        self.checks.append(Check(name, ok, message, fatal))


def load_request(raw: bytes) -> tuple[dict[str, str], bytes]:
    """A saved request: JSON ``{"headers": {...}, "body": "..."}`` or an HTTP message."""
    stripped = raw.lstrip()
    if stripped.startswith(b"{"):
        try:
            doc = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and "headers" in doc and "body" in doc:
            return _from_json(doc)
    return _from_http_message(raw)


def _from_json(doc: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    headers = doc["headers"]
    if not isinstance(headers, dict):
        raise ValidationError("'headers' must be an object of header names to values")
    body = doc["body"]
    if isinstance(body, dict | list):
        raise ValidationError(
            "'body' must be the exact body text as a string: re-serialised JSON no longer "
            "matches the body signature"
        )
    return {str(k): str(v) for k, v in headers.items()}, str(body).encode("utf-8")


def _from_http_message(raw: bytes) -> tuple[dict[str, str], bytes]:
    text = raw.replace(b"\r\n", b"\n")
    head, sep, body = text.partition(b"\n\n")
    if not sep:
        raise ValidationError("no blank line between headers and body: not an HTTP message")
    lines = head.split(b"\n")
    if lines and b":" not in lines[0].split(b" ")[0]:  # "POST /webhooks HTTP/1.1"
        lines = lines[1:]
    message = http.client.parse_headers(io.BytesIO(b"\r\n".join(lines) + b"\r\n\r\n"))
    headers = {name: value for name, value in message.items()}
    length = headers.get("Content-Length") or headers.get("content-length")
    if length and length.isdigit():
        body = body[: int(length)]
    elif body.endswith(b"\n"):
        body = body[:-1]  # the newline an editor adds at the end of the file
    return headers, body


def diagnose(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[str],
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
    require_standard: bool = True,
) -> Report:
    report = Report()
    lowered = {k.lower(): v for k, v in headers.items()}
    now = time.time() if now is None else now
    doc = _check_body(report, body)
    if doc is not None:
        _check_selz(report, lowered, doc, keys)
        _check_window(report, "timestamp", _unix(doc.get("timestamp")), now, tolerance_seconds)
    _check_standard(report, lowered, body, keys, now, tolerance_seconds, require_standard)
    content_type = lowered.get("content-type", "")
    is_json = content_type.split(";")[0].strip() == "application/json"
    note = "application/json" if is_json else f"{content_type!r}, not application/json"
    report.add("content type", is_json, note, fatal=False)
    return report


def _check_body(report: Report, body: bytes) -> dict[str, Any] | None:
    """Check the envelope; return the JSON object if signature checks can still go on."""
    try:
        envelope = parse_envelope(body)
    except MalformedWebhook as exc:
        report.add("body", False, exc.message)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("timestamp"), str):
            if isinstance(doc.get("token"), str):
                return doc
        return None
    who = f" for user {envelope.user_id!r}" if envelope.user_id else ""
    report.add("body", True, f"a valid {envelope.event_type} envelope{who}")
    return dict(orjson.loads(body))


def _check_selz(
    report: Report, headers: dict[str, str], doc: dict[str, Any], keys: Sequence[str]
) -> None:
    received = headers.get(SELZ_HEADER.lower())
    if not received:
        report.add(SELZ_HEADER, False, f"the {SELZ_HEADER} header is missing")
        return
    for index, key in enumerate(keys, 1):
        expected = selz_signature(key, doc["timestamp"], doc["token"])
        if hmac.compare_digest(received.encode(), expected.encode()):
            report.add(SELZ_HEADER, True, f"matches key #{index}")
            return
    expected = selz_signature(keys[0], doc["timestamp"], doc["token"]) if keys else "?"
    report.add(
        SELZ_HEADER,
        False,
        f"{received!r} does not match base64(HMAC-SHA256(key, timestamp + token)) under any "
        f"of the {len(keys)} key(s) given; with key #1 it would be {expected!r} (message "
        f"{doc['timestamp'] + doc['token']!r})",
    )


def _unix(timestamp: Any) -> float | None:
    try:
        return parse_timestamp(timestamp).timestamp()
    except MalformedWebhook:
        return None


def _check_window(
    report: Report, name: str, moment: float | None, now: float, tolerance: int
) -> None:
    if moment is None:
        return
    skew = now - moment
    if abs(skew) <= tolerance:
        report.add(name, True, f"{name} is {abs(int(skew))} s from now, within ±{tolerance} s")
        return
    direction = "old" if skew > 0 else "in the future"
    report.add(
        name,
        False,
        f"{name} is {abs(int(skew))} s {direction}, outside ±{tolerance} s: a stale or replayed "
        "request, or a clock that is off (to check an old capture, pass --at or --ignore-time)",
    )


def _check_standard(
    report: Report,
    headers: dict[str, str],
    body: bytes,
    keys: Sequence[str],
    now: float,
    tolerance: int,
    required: bool,
) -> None:
    name = WEBHOOK_SIGNATURE_HEADER
    if name not in headers:
        report.add(
            name,
            False,
            "absent: nothing proves the body's data was not altered"
            + (
                " (required by default; a receiver built with require_standard=False, "
                "or --selz-only here, accepts it)"
                if required
                else " (accepted in --selz-only mode, which does not protect the body)"
            ),
            fatal=required,
        )
        return
    msg_id, raw_ts = headers.get(WEBHOOK_ID_HEADER), headers.get(WEBHOOK_TIMESTAMP_HEADER)
    if not msg_id or not raw_ts or not raw_ts.isdigit():
        report.add(name, False, "needs webhook-id and webhook-timestamp (whole seconds) too")
        return
    _check_window(report, WEBHOOK_TIMESTAMP_HEADER, float(raw_ts), now, tolerance)
    offered = [p.partition(",")[2] for p in headers[name].split() if p.startswith("v1,")]
    for index, key in enumerate(keys, 1):
        expected = standard_signature(key, msg_id, int(raw_ts), body).partition(",")[2]
        if any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in offered):
            report.add(name, True, f"matches key #{index}: the body is exactly what was signed")
            return
    report.add(
        name,
        False,
        "no v1 signature matches HMAC-SHA256(key, id.timestamp.body) under any key given: "
        "the body was altered (re-serialised JSON, a trailing newline, ...) or another key "
        "signed it",
    )
